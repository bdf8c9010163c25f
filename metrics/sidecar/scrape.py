"""Scrape probe (`ScrapeSpec`): a worker's or target's Prometheus page, read each tick.

Fetch a Prometheus `/metrics` page and map families (by regex on the family name;
the first family in page order wins; label sets are summed) to processing time (histogram or summary
Δsum/Δcount), consume rate (Δprocessed/Δt), error rate (Δfailed/Δprocessed), publish rate (a published
counter, else consume + Δlength/Δt), length and backlog age (gauges). A decreasing counter is a reset.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from benchlab.metrics.sidecar.exposition import QueueReading
from benchlab.metrics.sidecar.queue import ScrapeSpec, Ticker, label_of

__all__ = ["ScrapeProbe", "ScrapeTotals", "scrape_totals"]


@dataclass(frozen=True, kw_only=True)
class ScrapeTotals:
    """The mapped values of one scraped page (None: no family matched)."""

    processing_sum: float | None = None
    """Sum of processing seconds."""
    processing_count: float | None = None
    """Items timed."""
    processed: float | None = None
    """Items finished."""
    failed: float | None = None
    """Items failed."""
    published: float | None = None
    """Items published."""
    length: float | None = None
    """Items waiting."""
    backlog_age: float | None = None
    """Oldest waiting item's age, seconds."""


def scrape_totals(text: str, spec: ScrapeSpec) -> ScrapeTotals:
    """Map a Prometheus text page to totals, per the spec's family regexes."""
    roles = {
        role: re.compile(getattr(spec, role))
        for role in ("processing", "processed", "failed", "published", "length", "backlog_age")
    }
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for role, pattern in roles.items():
            if role in found or (role + "_sum") in found or not pattern.fullmatch(family.name):
                continue
            kind = {"processing": ("histogram", "summary"), "length": ("gauge",), "backlog_age": ("gauge",)}.get(
                role, ("counter", "untyped")
            )
            if family.type not in kind:
                continue
            if role == "processing":
                found["processing_sum"] = sum(s.value for s in family.samples if s.name == family.name + "_sum")
                found["processing_count"] = sum(s.value for s in family.samples if s.name == family.name + "_count")
            else:
                names = (family.name, family.name + "_total")
                values = [s.value for s in family.samples if s.name in names]
                found[role] = max(values, default=0.0) if role == "backlog_age" else sum(values)
    return ScrapeTotals(**found)


class ScrapeProbe:
    """Processing time, consume, publish and error rates from a worker's Prometheus page."""

    def __init__(self, *, spec: ScrapeSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        """What is probed."""
        self._ticker = Ticker(clock)

    def read(self) -> QueueReading:
        with urllib.request.urlopen(self.spec.url, timeout=self.spec.timeout) as resp:
            text = resp.read().decode("utf-8", errors="replace")
        got = scrape_totals(text, self.spec)
        t = self._ticker
        t.tick()
        d_sum, d_count = t.delta("sum", got.processing_sum), t.delta("count", got.processing_count)
        processed, failed = t.delta("processed", got.processed), t.delta("failed", got.failed)
        published = t.delta("published", got.published)
        d_len = t.delta("length", got.length, counter=False)
        if published is None and processed is not None and d_len is not None:
            published = max(0.0, processed + d_len)
        return QueueReading(
            queue=label_of(self.spec),
            backend="scrape",
            length=int(got.length) if got.length is not None else None,
            publish_rate=t.rate(published),
            consume_rate=t.rate(processed),
            processing_seconds=d_sum / d_count if d_sum is not None and d_count else None,
            error_rate=failed / processed if failed is not None and processed else None,
            backlog_age_seconds=got.backlog_age,
            published=t.add("published", published),
            consumed=t.add("consumed", processed),
        )

    def close(self) -> None:
        """Nothing held between scrapes."""
