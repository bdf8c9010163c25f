"""The runner's exposition: tally counts, histogram buckets, worker merge, and the served text format."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchlab.metrics.exporter import RunLabels, RunnerCollector, Tally, serve

BATCH = [
    (1.0, "/a", "GET", 3.0, 10, None, 200, True, None),
    (1.0, "/a", "GET", 30.0, 10, None, 200, True, None),
    (1.0, "/a", "GET", 3000.0, 0, None, 500, False, "HTTPError: 500"),
    (1.0, "/b", "POST", 0.5, 0, 4, None, False, "ConnectionError: refused"),
]


def _families(tally: Tally, users: int = 3) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry(auto_describe=False)
    labels = RunLabels(run_id=9, app_version="1.1", scenario="s", test_type="spike")
    registry.register(RunnerCollector(tally=lambda: tally, users=lambda: users, labels=lambda: labels))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_counts_failures_and_cumulative_buckets() -> None:
    tally = Tally()
    tally.observe(BATCH)
    fam = _families(tally)
    assert fam["benchlab_requests_total"] == {
        (("method", "GET"), ("name", "/a"), ("status", "200")): 2,
        (("method", "GET"), ("name", "/a"), ("status", "500")): 1,
        (("method", "POST"), ("name", "/b"), ("status", "none")): 1,
    }
    assert fam["benchlab_request_failures_total"][(("method", "GET"), ("name", "/a"))] == 1
    buckets = {
        dict(k)["le"]: v for k, v in fam["benchlab_request_duration_seconds_bucket"].items() if dict(k)["name"] == "/a"
    }
    assert (buckets["0.005"], buckets["0.025"], buckets["2.5"], buckets["5.0"], buckets["+Inf"]) == (1, 1, 2, 3, 3)
    assert fam["benchlab_request_duration_seconds_sum"][(("method", "GET"), ("name", "/a"))] == 3.033
    assert fam["benchlab_users"][()] == 3
    info = dict(next(iter(fam["benchlab_run_info"])))
    assert info == {"run_id": "9", "app_version": "1.1", "scenario": "s", "test_type": "spike"}


def test_worker_snapshots_merge_into_the_master_view() -> None:
    one, two = Tally(), Tally()
    one.observe(BATCH[:2])
    two.observe(BATCH[2:])
    merged = Tally.merged([Tally(), Tally.from_snapshot(one.snapshot()), Tally.from_snapshot(two.snapshot())])
    whole = Tally()
    whole.observe(BATCH)
    assert _families(merged) == _families(whole)


def test_serve_exposes_the_collector_and_stops() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tally = Tally()
    tally.observe(BATCH)
    labels = RunLabels(run_id=1, app_version="v", scenario="s", test_type="load")
    stop = serve(RunnerCollector(tally=lambda: tally, users=lambda: 0, labels=lambda: labels), port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop()
    assert 'benchlab_requests_total{method="GET",name="/a",status="200"} 2.0' in body
