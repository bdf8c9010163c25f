"""The dashboards' queries and the small stored dataset they are checked against, for test_dashboards*.py.

The dataset: four runs (two of 1.0, a slower 1.1, an aborted 1.1) of lognormal samples with their events,
sidecar readings and rollups, another scenario's run, and stored comparisons of 1.0 and 1.1, in a Postgres
database built from schema/.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras
from conftest import temp_database
from grafana_queries import POSTGRES_UID, PROMETHEUS_UID, Query, TimeRange, Value, expand_sql, load, queries, variables

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store import database
from benchlab.metrics.store.rollup import write_rollup

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = {d["uid"]: d for d in (load(p) for p in sorted((REPO / "dashboards" / "json").glob("*.json")))}
QUERIES = [q for d in DASHBOARDS.values() for q in queries(d)]
SQL = [q for q in QUERIES if q.datasource == POSTGRES_UID]
PROMQL = [q for q in QUERIES if q.datasource == PROMETHEUS_UID]

BASE = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
RANGE = TimeRange(BASE - timedelta(minutes=5), BASE + timedelta(hours=1))
GENERATE = ("POST", "/api/v1/content/generate")


def by_title(uid: str, title: str, ref: str = "A") -> Query:
    """The query `ref` of the panel titled `title` on dashboard `uid` (exactly one)."""
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


@contextmanager
def filled_store() -> Iterator[Store]:
    """A temporary database built from schema/*.sql and filled with the dataset; dropped afterwards."""
    with temp_database() as url:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                for path in sorted((REPO / "schema").glob("*.sql")):
                    cur.execute(path.read_text())
            conn.commit()
            runs = _make_runs()
            _insert(conn, runs)
            _insert_comparisons(conn, runs)
            _roll_up(url, runs)
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            yield Store(conn, runs)
        finally:
            conn.close()
