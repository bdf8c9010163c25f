"""Every PromQL query of the Grafana dashboards runs against a real Prometheus that loads prometheus/rules.yml
and scrapes benchlab's own exporters (runner tally, sidecar snapshot) and the demo target.

Grafana itself is not run here: grafana_queries.py expands variables as Grafana does.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_fixture import DASHBOARDS, GENERATE, PROMQL, REPO, by_title
from grafana_queries import PROMETHEUS_UID, Query, Value, expand_promql, label_values_call, variables
from promserver import PROMETHEUS, free_port, start_prometheus, stop_process
from target_fixture import Target

from benchlab.metrics.exporter import RunLabels, RunnerCollector, Tally, serve
from benchlab.metrics.sidecar.exposition import QueueReading, ServiceReading, SidecarCollector, Snapshot
from benchlab.metrics.store.sample import Sample

RATE_INTERVAL = "20s"
"""$__rate_interval for a 5 s scrape interval (at least four scrapes); the test's Prometheus scrapes every 1 s."""
BUILTINS = {"__rate_interval": RATE_INTERVAL, "__interval": "5s", "__range": "1h", "__range_s": "3600"}
PROM_VALUES: dict[str, Value] = {"endpoint": "$__all", "service": "$__all", "queue": "$__all"}

needs_prometheus = pytest.mark.skipif(
    not os.access(PROMETHEUS, os.X_OK), reason="prometheus is not installed (apt-get install prometheus)"
)

HEALTH_MS = (3.0, 3.0, 7.0, 7.0, 7.0, 7.0, 20.0, 20.0, 20.0, 40.0)
"""Per tick: cumulative buckets 2, 6, 9, 10 at 5, 10, 25, 50 ms, so p50 = 8.75 ms and p95 = 37.5 ms exactly."""


class Feed:
    """Drives the exporters: a growing runner tally, a sidecar snapshot with growing counters, target traffic."""

    def __init__(self, target: Target) -> None:
        self.tally = Tally()
        self.target = target
        self.started = time.monotonic()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            now = time.time()
            batch: list[Sample] = [(now, "/health", "GET", ms, 20, 0, 200, True, None) for ms in HEALTH_MS]
            for i in range(10):
                ok = i != 0
                batch.append((now, GENERATE[1], GENERATE[0], 150.0 + 10 * i, 900, 80, 200 if ok else 500, ok, None))
            tally = Tally.merged([self.tally])  # a scrape sees the tally before or after this tick, never during it
            tally.observe(batch)
            self.tally = tally
            try:
                self.target.get("/health")
                self.target.get("/api/v1/status")
            except OSError:
                pass
            self.stopped.wait(0.25)

    def snapshot(self) -> Snapshot:
        t = time.monotonic() - self.started

        def service(name: str, cpu: float, rss: int) -> ServiceReading:
            return ServiceReading(
                service=name,
                process_count=1,
                restarts=0,
                cpu_percent=cpu,
                cpu_percent_total=cpu / 2,
                rss_bytes=rss,
                threads=12,
                open_fds=40,
                disk_read_bps=100.0,
                disk_write_bps=2048.0,
                net_rx_bps=9e4,
                net_tx_bps=3e5,
                cpu_seconds=cpu / 100 * t,
                disk_read_bytes=100.0 * t,
                disk_write_bytes=2048.0 * t,
                net_rx_bytes=9e4 * t,
                net_tx_bytes=3e5 * t,
            )

        queues = (
            QueueReading(
                queue="benchlab:demo:jobs",
                backend="redis",
                length=3,
                publish_rate=4.0,
                consume_rate=4.0,
                backlog_age_seconds=0.8,
                published=4.0 * t,
                consumed=4.0 * t,
            ),
            QueueReading(
                queue="jobs",
                backend="scrape",
                consume_rate=4.0,
                processing_seconds=0.05,
                error_rate=0.02,
                consumed=4.0 * t,
            ),
            QueueReading(
                queue="mail",
                backend="rabbitmq",
                length=5,
                consumers=2,
                publish_rate=1.0,
                consume_rate=1.0,
                published=1.0 * t,
                consumed=1.0 * t,
            ),
        )
        return Snapshot(
            services=(service("target", 35.0, 80 * 2**20), service("redis", 3.0, 12 * 2**20)),
            queues=queues,
            ticks=int(t),
            pending_rows=2,
        )


