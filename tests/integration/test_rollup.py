"""Rollups of a finished run equal numpy over the raw samples, on Postgres and SQLite; written when a run
finishes, rewritten after a replay, never for a pruned run."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from run_meta import run_meta
from sqlalchemy import select, update

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import EndpointRollup, LatencyRollup, OutcomeRollup, RunRollup, WindowRollup
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.rollup import (
    BUCKETS_PER_E,
    STAT_QUANTILES,
    WINDOW_QUANTILES,
    latency_bucket,
    pruned,
    refresh,
    rolled_up,
    write_rollup,
)
from benchlab.metrics.store.sample import Sample

T0 = 1_714_996_800.0
"""2024-05-06 12:00:00 UTC: a multiple of 10 s, so window k starts at T0 + 10 k."""
ENDPOINTS = (("/health", "GET", 3.0), ("/api/items", "GET", 25.0), ("/api/generate", "POST", 120.0))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'rollup.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(settings=StoreSettings(url=url, spool_dir=tmp_path / "spool")).open()
    yield s
    s.close()


def _meta(version: str = "1.0") -> RunMeta:
    return run_meta(scenario="rollup", app_version=version, planned_duration_s=75.0)


def _samples(seed: int, n: int = 1500, start: float = T0) -> list[Sample]:
    """75 s of samples (8 windows in two minutes, one window starting exactly on a sample), 2xx/5xx/no response."""
    rng = random.Random(seed)
    out: list[Sample] = []
    for i in range(n):
        ts = start + round(75.0 * i / n, 6) + (0.0 if i == 0 else rng.randrange(1000) * 1e-6)
        name, method, median = ENDPOINTS[i % 3]
        rt = rng.lognormvariate(np.log(median), 0.5)
        kind = rng.random()
        status, ok, error = (200, True, None)
        if kind < 0.05:
            status, ok, error = 500, False, "HTTPError('500 Server Error')"
        elif kind < 0.07:
            status, ok, error = None, False, "ConnectionRefusedError(111)"
        out.append((ts, name, method, rt, rng.randrange(100, 900), 64 if method == "POST" else None, status, ok, error))
    out.append((T0 + 60.0, "/health", "GET", 0.0, 0, None, None, False, "timeout"))  # on a minute edge, 0 ms
    return out


def _finished_run(store: Store, samples: list[Sample], version: str = "1.0") -> int:
    run_id = store.start_run(_meta(version), started_at=datetime.fromtimestamp(T0, UTC))
    store.write_samples(run_id, None, samples)
    store.finish_run(run_id, status="completed", summary={}, ended_at=datetime.fromtimestamp(T0 + 80.0, UTC))
    if not store.is_postgres:  # only Postgres, which Grafana reads, rolls up as a run ends
        assert rolled_up(store, [run_id]) == set()
        assert write_rollup(store, run_id) > 0
    return run_id


def _rows(store: Store, model: Any, run_id: int) -> list[dict[str, Any]]:
    table = model.__table__
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(table.c.run_id == run_id)).mappings()]


def _epoch(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def test_endpoint_rollups_are_exact_and_agree_with_query(store: Store) -> None:
    samples = _samples(1)
    run_id = _finished_run(store, samples)
    rows = {(r["name"], r["method"]): r for r in _rows(store, EndpointRollup, run_id)}
    assert set(rows) == {(n, m) for n, m, _ in ENDPOINTS} | {("", "")}
    for (name, method), row in rows.items():
        mine = [s for s in samples if name == "" or (s[1], s[2]) == (name, method)]
        ms = np.array([s[3] for s in mine])
        assert row["requests"] == len(mine)
        assert row["failures"] == sum(1 for s in mine if not s[7])
        assert row["mean_ms"] == pytest.approx(ms.mean(), rel=1e-12)
        for key, q in STAT_QUANTILES.items():
            assert row[key] == pytest.approx(np.percentile(ms, 100 * q), rel=1e-12), key
        assert (row["min_ms"], row["max_ms"]) == (ms.min(), ms.max())
        assert row["response_bytes"] == sum(s[4] or 0 for s in mine)
        assert row["request_bytes"] == sum(s[5] or 0 for s in mine)
        assert row["rps"] == pytest.approx(len(mine) / 80.0)
        assert row["status_counts"] == dict(Counter("none" if s[6] is None else str(s[6]) for s in mine))
        assert _epoch(row["first_ts"]) == pytest.approx(min(s[0] for s in mine), abs=1e-6)
    for exact in endpoint_stats(store, run_id):
        row = rows[(exact.name, exact.method)]
        assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == pytest.approx(
            (exact.p50_ms, exact.p95_ms, exact.p99_ms), rel=1e-12
        )
    [meta] = _rows(store, RunRollup, run_id)
    assert meta["samples"] == len(samples) and meta["pruned_at"] is None


def test_window_rollups_are_exact_per_ten_seconds(store: Store) -> None:
    samples = _samples(2)
    run_id = _finished_run(store, samples)
    expected: dict[tuple[str, str, float], list[Sample]] = defaultdict(list)
    for s in samples:
        expected[(s[1], s[2], float(np.floor(s[0] / 10) * 10))].append(s)
    rows = {(r["name"], r["method"], _epoch(r["ts"])): r for r in _rows(store, WindowRollup, run_id)}
    assert set(rows) == set(expected)
    assert {k[2] for k in rows} == {T0 + 10 * k for k in range(8)}, "windows of two minutes"
    edge = rows[("/health", "GET", T0 + 60)]
    assert edge["min_ms"] == 0.0, "a sample at exactly 12:01:00 opens the window (and minute) of 12:01:00"
    for key, row in rows.items():
        ms = np.array([s[3] for s in expected[key]])
        assert row["requests"] == ms.size
        assert row["failures"] == sum(1 for s in expected[key] if not s[7])
        assert row["sum_ms"] == pytest.approx(ms.sum(), rel=1e-12)
        assert (row["min_ms"], row["max_ms"]) == (ms.min(), ms.max())
        for name, q in WINDOW_QUANTILES.items():
            assert row[name] == pytest.approx(np.percentile(ms, 100 * q), rel=1e-12), (key, name)


def test_outcome_and_latency_rollups_count_every_sample(store: Store) -> None:
    samples = _samples(3)
    run_id = _finished_run(store, samples)
    outcomes = Counter((s[1], s[2], float(np.floor(s[0] / 10) * 10), s[6], s[7], s[8]) for s in samples)
    rows = _rows(store, OutcomeRollup, run_id)
    got = {(r["name"], r["method"], _epoch(r["ts"]), r["status_code"], r["success"], r["error"]): r for r in rows}
    assert {k: r["requests"] for k, r in got.items()} == dict(outcomes)
    last = max(s[0] for s in samples if s[8] == "timeout")
    assert _epoch(next(r["last_ts"] for r in rows if r["error"] == "timeout")) == pytest.approx(last, abs=1e-6)
    hist = _rows(store, LatencyRollup, run_id)
    ms = np.array([s[3] for s in samples])
    total = {r["bucket"]: r["requests"] for r in hist if r["name"] == ""}
    assert total == dict(Counter(latency_bucket(ms).tolist()))
    assert sum(r["requests"] for r in hist) == 2 * len(samples), "each endpoint once, and all of them once"


def test_pooled_histogram_percentile_is_within_half_a_percent(store: Store) -> None:
    """The dashboards' estimate over several runs: both order statistics from the merged buckets, interpolated."""
    a, b = _samples(4), _samples(5)
    ids = [_finished_run(store, a), _finished_run(store, b)]
    counts: Counter[int] = Counter()
    for run_id in ids:
        for r in _rows(store, LatencyRollup, run_id):
            if r["name"] == "":
                counts[r["bucket"]] += r["requests"]
    buckets = sorted(counts)
    cumulative = np.cumsum([counts[k] for k in buckets])
    pooled = np.array([s[3] for s in a + b])

    def order_statistic(rank: int) -> float:
        return float(np.exp((buckets[int(np.searchsorted(cumulative, rank, side="right"))] + 0.5) / BUCKETS_PER_E))

    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        rank = q * (pooled.size - 1)
        lo, hi = order_statistic(int(rank)), order_statistic(int(rank) + 1)
        estimate = lo + (hi - lo) * (rank - int(rank))
        assert estimate == pytest.approx(np.percentile(pooled, 100 * q), rel=0.005), q


