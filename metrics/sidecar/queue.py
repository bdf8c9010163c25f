"""The queues the sidecar probes: their specs and labels, the `Probe` protocol, and per-tick deltas.

`metrics.sidecar.probe` opens the probe of a spec; every probe computes its rates with a `Ticker`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from benchlab.metrics.sidecar.exposition import QueueReading

__all__ = ["Probe", "ProbeSpec", "RabbitQueueSpec", "RedisListSpec", "ScrapeSpec", "Ticker", "label_of"]


@dataclass(frozen=True, kw_only=True)
class RedisListSpec:
    """A Redis list used as a job queue."""

    url: str
    """Redis URL, e.g. redis://127.0.0.1:6379/0."""
    key: str
    """The list's key."""
    label: str | None = None
    """Queue label in samples and metrics; the key when None."""
    published_key: str | None = None
    """Counter key the producers INCR per item: makes the publish rate exact."""
    oldest_key: str | None = None
    """Key holding the oldest waiting item's enqueue epoch, used instead of reading the oldest item."""
    age_field: str = "enqueued_at"
    """JSON field of an item holding its enqueue epoch (seconds)."""
    scan_limit: int = 100_000
    """Most arrivals counted per tick when there is no counter key."""
    timeout: float = 2.0
    """Socket timeout, seconds."""


@dataclass(frozen=True, kw_only=True)
class RabbitQueueSpec:
    """A RabbitMQ queue, read over AMQP."""

    url: str
    """AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2F."""
    name: str
    """Queue name."""
    label: str | None = None
    """Queue label in samples and metrics; the name when None."""
    timeout: float = 2.0
    """Socket and connection timeout, seconds."""


@dataclass(frozen=True, kw_only=True)
class ScrapeSpec:
    """A Prometheus `/metrics` page of a worker or target, and which families mean what."""

    url: str
    """Page URL, e.g. http://target:8000/metrics."""
    label: str | None = None
    """Queue label in samples and metrics; the URL's host:port when None."""
    processing: str = r".*_processing_seconds"
    """Histogram or summary of processing time per item."""
    processed: str = r".*_(processed|consumed|completed)"
    """Counter of items finished (failed ones included)."""
    failed: str = r".*_(failed|failures|errors)"
    """Counter of items that failed."""
    published: str = r".*_(published|enqueued)"
    """Counter of items published."""
    length: str = r".*_queue_(length|depth|size)"
    """Gauge of items waiting."""
    backlog_age: str = r".*_(oldest|backlog)_age_seconds"
    """Gauge of the oldest waiting item's age."""
    timeout: float = 2.0
    """HTTP timeout, seconds."""


ProbeSpec = RedisListSpec | RabbitQueueSpec | ScrapeSpec
"""Any probe's spec."""


def label_of(spec: ProbeSpec) -> str:
    """The queue label a spec's samples carry."""
    if spec.label:
        return spec.label
    if isinstance(spec, RedisListSpec):
        return spec.key
    if isinstance(spec, RabbitQueueSpec):
        return spec.name
    return urlsplit(spec.url).netloc or spec.url


class Probe(Protocol):
    """Reads one queue; `read()` raises on failure and may be retried next tick."""

    @property
    def spec(self) -> ProbeSpec:
        """What is probed."""

    def read(self) -> QueueReading:
        """One reading; rates are None on the first successful read."""

    def close(self) -> None:
        """Release connections."""


@dataclass
class Ticker:
    """Per-tick deltas of counters and gauges; a decreasing counter is a reset (the delta is its value)."""

    clock: Callable[[], float]
    last: float | None = None
    dt: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)

    def tick(self) -> None:
        now = self.clock()
        self.dt = now - self.last if self.last is not None else 0.0
        self.last = now

    def delta(self, name: str, value: float | None, *, counter: bool = True) -> float | None:
        prev = self.values.pop(name, None)
        if value is None:
            return None
        self.values[name] = value
        if prev is None or self.dt <= 0:
            return None
        return value if counter and value < prev else value - prev

    def rate(self, amount: float | None) -> float | None:
        return amount / self.dt if amount is not None and self.dt > 0 else None

    def add(self, name: str, amount: float | None) -> float | None:
        """Running total of `amount`s; None until the first amount."""
        if amount is not None:
            self.totals[name] = self.totals.get(name, 0.0) + amount
        return self.totals.get(name)