def _api(base: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:  # 400/422: a bad expression, with Prometheus's error in the body
        return dict(json.loads(exc.read()))


def _result(base: str, expr: str) -> list[dict[str, Any]]:
    body = _api(base, "/api/v1/query", {"query": expr})
    assert body.get("status") == "success", f"Prometheus rejected {expr!r}: {body.get('error')}"
    return list(body["data"]["result"])


def _has_data(base: str, expr: str) -> bool:
    """False while Prometheus is not up yet or has no such series."""
    try:
        return bool(_api(base, "/api/v1/query", {"query": expr}).get("data", {}).get("result"))
    except OSError:
        return False


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, demo_target: Target) -> Iterator[str]:
    """Base URL of a Prometheus with the lab's rules, scraping runner, sidecar and target jobs."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    feed = Feed(demo_target)
    labels = RunLabels(run_id=7, app_version="1.1", scenario="locustfile", test_type="load")
    runner_port, sidecar_port = free_port(), free_port()
    stop_runner = serve(RunnerCollector(tally=lambda: feed.tally, users=lambda: 25, labels=lambda: labels), runner_port)
    stop_sidecar = serve(SidecarCollector(snapshot=feed.snapshot), sidecar_port)
    feeder = threading.Thread(target=feed.run, name="dashboard-feed", daemon=True)
    feeder.start()
    tmp = tmp_path_factory.mktemp("prometheus")
    proc, base = start_prometheus(
        tmp,
        jobs={"runner": runner_port, "sidecar": sidecar_port, "target": demo_target.port},
        rules=REPO / "prometheus" / "rules.yml",
    )
    try:
        ready = (
            'name_method:benchlab_request_duration_seconds:p95_1m{name="/health"}',
            "service:benchlab_process_cpu:ratio_rate1m",
            'rate(http_requests_total{job="target"}[20s]) > 0',
        )
        deadline = time.monotonic() + 45
        while not all(_has_data(base, q) for q in ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp / "prometheus.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Prometheus never had the lab's series (exit {proc.poll()}):\n{log}")
            time.sleep(0.5)
        yield base
    finally:
        feed.stopped.set()
        feeder.join(5)
        stop_process(proc)
        stop_runner()
        stop_sidecar()


@needs_prometheus
@pytest.mark.parametrize("query", [q for q in PROMQL if q.kind != "variable"], ids=lambda q: q.id)
def test_promql_panel_returns_data(prom: str, query: Query) -> None:
    expr = expand_promql(query, PROM_VALUES, variables(DASHBOARDS[query.dashboard]), BUILTINS)
    deadline = time.monotonic() + 15
    while not _result(prom, expr):
        assert time.monotonic() < deadline, f"{query.id}: no data for {expr}"
        time.sleep(1)


@needs_prometheus
@pytest.mark.parametrize("query", [q for q in PROMQL if q.kind == "variable"], ids=lambda q: q.id)
def test_promql_variable_has_values(prom: str, query: Query) -> None:
    label, metric = label_values_call(query.text)
    params = {"match[]": metric} if metric else {}
    body = _api(prom, f"/api/v1/label/{label}/values", params)
    assert body.get("status") == "success", body
    expected = {"endpoint": "/health", "service": "target", "queue": "benchlab:demo:jobs"}[query.title]
    assert expected in body["data"]


@needs_prometheus
def test_latency_panels_show_the_histogram_quantiles(prom: str) -> None:
    query = by_title("benchlab-api", "Latency p50 / p95 / p99 per endpoint", "B")
    expr = expand_promql(query, {"endpoint": ["/health"]}, variables(DASHBOARDS["benchlab-api"]), BUILTINS)
    assert 'name=~"/health"' in expr
    [series] = _result(prom, expr)
    assert float(series["value"][1]) == pytest.approx(0.0375, rel=1e-6)
    failed = expand_promql(by_title("benchlab-api", "Failed requests"), PROM_VALUES, {}, BUILTINS)
    [ratio] = _result(prom, failed)
    assert float(ratio["value"][1]) == pytest.approx(1 / 20, rel=1e-6)
    users = _result(prom, by_title("benchlab-api", "Users").text)
    assert float(users[0]["value"][1]) == 25


@needs_prometheus
def test_a_misspelt_metric_is_caught(prom: str) -> None:
    query = Query("x", "panel", "panel", PROMETHEUS_UID, 'benchlab_proces_threads{service=~"$service"}', "time_series")
    expr = expand_promql(query, PROM_VALUES, {"service": {"allValue": ".*", "includeAll": True}}, BUILTINS)
    assert expr == 'benchlab_proces_threads{service=~".*"}'
    assert _result(prom, expr) == []
    with pytest.raises(AssertionError, match="rejected"):
        _result(prom, "sum by (service (benchlab_process_threads)")