def test_rollups_are_rewritten_not_doubled_and_refresh_skips_running_and_pruned(store: Store) -> None:
    samples = _samples(6)
    done = _finished_run(store, samples)
    write_rollup(store, done)
    assert sum(r["requests"] for r in _rows(store, WindowRollup, done)) == len(samples)
    late = [(T0 + 76.0, "/health", "GET", 5.0, 10, None, 200, True, None)]
    store.write_samples(done, None, late)  # what `benchlab replay` does for a finished run
    running = store.start_run(_meta())
    store.write_samples(running, None, late)
    assert refresh(store, [done, running]) == [done]
    assert sum(r["requests"] for r in _rows(store, WindowRollup, done)) == len(samples) + 1
    assert _rows(store, RunRollup, running) == []
    with store.engine.begin() as conn:
        conn.execute(update(RunRollup).where(RunRollup.run_id == done).values(pruned_at=datetime.now(UTC)))
    assert set(pruned(store, [done, running])) == {done}
    assert refresh(store, [done]) == [] and write_rollup(store, done) == 0
    assert len(_rows(store, EndpointRollup, done)) == 4, "a pruned run keeps its rollups"


def test_a_run_without_samples_gets_an_empty_rollup(store: Store) -> None:
    run_id = store.start_run(_meta())
    store.finish_run(run_id, status="failed", summary={}, ended_at=datetime.now(UTC) + timedelta(seconds=1))
    if not store.is_postgres:
        write_rollup(store, run_id)
    [meta] = _rows(store, RunRollup, run_id)
    assert meta["samples"] == 0 and _rows(store, EndpointRollup, run_id) == []


def test_benchlab_replay_rolls_up_again_a_finished_run_it_adds_samples_to(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchlab.metrics.store.spool import Spool
    from benchlab.runners.cli import main

    samples = _samples(7)
    run_id = _finished_run(store, samples)
    late = [(T0 + 76.0 + i, "/late", "GET", 7.0, 10, None, 200, True, None) for i in range(3)]
    Spool(directory=store.settings.spool_dir).put(run_id, "w1", late)
    code = main(["replay", "--db", store.settings.url, "--spool-dir", str(store.settings.spool_dir)])
    assert code == 0 and "replayed 3 samples" in capsys.readouterr().out
    rows = {(r["name"], r["method"]): r for r in _rows(store, EndpointRollup, run_id)}
    assert rows[("/late", "GET")]["requests"] == 3 and rows[("", "")]["requests"] == len(samples) + 3
    assert _rows(store, RunRollup, run_id)[0]["samples"] == len(samples) + 3
