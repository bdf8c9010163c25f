"""Postgres checked as exactly as SQLite: every number of a run against numpy over the raw samples, on both stores.

Postgres writes with COPY and aggregates with `percentile_cont`; SQLite inserts and aggregates in numpy. Both
go through `Store` here, and both must give the same numbers as a numpy computation over what was written.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import benchlab
from run_meta import run_meta
from target_fixture import Target

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.stats import EndpointStats

T0_US = 1_714_996_800 * 1_000_000
"""2024-05-06 12:00:00 UTC in microseconds: timestamps are whole microseconds, exact in both stores."""
ENDPOINTS = (("/health", "GET"), ('/search?q="a,b"', "GET"), ("/api/v1/content/generate", "POST"))
"""Names with a quote and a comma go through COPY's CSV quoting."""
ERRORS = ('HTTPError: 500 Server Error: "boom", retry', "ConnectionRefusedError: [Errno 111]\nrefused", None)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite or Postgres store URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'parity.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(settings=StoreSettings(url=store_url)).open()
    yield s
    s.close()


def _meta() -> RunMeta:
    return run_meta(scenario="parity", app_version="1.0", planned_duration_s=10.0, workers=2)


def _samples(rng: random.Random, n: int, offset_us: int) -> list[tuple[int, Sample]]:
    """(micros, Sample) with lognormal times, 2xx/4xx/5xx/no-response outcomes and missing byte counts."""
    out: list[tuple[int, Sample]] = []
    for i in range(n):
        us = T0_US + offset_us + i * 997 + rng.randrange(500)
        name, method = ENDPOINTS[i % len(ENDPOINTS)]
        rt = rng.lognormvariate(3.0, 0.8) + rng.random() * 1e-6
        kind = rng.random()
        status: int | None
        if kind < 0.80:
            status, ok, error = 200, True, None
        elif kind < 0.88:
            status, ok, error = 404, False, "HTTPError: 404 Not Found"
        elif kind < 0.94:
            status, ok, error = 500, False, ERRORS[0]
        elif kind < 0.97:
            status, ok, error = 0, False, ERRORS[1]
        else:
            status, ok, error = None, False, "CatchResponseError: rejected"
        resp = None if rng.random() < 0.05 else rng.randrange(0, 50_000)
        req = None if method == "GET" else rng.randrange(10, 400)
        out.append((us, (us / 1e6, name, method, rt, resp, req, status, ok, error)))
    return out


def _numpy_row(key: tuple[str, str], samples: list[Sample]) -> dict[str, Any]:
    """What endpoint_stats must report, computed with numpy and plain Python over the written tuples."""
    rt = np.array([s[3] for s in samples])
    codes = Counter("none" if not s[6] else str(s[6]) for s in samples)
    return {
        "key": key,
        "requests": len(samples),
        "failures": sum(1 for s in samples if not s[7]),
        "mean_ms": float(rt.mean()),
        "p50_ms": float(np.percentile(rt, 50)),
        "p95_ms": float(np.percentile(rt, 95)),
        "p99_ms": float(np.percentile(rt, 99)),
        "min_ms": float(rt.min()),
        "max_ms": float(rt.max()),
        "response_bytes": sum(s[4] or 0 for s in samples),
        "request_bytes": sum(s[5] or 0 for s in samples),
        "status_counts": dict(codes),
    }


def _assert_row(row: EndpointStats, want: dict[str, Any]) -> None:
    got = {k: getattr(row, k) for k in want if k != "key"}
    for k in ("requests", "failures", "response_bytes", "request_bytes", "status_counts"):
        assert got[k] == want[k], (want["key"], k, got[k], want[k])
    for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"):
        assert got[k] == pytest.approx(want[k], rel=1e-9), (want["key"], k, got[k], want[k])
    assert row.error_rate == pytest.approx(want["failures"] / want["requests"], rel=1e-12)


def test_store_writes_and_stats_match_numpy(store: Store) -> None:
    """Every field round-trips through the write path; every stat equals numpy over the written samples."""
    rng = random.Random(12)
    run_id = store.start_run(_meta())
    other = store.start_run(_meta())
    written: list[tuple[int, str | None, Sample]] = []
    for b, worker in enumerate(("w1", "w2", None, "w1")):
        batch = _samples(rng, 601, offset_us=b * 200_000_000)
        store.write_samples(run_id, worker, [s for _, s in batch])
        written += [(us, worker, s) for us, s in batch]
    noise = _samples(rng, 50, offset_us=0)
    store.write_samples(other, "w9", [s for _, s in noise])  # another run: must not leak into run_id's numbers

    back = list(store.iter_samples(run_id))
    assert len(back) == len(written) == store.count_samples(run_id)

    def key(ts: datetime, worker: str | None, name: str) -> tuple[int, str, str]:
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        micros = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        return micros, worker or "", name

    expected = {
        key(datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000), w, s[1]): s
        for us, w, s in written
    }
    for row in back:
        s = expected[key(row["ts"], row["worker"], row["name"])]
        got = (row["method"], row["response_time_ms"], row["response_length"], row["request_length"])
        assert got == (s[2], s[3], s[4], s[5])
        assert (row["status_code"], bool(row["success"]), row["error"]) == (s[6], s[7], s[8])
    assert Counter(r["worker"] for r in back) == Counter(w for _, w, _ in written)

    rows = endpoint_stats(store, run_id)
    by_key: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for _, _, s in written:
        by_key[(s[1], s[2])].append(s)
    assert [(r.name, r.method) for r in rows] == [*sorted(by_key), ("", "")]
    for row in rows:
        samples = [s for _, _, s in written] if row.is_total else by_key[(row.name, row.method)]
        _assert_row(row, _numpy_row((row.name, row.method), samples))
    total = rows[-1]
    assert total.failures > 100 and {"200", "404", "500", "none"} <= set(total.status_counts)
    assert total.first_ts == pytest.approx(min(us for us, _, _ in written) / 1e6, abs=1e-6)
    assert total.last_ts == pytest.approx(max(us for us, _, _ in written) / 1e6, abs=1e-6)

    # A time range keeps exactly the samples with from <= ts < to.
    lo, hi = (T0_US + 200_000_000) / 1e6, (T0_US + 600_000_000) / 1e6
    kept = [s for us, _, s in written if lo <= us / 1e6 < hi]
    ranged = endpoint_stats(store, run_id, between={run_id: (lo, hi)})
    _assert_row(ranged[-1], _numpy_row(("", ""), kept))


