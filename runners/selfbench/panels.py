"""P6: every Grafana SQL query of dashboards/json timed on a Postgres store holding a run of 10M samples.

The store is built in the database: samples by `INSERT ... SELECT` over `generate_series` (endpoints, lognormal
times and 1 % failures as `database.synthetic_samples`), then each run is finished through `Store.finish_run`,
which writes its rollups (timed: the cost a run pays at its end). Every query (variables, annotations, panels)
is expanded as Grafana expands it with the dashboards' default variables and time ranges, and run `reps` times
on a plain connection with Postgres's default settings; the median counts, against 1 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy import delete, select, text

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import QueueSample, RequestSample, ResourceSample, Run
from benchlab.runners.selfbench.database import ENDPOINTS, synthetic_meta
from benchlab.runners.selfbench.grafana import (
    POSTGRES_UID,
    Query,
    TimeRange,
    Value,
    expand_sql,
    load,
    queries,
    variables,
)
from benchlab.runners.selfbench.report import Figure, MeasureError

SCENARIO = "selfbench-p6"
VERSIONS = ("p6-base", "p6-cand")
"""Baseline and candidate version (the dashboards' defaults pick them: first and newest)."""
GOAL_MS = 1000.0
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "json"
SHORT = {"benchlab-api": "api", "benchlab-resources": "res", "benchlab-versions": "ver"}
"""Label prefix of each dashboard; its first letter prefixes the figure key (P6/a01)."""
_RANGES = {"now-1h": timedelta(hours=1), "now-30d": timedelta(days=30)}
_ERROR = "HTTPError: 500 Server Error: INTERNAL SERVER ERROR for url: "
Say = Callable[[str], None]


def _case(column: str, pick: Callable[[tuple[str, str, int]], str]) -> str:
    """CASE over k in [0, 100) choosing an endpoint by its cumulative weight."""
    total, arms = 0, []
    for endpoint in ENDPOINTS[:-1]:
        total += endpoint[2]
        arms.append(f"WHEN {column} < {total} THEN {pick(endpoint)}")
    return f"CASE {' '.join(arms)} ELSE {pick(ENDPOINTS[-1])} END"


def samples_sql() -> str:
    """INSERT of `n` samples of run `run` spread evenly over `seconds` from `start` (psycopg2 parameters)."""
    name = _case("k", lambda e: f"'{e[0]}'")
    method = _case("k", lambda e: f"'{e[1]}'")
    return f"""
INSERT INTO request_samples (run_id, ts, name, method, response_time_ms, response_length, request_length,
                             status_code, success, error, worker)
SELECT %(run)s, %(start)s + make_interval(secs => (g + u0) * %(seconds)s / %(n)s), name, method,
       exp(1.3 + 0.5 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)),
       CASE WHEN failed THEN 265 ELSE 5 + floor(u3 * 2044)::int END,
       CASE WHEN method = 'POST' THEN 48 + floor(u3 * 353)::int END,
       CASE WHEN failed THEN 500 ELSE 200 END, NOT failed,
       CASE WHEN failed THEN '{_ERROR}' || name END, NULL
FROM (
  SELECT g, u0, u1, u2, u3, failed, {name} AS name, {method} AS method
  FROM (
    SELECT g, floor(random() * 100)::int AS k, random() AS u0, random() AS u1, random() AS u2, random() AS u3,
           random() < 0.01 AS failed
    FROM generate_series(0, %(n)s - 1) AS g
  ) AS drawn
) AS picked"""


READINGS_SQL = """
INSERT INTO resource_samples (run_id, ts, service, process_count, restarts, cpu_percent, cpu_percent_total,
                              rss_bytes, threads, open_fds, disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps)
SELECT %(run)s, %(start)s + make_interval(secs => g), service, 1, 0, 20 + 30 * random(), 10 + 15 * random(),
       (90 * 1048576 + g * 4096)::bigint, 12, 40, 0, 2048, 9e4, 3e5
FROM generate_series(0, %(seconds)s - 1) AS g, unnest(ARRAY['target', 'redis']) AS service;
INSERT INTO queue_samples (run_id, ts, queue, backend, length, consumers, publish_rate, consume_rate,
                           processing_seconds, error_rate, backlog_age_seconds)
SELECT %(run)s, %(start)s + make_interval(secs => g), 'jobs', 'redis', g %% 7, 2, 4, 4, 0.05, 0.01, 0.4
FROM generate_series(0, %(seconds)s - 1) AS g;
INSERT INTO run_events (run_id, ts, kind, user_count, message)
VALUES (%(run)s, %(start)s, 'start', 0, 'selfbench'),
       (%(run)s, %(start)s + make_interval(secs => %(seconds)s), 'stop', 100, 'completed');
"""


def _execute(store: Store, *statements: tuple[str, Mapping[str, Any]]) -> None:
    """psycopg2 statements with pyformat parameters, in one transaction."""
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, params in statements:
            cur.execute(sql, params)
        cur.close()
        raw.commit()
    finally:
        raw.close()


def store_run(store: Store, version: str, samples: int, *, start: datetime, seconds: int) -> tuple[int, float]:
    """A completed run of `samples` samples over `seconds` from `start`; its id and the seconds its rollup took."""
    run_id = store.start_run(synthetic_meta(version, seconds, SCENARIO), started_at=start)
    params = {"run": run_id, "start": start, "seconds": seconds, "n": samples}
    _execute(store, (samples_sql(), params), (READINGS_SQL, params))
    summary = {"total_requests": samples, "stored_samples": samples, "rps": samples / seconds}
    began = time.monotonic()
    store.finish_run(run_id, status="completed", summary=summary, ended_at=start + timedelta(seconds=seconds))
    rollup_s = time.monotonic() - began
    with store.engine.begin() as conn:  # the summary columns `benchlab run` stores, from the exact rollup
        conn.execute(
            text(
                "UPDATE runs SET total_failures = e.failures, error_rate = e.failures::float8 / e.requests,"
                " mean_ms = e.mean_ms, p50_ms = e.p50_ms, p95_ms = e.p95_ms, p99_ms = e.p99_ms, max_ms = e.max_ms"
                " FROM endpoint_rollups e WHERE e.run_id = runs.id AND e.name = '' AND e.method = ''"
                " AND runs.id = :id"
            ),
            {"id": run_id},
        )
    return run_id, rollup_s


COMPARISON_SQL = """
WITH c AS (
  INSERT INTO comparisons (created_at, scenario, test_type, baseline_version, candidate_version, baseline_run_ids,
                           candidate_run_ids, method, overall, details)
  VALUES (now(), %(scenario)s, 'load', %(base)s, %(cand)s, '[]', '[]', 'selfbench', 'regression', '{}')
  RETURNING id
)
INSERT INTO comparison_results (comparison_id, endpoint, http_method, metric, baseline_value, candidate_value,
                                change, change_kind, threshold, verdict, gating)
SELECT c.id, '/api/items', 'GET', 'p95_ms', 10, 11, 0.1, 'relative', 0.05, 'regression', true FROM c
"""


def build(url: str, *, samples: int, baseline: int, spool_dir: Path, say: Say) -> dict[str, Any]:
    """The baseline and the 10M candidate run within the last hour, a stored comparison; timings of the build."""
    store = Store(settings=StoreSettings(url=url, spool_dir=spool_dir)).open()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        began = time.monotonic()
        say(f"P6: storing a run of {baseline:,} samples (10 min) in Postgres")
        base, base_rollup = store_run(store, VERSIONS[0], baseline, start=now - timedelta(minutes=55), seconds=600)
        say(f"P6: storing a run of {samples:,} samples (40 min) in Postgres")
        cand, cand_rollup = store_run(store, VERSIONS[1], samples, start=now - timedelta(minutes=42), seconds=2400)
        _execute(store, (COMPARISON_SQL, {"scenario": SCENARIO, "base": VERSIONS[0], "cand": VERSIONS[1]}))
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would have by the time anyone looks
        return {
            "runs": {VERSIONS[0]: base, VERSIONS[1]: cand},
            "build_s": round(time.monotonic() - began, 1),
            "rollup_s": {VERSIONS[0]: round(base_rollup, 2), VERSIONS[1]: round(cand_rollup, 2)},
        }
    finally:
        store.close()


def drop(url: str, *, spool_dir: Path) -> None:
    """Delete the P6 runs, their samples and readings (rollups and events go with the runs)."""
    store = Store(settings=StoreSettings(url=url, spool_dir=spool_dir))
    ours = select(Run.id).where(Run.scenario == SCENARIO)
    try:
        with store.engine.begin() as conn:
            for model in (RequestSample, ResourceSample, QueueSample):
                conn.execute(delete(model).where(model.run_id.in_(ours)))
            conn.execute(text("DELETE FROM comparisons WHERE scenario = :s"), {"s": SCENARIO})
            conn.execute(delete(Run).where(Run.scenario == SCENARIO))
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- timing


def time_range(dashboard: Mapping[str, Any], now: datetime) -> TimeRange:
    """The dashboard's default time range (`now-1h` or `now-30d` to `now`)."""
    start = str(dashboard.get("time", {}).get("from", "now-1h"))
    if start not in _RANGES:
        raise MeasureError(f"dashboard {dashboard.get('uid')}: time range {start!r} is not emulated")
    return TimeRange(now - _RANGES[start], now)


def _timed(cur: Any, sql: str, reps: int) -> tuple[list[float], int]:
    """Wall times in ms of `reps` executions (with fetching every row), and the rows of the last."""
    times, rows = [], 0
    for _ in range(reps):
        began = time.perf_counter()
        cur.execute(sql)
        rows = len(cur.fetchall())
        times.append((time.perf_counter() - began) * 1000)
    return times, rows


def default_values(cur: Any, dashboard: Mapping[str, Any], span: TimeRange) -> dict[str, Value]:
    """Each variable as Grafana sets it on first load: its saved current value, All as every option, or the first."""
    definitions = variables(dashboard)
    values: dict[str, Value] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name, current = var["name"], (var.get("current") or {}).get("value")
        if var.get("type") == "custom":
            values[name] = current or var["options"][0]["value"]
            continue
        if (var.get("datasource") or {}).get("uid") != POSTGRES_UID:
            continue
        query = Query(str(dashboard["uid"]), f"variable {name}", "variable", POSTGRES_UID, _text(var), "variable")
        cur.execute(expand_sql(query, values, definitions, span))
        columns = [c.name for c in cur.description]
        at = columns.index("__value") if "__value" in columns else 0
        options = [str(row[at]) for row in cur.fetchall()]
        if current in ("$__all", ["$__all"]):
            values[name] = "$__all" if var.get("allValue") is not None else options
        elif current:
            values[name] = current
        elif options:
            values[name] = options[0]
    return values


def _text(var: Mapping[str, Any]) -> str:
    query = var["query"]
    return str(query if isinstance(query, str) else query.get("rawSql") or query["query"])


def time_queries(url: str, *, reps: int, now: datetime) -> list[tuple[Query, list[float], int]]:
    """Every SQL query of every dashboard, expanded with its defaults: (query, ms of each execution, rows)."""
    paths = sorted(DASHBOARDS.glob("*.json"))
    if not paths:
        raise MeasureError(f"no dashboards in {DASHBOARDS} (P6 runs from a source checkout)")
    out = []
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for path in paths:
                dashboard = load(path)
                span = time_range(dashboard, now)
                values = default_values(cur, dashboard, span)
                definitions = variables(dashboard)
                for query in queries(dashboard):
                    if query.datasource == POSTGRES_UID:
                        times, rows = _timed(cur, expand_sql(query, values, definitions, span), reps)
                        out.append((query, times, rows))
    finally:
        conn.close()
    return out


def figures(timed: list[tuple[Query, list[float], int]], **details: Any) -> list[Figure]:
    """P6 (the slowest query's median) and one P6/<dashboard letter><n> per query: median ms of its executions."""
    out = []
    counters: dict[str, int] = {}
    for query, times, rows in timed:
        short = SHORT.get(query.dashboard, query.dashboard)
        counters[short] = counters.get(short, 0) + 1
        label = f"{short}: {query.title}" if query.kind == "panel" else f"{short}: {query.kind} {query.title}"
        out.append(
            Figure(
                key=f"P6/{short[0]}{counters[short]:02d}",
                label=label[:42],
                value=statistics.median(times),
                op="<=",
                goal=GOAL_MS,
                unit="ms",
                details={"query": query.id, "rows": rows, "ms": [round(t, 2) for t in times]},
            )
        )
    if not out:
        raise MeasureError("the dashboards have no SQL query")
    slowest = max(out, key=lambda f: f.value)
    passed = sum(1 for f in out if f.passed)
    head = Figure(
        key="P6",
        label=f"slowest Grafana SQL query ({passed}/{len(out)} pass)",
        value=slowest.value,
        op="<=",
        goal=GOAL_MS,
        unit="ms",
        details={**details, "slowest": slowest.details["query"], "queries": len(out), "passed": passed},
    )
    return [head, *out]


def measure(url: str, *, samples: int, baseline: int, reps: int, tmp: Path, say: Say) -> list[Figure]:
    """Build the store, time every query at its defaults, drop the P6 runs."""
    spool = tmp / "spool"
    try:
        built = build(url, samples=samples, baseline=baseline, spool_dir=spool, say=say)
        say(f"P6: store built in {built['build_s']} s; timing every dashboard SQL query {reps} times")
        timed = time_queries(url, reps=reps, now=datetime.now(UTC))
    finally:
        drop(url, spool_dir=spool)
    return figures(timed, samples={"baseline": baseline, "candidate": samples}, **built)
