"""Every query of the Grafana dashboards runs: SQL against a real Postgres built from schema/ and holding a
small set of runs, PromQL against a real Prometheus that loads prometheus/rules.yml and scrapes benchlab's
own exporters (runner tally, sidecar snapshot) and the demo target.

Grafana itself is not run here: grafana_queries.py expands variables and macros as Grafana does.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras
import pytest
from conftest import pg_admin
from grafana_queries import (
    POSTGRES_UID,
    PROMETHEUS_UID,
    Query,
    TimeRange,
    Value,
    check_frame,
    expand_promql,
    expand_sql,
    label_values_call,
    load,
    panels,
    queries,
    variables,
)
from promserver import PROMETHEUS, free_port, start_prometheus, stop_process
from target_fixture import Target

from benchlab.metrics.exporter import RunLabels, RunnerCollector, Tally, serve
from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.sidecar.exposition import QueueReading, ServiceReading, SidecarCollector, Snapshot
from benchlab.metrics.store import database
from benchlab.metrics.store.rollup import write_rollup
from benchlab.metrics.store.sample import Sample

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = {d["uid"]: d for d in (load(p) for p in sorted((REPO / "dashboards" / "json").glob("*.json")))}
QUERIES = [q for d in DASHBOARDS.values() for q in queries(d)]
SQL = [q for q in QUERIES if q.datasource == POSTGRES_UID]
PROMQL = [q for q in QUERIES if q.datasource == PROMETHEUS_UID]

BASE = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
RANGE = TimeRange(BASE - timedelta(minutes=5), BASE + timedelta(hours=1))
GENERATE = ("POST", "/api/v1/content/generate")
ENDPOINTS = (("GET", "/health"), ("GET", "/api/v1/content/{id}"), GENERATE)


def _by_title(uid: str, title: str, ref: str = "A") -> Query:
    matches = [q for q in QUERIES if q.dashboard == uid and q.title == title and q.where.endswith(f" {ref}")]
    assert len(matches) == 1, f"{uid}: panel {title!r} {ref} not found once ({len(matches)})"
    return matches[0]


# ---------------------------------------------------------------------------------------------- the stored data


@dataclass
class RunData:
    """One run of the test dataset and the samples it was given."""

    version: str
    start: datetime
    seconds: int
    status: str
    id: int = 0
    samples: list[tuple[datetime, str, str, float, int, bool]] = field(default_factory=list)
    """(ts, method, name, response_time_ms, status_code, success)."""
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def times(self, endpoint: tuple[str, str]) -> list[float]:
        return [s[3] for s in self.samples if (s[1], s[2]) == endpoint]


@dataclass
class Store:
    """The temporary database and what was put in it."""

    conn: Any
    runs: dict[str, RunData]

    def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            columns = [c.name for c in cur.description]
            return columns, cur.fetchall()

    def values(self, uid: str, **overrides: Value) -> dict[str, Value]:
        """The variable values the panels of dashboard `uid` are run with."""
        per_dashboard: dict[str, dict[str, Value]] = {
            "benchlab-versions": {
                "scenario": ["content_generation_test", "locustfile"],
                "test_type": ["load"],
                "baseline": "1.0",
                "candidate": "1.1",
                "pick": "latest",
            },
            "benchlab-resources": {"run_id": str(self.runs["candidate"].id)},
        }
        return {**per_dashboard.get(uid, {}), **overrides}

    def execute(self, query: Query, **overrides: Value) -> tuple[list[str], list[tuple[Any, ...]]]:
        definitions = variables(DASHBOARDS[query.dashboard])
        sql = expand_sql(query, self.values(query.dashboard, **overrides), definitions, RANGE)
        try:
            return self.run(sql)
        except psycopg2.Error as exc:
            self.conn.rollback()
            raise AssertionError(f"{query.id} failed: {exc}\n{sql}") from None
        finally:
            self.conn.rollback()


def _make_runs() -> dict[str, RunData]:
    rng = random.Random(20240506)
    runs = {
        "old": RunData("1.0", BASE, 60, "completed"),
        "baseline": RunData("1.0", BASE + timedelta(minutes=10), 60, "completed"),
        "candidate": RunData("1.1", BASE + timedelta(minutes=20), 60, "completed"),
        "aborted": RunData("1.1", BASE + timedelta(minutes=30), 20, "aborted"),
    }
    generate_ms = {"old": 110.0, "baseline": 120.0, "candidate": 180.0, "aborted": 400.0}
    for key, run in runs.items():
        for second in range(run.seconds):
            at = run.start + timedelta(seconds=second)
            for i in range(4):
                ts = at + timedelta(milliseconds=250 * i + rng.randint(0, 200))
                run.samples.append((ts, "GET", "/health", rng.lognormvariate(math.log(4.0), 0.4), 200, True))
            for i in range(3):
                ts = at + timedelta(milliseconds=300 * i + rng.randint(0, 250))
                run.samples.append(
                    (ts, "GET", "/api/v1/content/{id}", rng.lognormvariate(math.log(25.0), 0.5), 200, True)
                )
            for i in range(2):
                ts = at + timedelta(milliseconds=500 * i + rng.randint(0, 400))
                failed = rng.random() < 0.05
                rt = rng.lognormvariate(math.log(generate_ms[key]), 0.35)
                run.samples.append((ts, *GENERATE, rt, 500 if failed else 200, not failed))
            run.cpu.setdefault("target", []).append(
                20.0 + 30.0 * rng.random() + (15.0 if run.version == "1.1" else 0.0)
            )
            run.cpu.setdefault("redis", []).append(2.0 + rng.random())
        run.samples.sort()
    return runs


def _insert(conn: Any, runs: dict[str, RunData]) -> None:
    with conn.cursor() as cur:
        for key, run in runs.items():
            times = np.array([s[3] for s in run.samples])
            failures = sum(1 for s in run.samples if not s[5])
            end = run.start + timedelta(seconds=run.seconds)
            cur.execute(
                """INSERT INTO runs (scenario, test_type, app_version, environment, host, locustfile, user_classes,
                       users, spawn_rate, planned_duration_s, workers, tags, benchlab_version, started_at, ended_at,
                       status, total_requests, total_failures, stored_samples, spooled_samples, replayed_samples,
                       rps, error_rate, mean_ms, p50_ms, p95_ms, p99_ms, max_ms)
                   VALUES ('locustfile', 'load', %s, 'test', 'http://127.0.0.1:8000', 'load_tests/locustfile.py', '[]',
                       10, 5, 60, 0, %s, '0.1.0', %s, %s, %s, %s, %s, %s, 0, 0, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING id""",
                (
                    run.version,
                    json.dumps({"dataset": key}),
                    run.start,
                    end,
                    run.status,
                    len(times),
                    failures,
                    len(times),
                    len(times) / run.seconds,
                    failures / len(times),
                    float(times.mean()),
                    *(float(np.percentile(times, p)) for p in (50, 95, 99)),
                    float(times.max()),
                ),
            )
            run.id = cur.fetchone()[0]
            psycopg2.extras.execute_values(
                cur,
                """INSERT INTO request_samples (run_id, ts, name, method, response_time_ms, response_length,
                       request_length, status_code, success, error, worker) VALUES %s""",
                [
                    (
                        run.id,
                        ts,
                        name,
                        method,
                        rt,
                        512,
                        64,
                        code,
                        ok,
                        None if ok else "HTTPError('500 Server Error')",
                        None,
                    )
                    for ts, method, name, rt, code, ok in run.samples
                ],
            )
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO run_events (run_id, ts, kind, user_count, message, data) VALUES %s",
                [
                    (run.id, run.start, "start", 0, "load run of locustfile", None),
                    (run.id, run.start + timedelta(seconds=2), "stage", 10, "hold", json.dumps({"users": 10})),
                    (run.id, end, "stop", 10, run.status, None),
                ],
            )
            resource_rows: list[tuple[Any, ...]] = []
            queue_rows: list[tuple[Any, ...]] = []
            for second in range(run.seconds):
                ts = run.start + timedelta(seconds=second, milliseconds=500)
                for service, cpu in run.cpu.items():
                    rss = (90 if service == "target" else 12) * 2**20 + second * 4096
                    resource_rows.append(
                        (run.id, ts, service, 1, 0, cpu[second], cpu[second] / 2, rss, 12, 40, 0.0, 2048.0, 9e4, 3e5)
                    )
                queue_rows.append(
                    (run.id, ts, "benchlab:demo:jobs", "redis", second % 5, None, 2.0, 2.0, None, None, 0.4)
                )
                queue_rows.append((run.id, ts, "jobs", "scrape", None, None, None, 2.0, 0.05, 0.01, None))
            psycopg2.extras.execute_values(
                cur,
                """INSERT INTO resource_samples (run_id, ts, service, process_count, restarts, cpu_percent,
                       cpu_percent_total, rss_bytes, threads, open_fds, disk_read_bps, disk_write_bps, net_rx_bps,
                       net_tx_bps) VALUES %s""",
                resource_rows,
            )
            psycopg2.extras.execute_values(
                cur,
                """INSERT INTO queue_samples (run_id, ts, queue, backend, length, consumers, publish_rate,
                       consume_rate, processing_seconds, error_rate, backlog_age_seconds) VALUES %s""",
                queue_rows,
            )
        # Between runs the sidecar samples with no run id.
        cur.execute(
            """INSERT INTO resource_samples (run_id, ts, service, process_count, restarts, cpu_percent)
               VALUES (NULL, %s, 'target', 1, 0, 1.0)""",
            (BASE + timedelta(minutes=5),),
        )
        # A second scenario that no comparison picks by default.
        cur.execute(
            """INSERT INTO runs (scenario, test_type, app_version, environment, host, locustfile, user_classes, users,
                   spawn_rate, workers, tags, benchlab_version, started_at, status)
               VALUES ('content_generation_test', 'stress', '1.1', 'test', 'http://127.0.0.1:8000',
                   'load_tests/content_generation_test.py', '[]', 10, 5, 0, '{}', '0.1.0', %s, 'failed')""",
            (BASE + timedelta(minutes=40),),
        )
    conn.commit()


COMPARED_AT = BASE + timedelta(hours=2)
"""When the latest stored comparison of 1.0 and 1.1 was made; an older one, and others, are stored too."""


def _comparison(cur: Any, created_at: datetime, overall: str, where: tuple[str, str, str, str]) -> int:
    scenario, test_type, baseline, candidate = where
    cur.execute(
        """INSERT INTO comparisons (created_at, scenario, test_type, baseline_version, candidate_version,
               baseline_run_ids, candidate_run_ids, method, overall, details)
           VALUES (%s, %s, %s, %s, %s, '[1]', '[3]', 'block-bootstrap', %s, '{"warnings": []}') RETURNING id""",
        (created_at, scenario, test_type, baseline, candidate, overall),
    )
    return int(cur.fetchone()[0])


def _insert_comparisons(conn: Any, runs: dict[str, RunData]) -> None:
    """Stored verdicts: the latest comparison of 1.0 and 1.1 says the generate endpoint regressed."""
    base, cand = runs["baseline"], runs["candidate"]
    b95, c95 = (float(np.percentile(run.times(GENERATE), 95)) for run in (base, cand))
    results = [  # endpoint, method, metric, subject, baseline, candidate, change, kind, verdict, gating
        (GENERATE[1], GENERATE[0], "p95_ms", None, b95, c95, c95 / b95 - 1, "relative", "regression", True),
        (GENERATE[1], GENERATE[0], "p99_ms", None, 150.0, 240.0, 0.6, "relative", "regression", True),
        (GENERATE[1], GENERATE[0], "p50_ms", None, 120.0, 126.0, 0.05, "relative", "inconclusive", True),
        (GENERATE[1], GENERATE[0], "error_rate", None, 0.05, 0.055, 0.005, "absolute", "unchanged", True),
        ("/health", "GET", "p95_ms", None, 7.1, 7.0, -0.014, "relative", "unchanged", True),
        ("/health", "GET", "rps", None, 4.0, 4.0, 0.0, "relative", "unchanged", False),
        ("", "", "p95_ms", None, 150.0, 210.0, 0.4, "relative", "regression", True),
        ("", "", "cpu_percent", "target", 35.0, 50.0, 0.43, "relative", "improvement", False),
    ]
    with conn.cursor() as cur:
        old = _comparison(cur, COMPARED_AT - timedelta(days=1), "unchanged", ("locustfile", "load", "1.0", "1.1"))
        latest = _comparison(cur, COMPARED_AT, "regression", ("locustfile", "load", "1.0", "1.1"))
        other = _comparison(cur, COMPARED_AT + timedelta(days=1), "improvement", ("locustfile", "stress", "1.0", "1.1"))
        reverse = _comparison(cur, COMPARED_AT + timedelta(days=1), "improvement", ("locustfile", "load", "1.1", "1.0"))
        rows = [(latest, *r) for r in results]
        rows += [(cid, *results[0][:8], "unchanged", True) for cid in (old, other, reverse)]
        psycopg2.extras.execute_values(
            cur,
            """INSERT INTO comparison_results (comparison_id, endpoint, http_method, metric, subject, baseline_value,
                   candidate_value, change, change_kind, verdict, gating, ci_low, ci_high, threshold, noise_floor,
                   p_value, q_value) VALUES %s""",
            [(*r, r[7] - 0.05, r[7] + 0.05, 0.1, 0.02, 0.01, 0.02) for r in rows],
        )
    conn.commit()


def _roll_up(url: str, runs: dict[str, RunData]) -> None:
    """The rollups `Store.finish_run` writes when a run ends: the dashboards read these, not the samples."""
    bench = database.Store(settings=StoreSettings(url=url)).open()
    try:
        for run in runs.values():
            write_rollup(bench, run.id)
    finally:
        bench.close()


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """A temporary database built from schema/*.sql and filled with the dataset; dropped afterwards."""
    name = f"benchlab_test_{uuid.uuid4().hex[:10]}"
    pg_admin(f"CREATE DATABASE {name}")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name)
        try:
            with conn.cursor() as cur:
                for path in sorted((REPO / "schema").glob("*.sql")):
                    cur.execute(path.read_text())
            conn.commit()
            runs = _make_runs()
            _insert(conn, runs)
            _insert_comparisons(conn, runs)
            _roll_up(f"postgresql://postgres@127.0.0.1:5432/{name}", runs)
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            yield Store(conn, runs)
        finally:
            conn.close()
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---------------------------------------------------------------------------------------------- SQL: every query


def test_the_dashboards_have_queries_of_both_kinds() -> None:
    assert set(DASHBOARDS) == {"benchlab-api", "benchlab-versions", "benchlab-resources"}
    assert {q.datasource for q in QUERIES} == {POSTGRES_UID, PROMETHEUS_UID}
    for uid in DASHBOARDS:
        assert any(q.dashboard == uid and q.kind == "panel" for q in SQL), f"{uid} has no SQL panel"
    assert len(SQL) >= 30 and len(PROMQL) >= 30


@pytest.mark.parametrize("query", SQL, ids=[q.id for q in SQL])
def test_sql_query_runs_and_returns_rows(store: Store, query: Query) -> None:
    columns, rows = store.execute(query)
    assert rows, f"{query.id} returned no rows"
    check_frame(query, columns, rows)


def test_version_variables_list_every_version(store: Store) -> None:
    baseline = next(q for q in SQL if q.dashboard == "benchlab-versions" and q.title == "baseline")
    candidate = next(q for q in SQL if q.dashboard == "benchlab-versions" and q.title == "candidate")
    scenario = next(q for q in SQL if q.dashboard == "benchlab-versions" and q.title == "scenario")
    assert [r[0] for r in store.execute(baseline)[1]] == ["1.0", "1.1"]
    assert [r[0] for r in store.execute(candidate)[1]] == ["1.1", "1.0"], "newest version first: the default candidate"
    assert [r[0] for r in store.execute(scenario)[1]] == store.values("benchlab-versions")["scenario"]


def test_run_variable_offers_the_newest_run_first(store: Store) -> None:
    query = next(q for q in SQL if q.dashboard == "benchlab-resources" and q.title == "run_id")
    columns, rows = store.execute(query)
    values = [dict(zip(columns, row, strict=True)) for row in rows]
    assert len(values) == 5
    assert values[0]["__value"] > values[-1]["__value"]
    candidate = next(v for v in values if v["__value"] == store.runs["candidate"].id)
    assert candidate["__text"] == f"#{store.runs['candidate'].id} · 1.1 · locustfile · load · 2024-05-06 12:20 UTC"


def _rows(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _in_window(run: RunData, start: datetime, endpoint: tuple[str, str] | None = None) -> list[float]:
    """Response times of the samples that started in the 10 s from `start`."""
    stop = start + timedelta(seconds=10)
    return [s[3] for s in run.samples if start <= s[0] < stop and (endpoint is None or (s[1], s[2]) == endpoint)]


@pytest.mark.parametrize("key", ["candidate", "aborted"])
def test_exact_latency_table_matches_the_samples(store: Store, key: str) -> None:
    columns, rows = store.execute(
        _by_title("benchlab-api", "Exact latency per run and endpoint (runs in the time range)")
    )
    run = store.runs[key]
    row = next(r for r in _rows(columns, rows) if r["run"] == run.id and r["endpoint"] == " ".join(GENERATE))
    times = run.times(GENERATE)
    assert row["requests"] == len(times)
    assert row["failures"] == sum(1 for s in run.samples if (s[1], s[2]) == GENERATE and not s[5])
    assert row["mean ms"] == pytest.approx(np.mean(times), rel=1e-9)
    for p in (50, 95, 99):
        assert row[f"p{p} ms"] == pytest.approx(np.percentile(times, p), rel=1e-9)
    assert row["max ms"] == max(times)
    assert float(row["rps"]) == pytest.approx(len(times) / run.seconds)
    assert {r["run"] for r in _rows(columns, rows)} == {r.id for r in store.runs.values()}
    assert " " not in {r["endpoint"] for r in _rows(columns, rows)}, "no all-endpoints row"


@pytest.mark.parametrize("key", ["baseline", "aborted"])
def test_p95_time_series_buckets_by_ten_seconds(store: Store, key: str) -> None:
    columns, rows = store.execute(_by_title("benchlab-api", "p95 per endpoint, 10 s buckets (stored samples)"))
    run = store.runs[key]
    table = _rows(columns, rows)
    for start in (run.start, run.start + timedelta(seconds=10)):
        row = next(r for r in table if r["time"] == start and r["metric"] == " ".join(GENERATE))
        assert row["p95"] == pytest.approx(np.percentile(_in_window(run, start, GENERATE), 95), rel=1e-9)
    assert len({(r["time"], r["metric"]) for r in table}) == len(table), "one point per window and endpoint"


def test_throughput_series_counts_every_sample(store: Store) -> None:
    columns, rows = store.execute(_by_title("benchlab-api", "Throughput and failures, 10 s buckets (stored samples)"))
    table = {r["time"]: r for r in _rows(columns, rows)}
    for key in ("old", "aborted"):
        run = store.runs[key]
        start = run.start + timedelta(seconds=10)
        stop = start + timedelta(seconds=10)
        failed = sum(1 for s in run.samples if start <= s[0] < stop and not s[5])
        assert float(table[start]["requests/s"]) == pytest.approx(len(_in_window(run, start)) / 10)
        assert float(table[start]["failures/s"]) == pytest.approx(failed / 10)
    total = sum(float(r["requests/s"]) * 10 for r in table.values())
    assert total == pytest.approx(sum(len(r.samples) for r in store.runs.values()))


def test_status_and_error_panels_count_every_sample(store: Store) -> None:
    samples = [s for run in store.runs.values() for s in run.samples]
    codes = _rows(*store.execute(_by_title("benchlab-api", "Status codes (stored samples)")))
    assert {r["status"]: int(r["requests"]) for r in codes} == dict(Counter(str(s[4]) for s in samples))
    errors = _rows(*store.execute(_by_title("benchlab-api", "Most frequent errors (stored samples)")))
    [row] = errors
    failed = [s for s in samples if not s[5]]
    assert (row["endpoint"], row["status"], int(row["count"])) == (" ".join(GENERATE), "500", len(failed))
    assert row["last seen"] == max(s[0] for s in failed)


@pytest.mark.parametrize("pick", ["latest", "all"])
def test_version_comparison_per_endpoint(store: Store, pick: str) -> None:
    query = _by_title("benchlab-versions", "Per endpoint: baseline vs candidate")
    columns, rows = store.execute(query, pick=pick)
    row = next(r for r in _rows(columns, rows) if r["endpoint"] == " ".join(GENERATE))
    baseline_runs = [store.runs["baseline"]] + ([store.runs["old"]] if pick == "all" else [])
    baseline = [t for run in baseline_runs for t in run.times(GENERATE)]
    candidate = store.runs["candidate"].times(GENERATE)  # the aborted 1.1 run is never compared
    # One run: its exact percentiles. Several pooled: from the merged 1 % histograms, within 0.5 %.
    rel = 1e-9 if pick == "latest" else 0.005
    for p in (50, 95, 99):
        assert row[f"p{p} baseline"] == pytest.approx(np.percentile(baseline, p), rel=rel)
        assert row[f"p{p} candidate"] == pytest.approx(np.percentile(candidate, p), rel=1e-9)
    expected_change = 100 * (np.percentile(candidate, 95) / np.percentile(baseline, 95) - 1)
    assert row["p95 change %"] == pytest.approx(expected_change, rel=100 * rel)
    assert row["p95 change %"] > 20, "1.1 generates content more slowly in the dataset"
    assert float(row["rps baseline"]) == pytest.approx(len(baseline) / (60 * len(baseline_runs)))
    failures = sum(1 for run in baseline_runs for s in run.samples if (s[1], s[2]) == GENERATE and not s[5])
    assert row["errors baseline"] == pytest.approx(failures / len(baseline))
    if pick == "all":
        assert row["p95 baseline"] != pytest.approx(np.percentile(baseline, 95), rel=1e-9), "the histogram's"


def test_version_change_stat_pools_every_endpoint(store: Store) -> None:
    columns, rows = store.execute(_by_title("benchlab-versions", "Change, candidate vs baseline (all endpoints)"))
    [row] = _rows(columns, rows)
    baseline = [s[3] for s in store.runs["baseline"].samples]
    candidate = [s[3] for s in store.runs["candidate"].samples]
    assert row["p95"] == pytest.approx(100 * (np.percentile(candidate, 95) / np.percentile(baseline, 95) - 1), rel=1e-9)
    assert float(row["throughput"]) == pytest.approx(100 * (len(candidate) / len(baseline) - 1), abs=1e-9)


@pytest.mark.parametrize("pick", ["latest", "all"])
def test_overall_table_and_percentile_ladder_match_the_samples(store: Store, pick: str) -> None:
    sides = {"baseline": ["baseline"] + (["old"] if pick == "all" else []), "candidate": ["candidate"]}
    overall = {
        r["side"]: r for r in _rows(*store.execute(_by_title("benchlab-versions", "Overall, all endpoints"), pick=pick))
    }
    ladder = _rows(*store.execute(_by_title("benchlab-versions", "Latency percentiles, all endpoints"), pick=pick))
    assert [r["percentile"] for r in ladder] == ["p50", "p75", "p90", "p95", "p99", "p99.9"]
    for side, keys in sides.items():
        times = np.array([s[3] for k in keys for s in store.runs[k].samples])
        rel = 1e-9 if len(keys) == 1 else 0.005
        row = overall[side]
        assert (int(row["requests"]), row["runs"]) == (times.size, len(keys))
        assert row["mean ms"] == pytest.approx(times.mean(), rel=1e-9)
        assert row["max ms"] == times.max()
        assert row["p99 ms"] == pytest.approx(np.percentile(times, 99), rel=rel)
        for step, q in zip(ladder, (50, 75, 90, 95, 99, 99.9), strict=True):
            assert step[side] == pytest.approx(np.percentile(times, q), rel=rel), (side, q)


def test_stored_verdicts_show_the_latest_comparison(store: Store) -> None:
    columns, rows = store.execute(_by_title("benchlab-versions", "Stored verdicts"))
    table = _rows(columns, rows)
    assert {r["compared"] for r in table} == {COMPARED_AT}, "only the latest comparison of 1.0 against 1.1 (load)"
    assert [r["verdict"] for r in table][:3] == ["regression"] * 3, "regressions first"
    assert len(table) == 8 and table[-1]["verdict"] == "unchanged"
    by_key = {(r["endpoint"], r["metric"]): r for r in table}
    p95 = by_key[(" ".join(GENERATE), "p95_ms")]
    baseline = np.percentile(store.runs["baseline"].times(GENERATE), 95)
    candidate = np.percentile(store.runs["candidate"].times(GENERATE), 95)
    assert (p95["baseline"], p95["candidate"]) == (pytest.approx(baseline), pytest.approx(candidate))
    assert p95["change %"] == pytest.approx(100 * (candidate / baseline - 1))
    assert p95["CI low %"] == pytest.approx(p95["change %"] - 5) and p95["threshold %"] == pytest.approx(10)
    assert by_key[("all endpoints", "p95_ms")]["verdict"] == "regression"
    assert by_key[("", "cpu_percent · target")]["gating"] is False
    assert by_key[(" ".join(GENERATE), "error_rate")]["kind"] == "absolute"
    [stat] = _rows(*store.execute(_by_title("benchlab-versions", "Stored verdict")))
    assert (stat["verdict"], stat["comparisons"]) == ("regression", 1)
    both = store.execute(_by_title("benchlab-versions", "Stored verdict"), test_type=["load", "stress"])
    assert _rows(*both)[0]["verdict"] == "regression" and _rows(*both)[0]["comparisons"] == 2, "the worst of two"
    [none] = _rows(*store.execute(_by_title("benchlab-versions", "Stored verdict"), baseline="1.1", candidate="1.1"))
    assert none["verdict"] is None and none["comparisons"] == 0


def test_per_endpoint_markers_are_the_stored_verdicts(store: Store) -> None:
    query = _by_title("benchlab-versions", "Per endpoint: baseline vs candidate")
    table = {r["endpoint"]: r for r in _rows(*store.execute(query))}
    generate = table[" ".join(GENERATE)]
    assert (generate["p95 verdict"], generate["p99 verdict"], generate["p50 verdict"]) == (
        "regression",
        "regression",
        "inconclusive",
    )
    assert (generate["errors verdict"], generate["rps verdict"]) == ("unchanged", None)
    assert (table["GET /health"]["p95 verdict"], table["GET /health"]["rps verdict"]) == ("unchanged", "unchanged")
    assert table["GET /api/v1/content/{id}"]["p95 verdict"] is None, "not in the stored comparison: no marker"
    panel = next(p for p in panels(DASHBOARDS["benchlab-versions"]) if p["title"] == query.title)
    for override in panel["fieldConfig"]["overrides"]:
        ids = {prop["id"] for prop in override["properties"]}
        if "change" in override["matcher"]["options"]:
            assert not ids & {"thresholds", "custom.cellOptions"}, "no colour computed from a naive change"
    [marker] = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == ".* verdict"]
    mappings = next(p["value"] for p in marker["properties"] if p["id"] == "mappings")
    assert mappings[0]["options"]["regression"]["color"] == "red"


def test_resources_table_summarises_the_chosen_run(store: Store) -> None:
    columns, rows = store.execute(_by_title("benchlab-resources", "Services during the run"))
    table = {r["service"]: r for r in _rows(columns, rows)}
    run = store.runs["candidate"]
    assert set(table) == {"target", "redis"}
    assert table["target"]["samples"] == run.seconds
    assert table["target"]["CPU % mean"] == pytest.approx(sum(run.cpu["target"]) / run.seconds, rel=1e-9)
    assert table["target"]["CPU % max"] == pytest.approx(max(run.cpu["target"]))


def test_grafana_macros_are_expanded_as_grafana_does() -> None:
    query = Query(
        "x", "panel", "panel", POSTGRES_UID, "SELECT $__timeGroup(ts, '5m'), 1 WHERE $__timeFilter(ts)", "table"
    )
    sql = expand_sql(
        query, {}, {}, TimeRange(datetime(2024, 5, 6, 12, tzinfo=UTC), datetime(2024, 5, 6, 13, tzinfo=UTC))
    )
    assert sql == (
        'SELECT floor(extract(epoch from ts)/300)*300 AS "time", 1 '
        "WHERE ts BETWEEN '2024-05-06T12:00:00Z' AND '2024-05-06T13:00:00Z'"
    )
    with pytest.raises(ValueError, match="unknown macro"):
        expand_sql(Query("x", "p", "panel", POSTGRES_UID, "SELECT $__timeFliter(ts)", "table"), {}, {}, RANGE)
    with pytest.raises(ValueError, match="unresolved variable"):
        expand_sql(Query("x", "p", "panel", POSTGRES_UID, "SELECT '$candidat'", "table"), {"candidate": "1"}, {}, RANGE)


# ---------------------------------------------------------------------------------------------- PromQL

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
    query = _by_title("benchlab-api", "Latency p50 / p95 / p99 per endpoint", "B")
    expr = expand_promql(query, {"endpoint": ["/health"]}, variables(DASHBOARDS["benchlab-api"]), BUILTINS)
    assert 'name=~"/health"' in expr
    [series] = _result(prom, expr)
    assert float(series["value"][1]) == pytest.approx(0.0375, rel=1e-6)
    failed = expand_promql(_by_title("benchlab-api", "Failed requests"), PROM_VALUES, {}, BUILTINS)
    [ratio] = _result(prom, failed)
    assert float(ratio["value"][1]) == pytest.approx(1 / 20, rel=1e-6)
    users = _result(prom, _by_title("benchlab-api", "Users").text)
    assert float(users[0]["value"][1]) == 25


@needs_prometheus
def test_a_misspelt_metric_is_caught(prom: str) -> None:
    query = Query("x", "panel", "panel", PROMETHEUS_UID, 'benchlab_proces_threads{service=~"$service"}', "time_series")
    expr = expand_promql(query, PROM_VALUES, {"service": {"allValue": ".*", "includeAll": True}}, BUILTINS)
    assert expr == 'benchlab_proces_threads{service=~".*"}'
    assert _result(prom, expr) == []
    with pytest.raises(AssertionError, match="rejected"):
        _result(prom, "sum by (service (benchlab_process_threads)")


def test_no_sql_query_reads_the_raw_request_samples() -> None:
    """Raw samples grow without bound (10M a run and more): the dashboards read the rollups of finished runs."""
    for query in SQL:
        assert "request_samples" not in query.text, query.id
    assert sum("_rollups" in q.text for q in SQL) >= 12