FAILING_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Mixed(FastHttpUser):
    wait_time = constant(0.01)

    @task(4)
    def health(self):
        self.client.get("/health")

    @task(2)
    def missing(self):
        self.client.get("/api/v1/nothing-here", name="/missing")

    @task(2)
    def generate(self):
        self.client.post("/api/v1/content/generate", json={"type": "simple", "topic": "parity"})

    @task
    def refused(self):
        self.client.get("http://127.0.0.1:9/refused", name="/refused")

    @task
    def rejected(self):
        with self.client.get("/health", name="/rejected", catch_response=True) as resp:
            resp.failure("rejected by the test")
"""


def _export(run_id: int, db: str, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / f"run{run_id}.csv"
    res = benchlab("export", "--run", str(run_id), "--csv", str(out), "--db", db)
    assert res.code == 0, res.stderr
    with out.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _int(text: str) -> int:
    return int(text) if text else 0


def test_run_with_failures_matches_the_exported_samples(store_url: str, demo_target: Target, tmp_path: Path) -> None:
    """A real run with 404s, refused connections and rejected responses, two workers: its summary is exact."""
    path = tmp_path / "mixed_test.py"
    path.write_text(FAILING_LOCUSTFILE)
    res = benchlab(
        "run", "-f", str(path), "--host", demo_target.url, "-u", "6", "-r", "6", "-t", "4s", "--test-type",
        "baseline", "--workers", "2", "--db", store_url, "--json", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    s = res.summary
    rows = _export(s["run_id"], store_url, tmp_path)
    assert len(rows) == s["stored_samples"] == s["total_requests"] > 100
    assert {r["worker"] for r in rows} == {"w1", "w2"}
    failed = [r for r in rows if r["success"] != "True"]
    # Locust's own failure count, the stored success flags and the summary agree.
    assert s["failures"] == len(failed) == sum(e["failures"] for e in s["endpoints"]) > 0
    assert s["error_rate"] == pytest.approx(len(failed) / len(rows), rel=1e-12)
    times = np.array([float(r["response_time_ms"]) for r in rows])
    for q, k in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
        assert s[k] == pytest.approx(float(np.percentile(times, q)), rel=1e-9), k
    assert s["mean_ms"] == pytest.approx(float(times.mean()), rel=1e-9)
    assert s["max_ms"] == pytest.approx(float(times.max()), rel=1e-12)

    endpoints = {e["name"]: e for e in s["endpoints"]}
    assert set(endpoints) == {"/health", "/missing", "/api/v1/content/generate", "/refused", "/rejected"}
    for name, e in endpoints.items():
        mine = [r for r in rows if r["name"] == name]
        rt = np.array([float(r["response_time_ms"]) for r in mine])
        assert e["requests"] == len(mine) and e["method"] == mine[0]["method"]
        assert e["failures"] == sum(1 for r in mine if r["success"] != "True")
        for q, k in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
            assert e[k] == pytest.approx(float(np.percentile(rt, q)), rel=1e-9), (name, k)
        assert e["mean_ms"] == pytest.approx(float(rt.mean()), rel=1e-9)
        assert e["status_counts"] == dict(Counter(r["status_code"] if _int(r["status_code"]) else "none" for r in mine))
        assert e["response_bytes"] == sum(_int(r["response_length"]) for r in mine)
        assert e["request_bytes"] == sum(_int(r["request_length"]) for r in mine)
        assert {r["worker"] for r in mine} <= {"w1", "w2"}
    # What each endpoint is known to do.
    assert endpoints["/health"]["failures"] == 0 and set(endpoints["/health"]["status_counts"]) == {"200"}
    assert endpoints["/missing"]["failures"] == endpoints["/missing"]["requests"]
    assert set(endpoints["/missing"]["status_counts"]) == {"404"}
    assert endpoints["/refused"]["failures"] == endpoints["/refused"]["requests"]
    assert set(endpoints["/refused"]["status_counts"]) == {"none"}
    assert endpoints["/rejected"]["failures"] == endpoints["/rejected"]["requests"]
    assert set(endpoints["/rejected"]["status_counts"]) == {"200"}
    assert all("rejected by the test" in r["error"] for r in rows if r["name"] == "/rejected")
    assert endpoints["/api/v1/content/generate"]["request_bytes"] > 0
    assert endpoints["/health"]["response_bytes"] > 0
    run = Store(settings=StoreSettings(url=store_url)).get_run(s["run_id"])
    assert run is not None and run.total_failures == s["failures"]
    assert run.error_rate == pytest.approx(s["error_rate"], rel=1e-12)
    assert (run.p95_ms, run.p99_ms) == (pytest.approx(s["p95_ms"], rel=1e-12), pytest.approx(s["p99_ms"], rel=1e-12))
