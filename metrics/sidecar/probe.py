"""Queue probes: depth, rates, processing time, errors and backlog age of one queue per probe, per tick.

Redis list (`RedisListSpec`): producers `LPUSH` JSON items carrying an `enqueued_at` epoch, consumers pop
the other end, so the oldest item is `LINDEX key -1` (the demo target's layout). One pipelined round trip
per tick runs a Lua script (length, newest and oldest items, arrivals) plus the optional companion GETs.
- length: `LLEN`.
- backlog age: now - the oldest item's `enqueued_at`, or - `oldest_key`'s value (an epoch) when given;
  0 when the list is empty.
- publish rate: exact from `published_key`, a counter the producers `INCR`, when given. Otherwise the
  script counts the items at the head enqueued after the newest one seen last tick (a binary search, the
  list being newest first): exact while the queue holds a backlog, a lower bound when the consumer drains
  items within the same tick they arrive (those are never seen). For exact rates with no counter key, add
  a scrape probe on a worker that exports a processed counter.
- consume rate: published - Δlength over the tick (so exactly as exact as the publish rate).

RabbitMQ (`RabbitQueueSpec`): `queue_declare(passive=True)` over AMQP gives the ready depth and the
consumer count. AMQP exposes no message counters, so rates are the depth delta split by sign: the publish
rate is Δdepth/Δt when the queue grew, the consume rate -Δdepth/Δt when it shrank (each exact when the
other side is idle, a lower bound otherwise). No backlog age (the broker does not say without consuming).

Scrape (`ScrapeSpec`): fetch a Prometheus `/metrics` page and map families (by regex on the family name;
the first family in page order wins; label sets are summed) to processing time (histogram or summary
Δsum/Δcount), consume rate (Δprocessed/Δt), error rate (Δfailed/Δprocessed), publish rate (a published
counter, else consume + Δlength/Δt), length and backlog age (gauges). A decreasing counter is a reset.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import pika
import redis
from pika.exceptions import AMQPError, ChannelClosedByBroker
from prometheus_client.parser import text_string_to_metric_families

from benchlab.metrics.sidecar.exposition import QueueReading

__all__ = [
    "Probe",
    "ProbeSpec",
    "RabbitQueueSpec",
    "RedisListSpec",
    "ScrapeSpec",
    "ScrapeTotals",
    "open_probe",
    "scrape_totals",
]

_ARRIVALS_LUA = """
local key, mark, field, limit = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = redis.call('LLEN', key)
local function newer(i)
  local ok, item = pcall(cjson.decode, redis.call('LINDEX', key, i))
  if not ok or type(item) ~= 'table' then return false end
  local stamp = tonumber(item[field])
  return stamp ~= nil and stamp > mark
