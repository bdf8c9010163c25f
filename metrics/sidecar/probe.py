"""Queue probes: depth, rates, processing time, errors and backlog age of one queue per probe, per tick.

`open_probe(spec)` opens the probe of a spec (`metrics.sidecar.queue`): a Redis list (`RedisListSpec`) or a
RabbitMQ queue (`RabbitQueueSpec`), read from the broker (`metrics.sidecar.broker`), or a worker's Prometheus
page (`ScrapeSpec`, `metrics.sidecar.scrape`). Each module's docstring says how exact its rates are.
"""

from __future__ import annotations

from benchlab.metrics.sidecar.broker import RabbitQueueProbe, RedisListProbe
from benchlab.metrics.sidecar.queue import Probe, ProbeSpec, RabbitQueueSpec, RedisListSpec
from benchlab.metrics.sidecar.scrape import ScrapeProbe


def open_probe(spec: ProbeSpec) -> Probe:
    """The probe for a spec (connections are made lazily, on the first read)."""
    if isinstance(spec, RedisListSpec):
        return RedisListProbe(spec=spec)
    if isinstance(spec, RabbitQueueSpec):
        return RabbitQueueProbe(spec=spec)
    return ScrapeProbe(spec=spec)
