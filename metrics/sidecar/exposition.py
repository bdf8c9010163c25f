"""What the sidecar exposes: its readings (rows for the store) and a Prometheus collector over the latest ones.

`SidecarCollector.collect()` renders the latest `Snapshot` at scrape time and runs no loop of its own.
Metrics use base units (bytes, seconds, ratios); counters are totals since the sidecar started.

Per service (label `service`): `benchlab_process_cpu_ratio` (CPU of the last tick as a fraction of one
core), `benchlab_process_cpu_all_cores_ratio`, `benchlab_process_resident_memory_bytes`,
`benchlab_process_threads`, `benchlab_process_open_fds`, `benchlab_process_instances` (live processes),
and the counters `benchlab_process_cpu_seconds_total`, `benchlab_process_disk_read_bytes_total`,
`benchlab_process_disk_written_bytes_total`, `benchlab_process_network_receive_bytes_total`,
`benchlab_process_network_transmit_bytes_total`, `benchlab_process_restarts_total`.

Per queue (labels `queue`, `backend`): `benchlab_queue_length`, `benchlab_queue_consumers`,
`benchlab_queue_processing_seconds` (mean time per job over the last tick), `benchlab_queue_error_ratio`,
`benchlab_queue_backlog_age_seconds`, and the counters `benchlab_queue_published_total` and
`benchlab_queue_consumed_total` (integrated from the probe's rates, so as exact as those rates).

The sidecar itself: `benchlab_sidecar_ticks_total`, `benchlab_sidecar_pending_rows` (rows waiting for the
store), `benchlab_sidecar_store_errors_total`, `benchlab_sidecar_dropped_rows_total`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["QueueReading", "ServiceReading", "SidecarCollector", "Snapshot"]


@dataclass(slots=True, kw_only=True)
class ServiceReading:
    """One tick of one service: the `resource_samples` columns plus running totals for counters."""

    service: str
    """Service label."""
    process_count: int
    """Live processes (zombies excluded)."""
    restarts: int
    """Top processes replaced since the sampler started."""
    cpu_percent: float | None = None
    """CPU over the last tick, % of one core; None on the first tick."""
    cpu_percent_total: float | None = None
    """CPU over the last tick, % of all cores."""
    rss_bytes: int | None = None
    """Resident memory, summed."""
    threads: int | None = None
    """Threads, summed."""
    open_fds: int | None = None
    """Open file descriptors, summed (None when none could be read)."""
    disk_read_bps: float | None = None
    """Storage bytes read per second over the last tick."""
    disk_write_bps: float | None = None
    """Storage bytes written per second over the last tick."""
    net_rx_bps: float | None = None
    """Bytes received per second by the service's network namespace(s)."""
    net_tx_bps: float | None = None
    """Bytes sent per second by the service's network namespace(s)."""
    cpu_seconds: float = 0.0
    """CPU seconds used since the sampler started (a counter)."""
    disk_read_bytes: float = 0.0
    """Storage bytes read since the sampler started."""
    disk_write_bytes: float = 0.0
    """Storage bytes written since the sampler started."""
    net_rx_bytes: float = 0.0
    """Namespace bytes received since the sampler started."""
    net_tx_bytes: float = 0.0
    """Namespace bytes sent since the sampler started."""

    COLUMNS = (
        "service",
        "process_count",
        "restarts",
        "cpu_percent",
        "cpu_percent_total",
        "rss_bytes",
        "threads",
        "open_fds",
        "disk_read_bps",
        "disk_write_bps",
        "net_rx_bps",
        "net_tx_bps",
    )
    """Fields that are `resource_samples` columns."""

    def columns(self) -> dict[str, object]:
        """The `resource_samples` columns of this reading (without run_id and ts)."""
        return {name: getattr(self, name) for name in self.COLUMNS}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueReading:
    """One tick of one queue probe: the `queue_samples` columns plus running totals for counters."""

    queue: str
    """Queue label."""
    backend: str
    """redis | rabbitmq | scrape."""
    length: int | None = None
    """Items waiting."""
    consumers: int | None = None
    """Consumers attached (RabbitMQ only)."""
    publish_rate: float | None = None
    """Items published per second over the last tick (see the probe for how exact)."""
    consume_rate: float | None = None
    """Items consumed per second over the last tick."""
    processing_seconds: float | None = None
    """Mean processing time per item finished during the last tick."""
    error_rate: float | None = None
    """Failed / processed items over the last tick (a ratio)."""
    backlog_age_seconds: float | None = None
    """Age of the oldest waiting item; 0 when the queue is empty."""
    published: float | None = None
    """Items published since the probe started (a counter; None when unknown)."""
    consumed: float | None = None
    """Items consumed since the probe started."""

    COLUMNS = (
        "queue",
        "backend",
        "length",
        "consumers",
        "publish_rate",
        "consume_rate",
        "processing_seconds",
        "error_rate",
        "backlog_age_seconds",
    )
    """Fields that are `queue_samples` columns."""

    def columns(self) -> dict[str, object]:
        """The `queue_samples` columns of this reading (without run_id and ts)."""
        return {name: getattr(self, name) for name in self.COLUMNS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The latest readings and the sidecar's own counters, swapped in whole after each tick."""

    services: tuple[ServiceReading, ...] = ()
    """Latest reading of each service."""
    queues: tuple[QueueReading, ...] = ()
    """Latest reading of each queue probe that answered."""
    ticks: int = 0
    """Ticks done."""
    pending_rows: int = 0
    """Rows waiting for the store."""
    store_errors: int = 0
    """Failed store writes."""
    dropped_rows: int = 0
    """Rows dropped: over the pending bound, or rejected by the database."""


_SERVICE_GAUGES = (
    ("benchlab_process_cpu_ratio", "CPU used over the last tick, as a fraction of one core.", "cpu_percent", 0.01),
    (
        "benchlab_process_cpu_all_cores_ratio",
        "CPU used over the last tick, as a fraction of all cores.",
        "cpu_percent_total",
        0.01,
    ),
    ("benchlab_process_resident_memory_bytes", "Resident memory of the service's processes.", "rss_bytes", 1.0),
    ("benchlab_process_threads", "Threads of the service's processes.", "threads", 1.0),
    ("benchlab_process_open_fds", "Open file descriptors of the service's processes.", "open_fds", 1.0),
    ("benchlab_process_instances", "Live processes of the service.", "process_count", 1.0),
)
_SERVICE_COUNTERS = (
    ("benchlab_process_cpu_seconds", "CPU seconds used since the sidecar started.", "cpu_seconds"),
    ("benchlab_process_disk_read_bytes", "Storage bytes read since the sidecar started.", "disk_read_bytes"),
    ("benchlab_process_disk_written_bytes", "Storage bytes written since the sidecar started.", "disk_write_bytes"),
    ("benchlab_process_network_receive_bytes", "Bytes received by the service's network namespace.", "net_rx_bytes"),
    ("benchlab_process_network_transmit_bytes", "Bytes sent by the service's network namespace.", "net_tx_bytes"),
    ("benchlab_process_restarts", "Top processes of the service replaced by new ones.", "restarts"),
)
_QUEUE_GAUGES = (
    ("benchlab_queue_length", "Items waiting in the queue.", "length"),
    ("benchlab_queue_consumers", "Consumers attached to the queue.", "consumers"),
    ("benchlab_queue_processing_seconds", "Mean processing time per item over the last tick.", "processing_seconds"),
    ("benchlab_queue_error_ratio", "Failed over processed items during the last tick.", "error_rate"),
    ("benchlab_queue_backlog_age_seconds", "Age of the oldest waiting item.", "backlog_age_seconds"),
)
_QUEUE_COUNTERS = (
    ("benchlab_queue_published", "Items published since the sidecar started.", "published"),
    ("benchlab_queue_consumed", "Items consumed since the sidecar started.", "consumed"),
)


class SidecarCollector(Collector):
    """Renders the latest sidecar snapshot at scrape time."""

    def __init__(self, *, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        """Returns the latest snapshot (cheap: no I/O)."""

    def collect(self) -> Iterator[Metric]:
        """Families of the latest snapshot; gauges without a value are left out."""
        return _families(self._snapshot())

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (lets the registry check names without a scrape)."""
        return _families(Snapshot())


def _families(snap: Snapshot) -> Iterator[Metric]:
    for name, doc, attr, scale in _SERVICE_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["service"])
        for s in snap.services:
            value = getattr(s, attr)
            if value is not None:
                gauge.add_metric([s.service], value * scale)
        yield gauge
    for name, doc, attr in _SERVICE_COUNTERS:
        counter = CounterMetricFamily(name, doc, labels=["service"])
        for s in snap.services:
            counter.add_metric([s.service], float(getattr(s, attr)))
        yield counter
    for name, doc, attr in _QUEUE_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["queue", "backend"])
        for q in snap.queues:
            if getattr(q, attr) is not None:
                gauge.add_metric([q.queue, q.backend], getattr(q, attr))
        yield gauge
    for name, doc, attr in _QUEUE_COUNTERS:
        counter = CounterMetricFamily(name, doc, labels=["queue", "backend"])
        for q in snap.queues:
            if getattr(q, attr) is not None:
                counter.add_metric([q.queue, q.backend], getattr(q, attr))
        yield counter
    yield CounterMetricFamily("benchlab_sidecar_ticks", "Sampling ticks done.", value=snap.ticks)
    yield GaugeMetricFamily("benchlab_sidecar_pending_rows", "Rows waiting for the store.", value=snap.pending_rows)
    yield CounterMetricFamily("benchlab_sidecar_store_errors", "Failed store writes.", value=snap.store_errors)
    yield CounterMetricFamily(
        "benchlab_sidecar_dropped_rows",
        "Rows dropped: over the pending bound, or rejected by the database.",
        value=snap.dropped_rows,
    )
