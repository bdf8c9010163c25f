"""The runner's Prometheus exposition: a Collector that reads a tally kept off the request hot path.

The request hook only appends to the collector's buffer. The flush thread hands each drained batch to
`Tally.observe`, so counting and bucketing cost nothing on the greenlets that make requests. On a Locust
master the workers' cumulative tallies arrive with their stats reports and are summed at scrape time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from benchlab.metrics.store.sample import Sample

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Upper bounds in seconds of the request-duration histogram (+Inf is implied)."""
REPORT_KEY = "benchlab_tally"


class Tally:
    """Cumulative counts of flushed samples; written by one flush thread, read at scrape time.

    Every table is a flat dict of ints or floats, so `dict(table)` under the GIL is a consistent copy.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        """(name, method, status) → requests."""
        self.failures: dict[tuple[str, str], int] = {}
        """(name, method) → failed requests."""
        self.buckets: dict[tuple[str, str, int], int] = {}
        """(name, method, bucket index) → requests in that (non-cumulative) bucket; index len(BUCKETS) is +Inf."""
        self.seconds: dict[tuple[str, str], float] = {}
        """(name, method) → summed duration in seconds."""

    def observe(self, batch: list[Sample]) -> None:
        """Count one flushed batch (the collector's observer hook)."""
        requests, failures, buckets, seconds = self.requests, self.failures, self.buckets, self.seconds
        for _ts, name, method, rt_ms, _rl, _ql, status, ok, _err in batch:
            code = str(status) if status else "none"
            key3 = (name, method, code)
            requests[key3] = requests.get(key3, 0) + 1
            key = (name, method)
            if not ok:
                failures[key] = failures.get(key, 0) + 1
            index = (name, method, bisect.bisect_left(BUCKETS, rt_ms / 1000.0))
            buckets[index] = buckets.get(index, 0) + 1
            seconds[key] = seconds.get(key, 0.0) + rt_ms / 1000.0

    def snapshot(self) -> dict[str, list[Any]]:
        """JSON-friendly copy (lists of [key..., value]) for a worker's report to the master."""
        return {
            "requests": [[*k, v] for k, v in dict(self.requests).items()],
            "failures": [[*k, v] for k, v in dict(self.failures).items()],
            "buckets": [[*k, v] for k, v in dict(self.buckets).items()],
            "seconds": [[*k, v] for k, v in dict(self.seconds).items()],
        }

    @classmethod
    def merged(cls, tallies: list[Tally]) -> Tally:
        """Sum of several tallies."""
        out = cls()
        for t in tallies:
            _add(out.requests, t.requests)
            _add(out.failures, t.failures)
            _add(out.buckets, t.buckets)
            _add(out.seconds, t.seconds)
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, list[Any]]) -> Tally:
        """Rebuild a worker's tally from its report."""
        out = cls()
        out.requests = {(r[0], r[1], r[2]): int(r[3]) for r in data.get("requests", [])}
        out.failures = {(r[0], r[1]): int(r[2]) for r in data.get("failures", [])}
        out.buckets = {(r[0], r[1], int(r[2])): int(r[3]) for r in data.get("buckets", [])}
        out.seconds = {(r[0], r[1]): float(r[2]) for r in data.get("seconds", [])}
        return out


def _add(into: dict[Any, Any], other: dict[Any, Any]) -> None:
    for key, value in dict(other).items():
        into[key] = into.get(key, 0) + value


@dataclass(frozen=True)
class RunLabels:
    """Labels of the `benchlab_run_info` gauge."""

    run_id: int
    app_version: str
    scenario: str
    test_type: str


class RunnerCollector(Collector):
    """Reads the tally and the live user count when Prometheus scrapes; no loop of its own."""

    def __init__(self, *, tally: Callable[[], Tally], users: Callable[[], int], labels: Callable[[], RunLabels]):
        self.tally = tally
        """Returns the current (possibly merged) tally."""
        self.users = users
        """Returns the current number of running users."""
        self.labels = labels
        """Returns the labels of the run in progress."""

    def collect(self) -> Iterator[Metric]:
        """Metric families in base units."""
        t = self.tally()
        info = self.labels()
        run = GaugeMetricFamily(
            "benchlab_run_info",
            "The run in progress (value 1).",
            labels=["run_id", "app_version", "scenario", "test_type"],
        )
        run.add_metric([str(info.run_id), info.app_version, info.scenario, info.test_type], 1)
        yield run
        yield GaugeMetricFamily("benchlab_users", "Users currently running.", value=self.users())
        requests = CounterMetricFamily("benchlab_requests", "Requests made.", labels=["name", "method", "status"])
        for (name, method, status), n in sorted(t.requests.items()):
            requests.add_metric([name, method, status], n)
        yield requests
        failures = CounterMetricFamily("benchlab_request_failures", "Failed requests.", labels=["name", "method"])
        for (name, method), n in sorted(t.failures.items()):
            failures.add_metric([name, method], n)
        yield failures
        yield _histogram(t)


def _histogram(t: Tally) -> HistogramMetricFamily:
    hist = HistogramMetricFamily("benchlab_request_duration_seconds", "Request duration.", labels=["name", "method"])
    keys = sorted(t.seconds)
    for name, method in keys:
        running = 0
        cumulative = []
        for i, bound in enumerate((*BUCKETS, float("inf"))):
            running += t.buckets.get((name, method, i), 0)
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        hist.add_metric([name, method], cumulative, sum_value=t.seconds[(name, method)])
    return hist


def serve(collector: Collector, port: int, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve a private registry holding `collector` on addr:port; returns a function that stops it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, thread = start_http_server(port, addr=addr, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
