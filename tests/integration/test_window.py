"""Windowed aggregation in SQL and run selection on real Postgres (COPY) and SQLite, checked against raw samples."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import temp_database
from run_meta import run_meta
from sqlalchemy import event

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.query import endpoint_stats, latest_runs, runs_by_id, versions
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.window import queue_rows, register_sqlite_math, resource_rows, window_rows

T0_US = 1_714_996_800 * 1_000_000
"""2024-05-06 12:00:00 UTC in microseconds: every timestamp is a whole number of microseconds."""
ENDPOINTS = (("/health", "GET"), ("/api/v1/content/generate", "POST"), ("/api/v1/content/{id}", "GET"))
ODD_MS = (0.0, 1e-9, 0.0005, 0.001, 0.0010001, 2.5e5, 3.6e6, 1e7)
"""Below, at and just above min_ms, and very slow requests."""


def _meta(version: str, scenario: str = "checkout", test_type: str = "load") -> RunMeta:
    return run_meta(scenario=scenario, test_type=test_type, app_version=version, planned_duration_s=10.0)


@dataclass
class Data:
    """What was written: the store, run ids by key, and every sample as (run_id, micros, Sample)."""

    store: Store
    runs: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[int, int, Sample]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)


def _samples(rng: random.Random, start_us: int, seconds: int, slow: float) -> list[tuple[int, Sample]]:
    out: list[tuple[int, Sample]] = []
    for i in range(seconds * 120):
        us = start_us + rng.randrange(seconds * 1_000_000)
        if i % 97 == 0:
            us = start_us + rng.randrange(seconds) * 1_000_000 + rng.choice((0, 999_999, 250_000, 750_000))
        name, method = ENDPOINTS[i % len(ENDPOINTS)]
        ms = ODD_MS[i % len(ODD_MS)] if i % 41 == 0 else rng.lognormvariate(math.log(slow), 0.4)
        roll = rng.random()
        if roll < 0.04:  # an exception: no response at all
            sample = (us / 1e6, name, method, ms, None, 10, None, False, "ConnectionError('refused')")
        elif roll < 0.08:  # a non-2xx response
            code = rng.choice((404, 500, 503))
            sample = (us / 1e6, name, method, ms, 12, 10, code, False, f"HTTPError('{code}')")
        else:
            sample = (us / 1e6, name, method, ms, 512, 10, 200, True, None)
        out.append((us, sample))
    return out


def _fill(store: Store) -> Data:
    data = Data(store=store)
    rng = random.Random(7)
    base = datetime.fromtimestamp(T0_US / 1e6, UTC)
    plan = {  # key: (version, scenario, test type, minutes after T0, status, slow ms)
        "a": ("1.0", "checkout", "load", 0, "completed", 20.0),
        "b": ("1.0", "checkout", "load", 10, "completed", 22.0),
        "aborted": ("1.0", "checkout", "load", 20, "aborted", 90.0),
        "running": ("1.0", "checkout", "load", 30, "running", 90.0),
        "stress": ("1.0", "search", "stress", 25, "completed", 30.0),
        "c": ("1.1", "checkout", "load", 15, "completed", 35.0),
        "failed": ("2.0", "checkout", "load", 40, "failed", 5.0),
    }
    for key, (version, scenario, test_type, minutes, status, slow) in plan.items():
        run_id = store.start_run(_meta(version, scenario, test_type), started_at=base + timedelta(minutes=minutes))
        data.runs[key] = run_id
        if key in ("a", "b", "c", "aborted"):
            rows = _samples(rng, T0_US + minutes * 60_000_000, 12, slow)
            half = len(rows) // 2
            store.write_samples(run_id, "w1", [s for _, s in rows[:half]])
            store.write_samples(run_id, None, [s for _, s in rows[half:]])
            data.samples += [(run_id, us, s) for us, s in rows]
            _readings(data, run_id, base + timedelta(minutes=minutes), rng)
        if status != "running":
            store.finish_run(run_id, status=status, summary={})
    store.write_resource_samples(data.resources)
    store.write_queue_samples(data.queues)
    return data


def _readings(data: Data, run_id: int, start: datetime, rng: random.Random) -> None:
    for tick in range(30):
        ts = start + timedelta(microseconds=tick * 400_000 + rng.randrange(1000))
        for service in ("target", "redis"):
            cpu = None if tick % 7 == 3 else rng.uniform(1, 90)
            rss = None if tick % 5 == 4 else rng.randrange(10, 200) * 2**20
            data.resources.append(
                {"run_id": run_id, "ts": ts, "service": service, "process_count": 1, "restarts": 0}
                | {"cpu_percent": cpu, "rss_bytes": rss}
            )
        for queue in ("jobs", "mail"):
            length = None if tick % 6 == 1 else rng.randrange(0, 50)
            data.queues.append({"run_id": run_id, "ts": ts, "queue": queue, "backend": "redis", "length": length})


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    """One store per backend, filled once through the real write path."""
    spool = tmp_path_factory.mktemp("spool")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'bench.db'}"
        store = Store(settings=StoreSettings(url=url, spool_dir=spool)).open()
        yield _fill(store)
        store.close()
        return
    with temp_database() as url:
        store = Store(settings=StoreSettings(url=url, spool_dir=spool)).open()
        yield _fill(store)
        store.close()


# ---------------------------------------------------------------------------------------------- windows


def _expected(
    data: Data, run_ids: list[int], window_s: float, per_e: int, min_ms: float
) -> dict[tuple[int, str, str, int, int], list[float]]:
    out: dict[tuple[int, str, str, int, int], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for run_id, us, sample in data.samples:
        if run_id not in run_ids:
            continue
        _, name, method, ms, _, _, _, ok, _ = sample
        window = math.floor((us / 1_000_000) / window_s)
        bucket = math.floor(math.log(max(ms, min_ms)) * per_e)
        cell = out[(run_id, name, method, window, bucket)]
        cell[0] += 1
        cell[1] += 0 if ok else 1
        cell[2] += ms
    return out


@pytest.mark.parametrize(
    ("window_s", "per_e", "min_ms"), [(1.0, 50, 0.001), (0.25, 50, 0.001), (3.0, 10, 1.0), (0.1, 50, 0.001)]
)
def test_window_rows_match_the_raw_samples(data: Data, window_s: float, per_e: int, min_ms: float) -> None:
    ids = [data.runs["a"], data.runs["c"], data.runs["aborted"]]
    rows = window_rows(data.store, ids, window_s=window_s, buckets_per_e=per_e, min_ms=min_ms)
    expected = _expected(data, ids, window_s, per_e, min_ms)
    got = {r[:5]: r[5:] for r in rows}
    assert len(got) == len(rows), "one row per group"
    assert set(got) == set(expected)
    for key, (count, failures, sum_ms) in got.items():
        assert (count, failures) == tuple(expected[key][:2]), key
        assert sum_ms == pytest.approx(expected[key][2], rel=1e-12, abs=1e-6), key
    for row in rows[:50]:
        assert [type(v) for v in row] == [int, str, str, int, int, int, int, float]
    assert min(r[4] for r in rows) == math.floor(math.log(min_ms) * per_e), "times below min_ms share its bucket"
    assert any(r[6] for r in rows) and any(r[5] > 1 for r in rows)
    assert sum(r[5] for r in rows) == sum(1 for s in data.samples if s[0] in ids)


def test_window_indices_are_absolute_and_microsecond_exact(data: Data) -> None:
    ids = [data.runs["b"]]
    rows = window_rows(data.store, ids)
    start = (T0_US + 10 * 60_000_000) // 1_000_000
    assert min(r[3] for r in rows) == start
    assert max(r[3] for r in rows) == start + 11
    on_edge = [(us, s) for run_id, us, s in data.samples if run_id in ids and us % 1_000_000 in (0, 999_999)]
    assert on_edge, "the dataset has samples on both sides of a window edge"
    assert window_rows(data.store, []) == []
    assert window_rows(data.store, [10_000]) == []
    with pytest.raises(ValueError):
        window_rows(data.store, ids, window_s=0)


def test_sqlite_math_fallbacks_give_the_same_rows(tmp_path: Path) -> None:
    store = Store(settings=StoreSettings(url=f"sqlite:///{tmp_path / 'm.db'}", spool_dir=tmp_path)).open()
    data = Data(store=store)
    run_id = store.start_run(_meta("1.0"))
    rows = _samples(random.Random(3), T0_US, 5, 15.0)
    store.write_samples(run_id, None, [s for _, s in rows])
    data.samples = [(run_id, us, s) for us, s in rows]
    builtin = window_rows(store, [run_id])
    store.engine.dispose()
    calls = []

    def counted_ln(x: float) -> float:
        calls.append(x)
        return math.log(x)

    def python_math(dbapi_conn: Any, _record: Any) -> None:
        register_sqlite_math(dbapi_conn)  # overrides the built-in functions, as on a build without them
        dbapi_conn.create_function("ln", 1, counted_ln, deterministic=True)

    event.listen(store.engine, "connect", python_math)
    fallback = window_rows(store, [run_id])
    assert len(calls) >= len(rows), "the Python ln replaced SQLite's"
    assert sorted(fallback) == sorted(builtin)
    expected = _expected(data, [run_id], 1.0, 50, 0.001)
    assert {r[:5]: r[5:7] for r in fallback} == {k: (v[0], v[1]) for k, v in expected.items()}
    store.close()


def _means(rows: list[dict[str, Any]], ids: list[int], label: str, column: str) -> dict[tuple[int, str, int], float]:
    cells: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for row in rows:
        if row["run_id"] in ids and row[column] is not None:
            cells[(row["run_id"], row[label], math.floor(row["ts"].timestamp()))].append(float(row[column]))
    return {k: float(np.mean(v)) for k, v in cells.items()}


def test_resource_and_queue_means_per_window(data: Data) -> None:
    ids = [data.runs["a"], data.runs["c"]]
    for column in ("cpu_percent", "rss_bytes"):
        rows = resource_rows(data.store, ids, column=column)
        expected = _means(data.resources, ids, "service", column)
        assert [r[:3] for r in rows] == sorted(expected)
        for run_id, label, window, mean in rows:
            assert mean == pytest.approx(expected[(run_id, label, window)], rel=1e-12)
    rows = queue_rows(data.store, ids)
    expected = _means(data.queues, ids, "queue", "length")
    assert {r[:3]: r[3] for r in rows} == pytest.approx(expected, rel=1e-12)
    assert {r[1] for r in rows} == {"jobs", "mail"}
    with pytest.raises(ValueError, match="column"):
        resource_rows(data.store, ids, column="threads")


# ---------------------------------------------------------------------------------------------- run selection


def test_endpoint_stats_pool_several_runs(data: Data) -> None:
    ids = [data.runs["a"], data.runs["b"]]
    pooled = {(r.name, r.method): r for r in endpoint_stats(data.store, ids)}
    chosen = [s for run_id, _, s in data.samples if run_id in ids]
    for key in [*ENDPOINTS, ("", "")]:
        times = np.array([s[3] for s in chosen if key == ("", "") or (s[1], s[2]) == key])
        row = pooled[key]
        assert row.requests == len(times)
        assert row.failures == sum(1 for s in chosen if not s[7] and (key == ("", "") or (s[1], s[2]) == key))
        assert row.mean_ms == pytest.approx(float(times.mean()), rel=1e-9)
        for q, value in ((50, row.p50_ms), (95, row.p95_ms), (99, row.p99_ms)):
            assert value == pytest.approx(float(np.percentile(times, q)), rel=1e-9)
    assert pooled[("", "")].status_counts["none"] == sum(1 for s in chosen if s[6] is None)
    single = endpoint_stats(data.store, data.runs["a"])
    assert single[-1].requests == sum(1 for run_id, _, _ in data.samples if run_id == data.runs["a"])
    assert endpoint_stats(data.store, (data.runs["a"],)) == single
    assert endpoint_stats(data.store, []) == []


def test_latest_runs_and_versions(data: Data) -> None:
    r = data.runs
    store = data.store

    def ids(runs: list[Any]) -> list[int]:
        return [run.id for run in runs]

    assert ids(latest_runs(store, version="1.0")) == [r["stress"]]
    assert ids(latest_runs(store, version="1.0", limit=5)) == [r["stress"], r["b"], r["a"]]
    assert ids(latest_runs(store, version="1.0", scenario="checkout", test_type="load", limit=5)) == [r["b"], r["a"]]
    assert ids(latest_runs(store, version="1.0", test_type="stress")) == [r["stress"]]
    assert ids(latest_runs(store, version="1.1", scenario="checkout")) == [r["c"]]
    assert latest_runs(store, version="2.0") == [] and latest_runs(store, version="9.9") == []
    [run] = latest_runs(store, version="1.1")
    assert (run.app_version, run.status, run.scenario) == ("1.1", "completed", "checkout")
    assert versions(store) == ["1.0", "1.1"]
    assert versions(store, scenario="search") == ["1.0"]
    assert versions(store, scenario="checkout", test_type="load") == ["1.0", "1.1"]
    assert versions(store, test_type="soak") == []
    assert ids(runs_by_id(store, [r["c"], 10_000, r["a"], r["running"]])) == [r["c"], r["a"], r["running"]]
    assert runs_by_id(store, []) == []