end
local lo, hi, probe = 0, math.min(n, limit), 0
while probe < hi and newer(probe) do lo = probe + 1; probe = probe * 2 + 1 end
if probe < hi then hi = probe end
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if newer(mid) then lo = mid + 1 else hi = mid end
end
return {n, redis.call('LINDEX', key, 0), redis.call('LINDEX', key, -1), lo}
"""
"""Length, newest item, oldest item, and how many items at the head are newer than ARGV[1], atomically."""


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
class _Ticker:
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


class RedisListProbe:
    """Length, rates and backlog age of a Redis list (see the module docstring)."""

    def __init__(
        self, *, spec: RedisListSpec, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.spec = spec
        """What is probed."""
        self._client = redis.Redis.from_url(spec.url, socket_timeout=spec.timeout, socket_connect_timeout=spec.timeout)
        self._script = self._client.register_script(_ARRIVALS_LUA)
        self._ticker = _Ticker(clock)
        self._wall = wall
        self._mark: float | None = None

    def read(self) -> QueueReading:
        spec, t = self.spec, self._ticker
        pipe = self._client.pipeline(transaction=False)
        mark = "1e308" if self._mark is None or spec.published_key else repr(self._mark)
        limit = 0 if spec.published_key else spec.scan_limit
        self._script(keys=[spec.key], args=[mark, spec.age_field, limit], client=pipe)
        for extra in (spec.published_key, spec.oldest_key):
            if extra:
                pipe.get(extra)
        replies = pipe.execute()
        wall = self._wall()
        t.tick()
        length, newest, oldest, arrived = replies[0]
        extras = iter(replies[1:])
        counted = _number(next(extras)) if spec.published_key else None
        oldest_at = _number(next(extras)) if spec.oldest_key else None
        if oldest_at is None:
            oldest_at = self._stamp(oldest)
        newest_at = self._stamp(newest)
        if self._mark is None or (newest_at is not None and newest_at > self._mark):
            self._mark = newest_at if newest_at is not None else wall
        d_len = t.delta("length", float(length), counter=False)
        published = t.delta("published", counted) if spec.published_key else (float(arrived) if t.dt > 0 else None)
        consumed = max(0.0, published - d_len) if published is not None and d_len is not None else None
        return QueueReading(
            queue=label_of(spec),
            backend="redis",
            length=int(length),
            publish_rate=t.rate(published),
            consume_rate=t.rate(consumed),
            published=t.add("published", published),
            consumed=t.add("consumed", consumed),
            backlog_age_seconds=0.0 if not length else (max(0.0, wall - oldest_at) if oldest_at is not None else None),
        )

    def _stamp(self, item: bytes | None) -> float | None:
        if item is None:
            return None
        try:
            value = json.loads(item)
            return float(value[self.spec.age_field]) if isinstance(value, dict) else None
        except (ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        self._client.close()


class RabbitQueueProbe:
    """Depth and consumers of a RabbitMQ queue, rates from depth deltas (see the module docstring)."""

    def __init__(self, *, spec: RabbitQueueSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        """What is probed."""
        self._ticker = _Ticker(clock)
        self._conn: Any = None
        self._channel: Any = None

    def read(self) -> QueueReading:
        try:
            if self._conn is None or not self._conn.is_open:
                params = pika.URLParameters(self.spec.url)
                params.socket_timeout = params.blocked_connection_timeout = self.spec.timeout
                params.connection_attempts = 1
                self._conn, self._channel = pika.BlockingConnection(params), None
            if self._channel is None or not self._channel.is_open:
                self._channel = self._conn.channel()
            method = self._channel.queue_declare(queue=self.spec.name, passive=True).method
        except ChannelClosedByBroker as exc:
            self._channel = None
            raise LookupError(f"RabbitMQ queue {self.spec.name!r}: {exc.reply_code} {exc.reply_text}") from None
        except AMQPError as exc:
            self.close()
            raise ConnectionError(f"RabbitMQ {self.spec.url}: {exc!r}") from None
        t = self._ticker
        t.tick()
        d_depth = t.delta("depth", float(method.message_count), counter=False)
        published = max(0.0, d_depth) if d_depth is not None else None
        consumed = max(0.0, -d_depth) if d_depth is not None else None
        return QueueReading(
            queue=label_of(self.spec),
            backend="rabbitmq",
            length=method.message_count,
            consumers=method.consumer_count,
            publish_rate=t.rate(published),
            consume_rate=t.rate(consumed),
            published=t.add("published", published),
            consumed=t.add("consumed", consumed),
        )

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(AMQPError):
                conn.close()


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
        self._ticker = _Ticker(clock)

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


def open_probe(spec: ProbeSpec) -> Probe:
    """The probe for a spec (connections are made lazily, on the first read)."""
    if isinstance(spec, RedisListSpec):
        return RedisListProbe(spec=spec)
    if isinstance(spec, RabbitQueueSpec):
        return RabbitQueueProbe(spec=spec)
    return ScrapeProbe(spec=spec)


def _number(raw: bytes | str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
