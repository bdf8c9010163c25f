"""Every SQL query of the Grafana dashboards runs against a real Postgres built from schema/ and holding a small
set of runs (dashboard_fixture.py), and a few panels show exactly the numbers computed from that dataset.

Grafana itself is not run here: grafana_queries.py expands variables and macros as Grafana does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from dashboard_fixture import (
    COMPARED_AT,
    DASHBOARDS,
    GENERATE,
    PROMQL,
    QUERIES,
    RANGE,
    SQL,
    RunData,
    Store,
    by_title,
    filled_store,
)
from grafana_queries import POSTGRES_UID, PROMETHEUS_UID, Query, TimeRange, check_frame, expand_sql, panels


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """A temporary database built from schema/*.sql and filled with the dataset; dropped afterwards."""
    with filled_store() as filled:
        yield filled


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
        by_title("benchlab-api", "Exact latency per run and endpoint (runs in the time range)")
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
    columns, rows = store.execute(by_title("benchlab-api", "p95 per endpoint, 10 s buckets (stored samples)"))
    run = store.runs[key]
    table = _rows(columns, rows)
    for start in (run.start, run.start + timedelta(seconds=10)):
        row = next(r for r in table if r["time"] == start and r["metric"] == " ".join(GENERATE))
        assert row["p95"] == pytest.approx(np.percentile(_in_window(run, start, GENERATE), 95), rel=1e-9)
    assert len({(r["time"], r["metric"]) for r in table}) == len(table), "one point per window and endpoint"


def test_throughput_series_counts_every_sample(store: Store) -> None:
    columns, rows = store.execute(by_title("benchlab-api", "Throughput and failures, 10 s buckets (stored samples)"))
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
    codes = _rows(*store.execute(by_title("benchlab-api", "Status codes (stored samples)")))
    assert {r["status"]: int(r["requests"]) for r in codes} == dict(Counter(str(s[4]) for s in samples))
    errors = _rows(*store.execute(by_title("benchlab-api", "Most frequent errors (stored samples)")))
    [row] = errors
    failed = [s for s in samples if not s[5]]
    assert (row["endpoint"], row["status"], int(row["count"])) == (" ".join(GENERATE), "500", len(failed))
    assert row["last seen"] == max(s[0] for s in failed)


@pytest.mark.parametrize("pick", ["latest", "all"])
def test_version_comparison_per_endpoint(store: Store, pick: str) -> None:
    query = by_title("benchlab-versions", "Per endpoint: baseline vs candidate")
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
    columns, rows = store.execute(by_title("benchlab-versions", "Change, candidate vs baseline (all endpoints)"))
    [row] = _rows(columns, rows)
    baseline = [s[3] for s in store.runs["baseline"].samples]
    candidate = [s[3] for s in store.runs["candidate"].samples]
    assert row["p95"] == pytest.approx(100 * (np.percentile(candidate, 95) / np.percentile(baseline, 95) - 1), rel=1e-9)
    assert float(row["throughput"]) == pytest.approx(100 * (len(candidate) / len(baseline) - 1), abs=1e-9)


@pytest.mark.parametrize("pick", ["latest", "all"])
def test_overall_table_and_percentile_ladder_match_the_samples(store: Store, pick: str) -> None:
    sides = {"baseline": ["baseline"] + (["old"] if pick == "all" else []), "candidate": ["candidate"]}
    overall = {
        r["side"]: r for r in _rows(*store.execute(by_title("benchlab-versions", "Overall, all endpoints"), pick=pick))
    }
    ladder = _rows(*store.execute(by_title("benchlab-versions", "Latency percentiles, all endpoints"), pick=pick))
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
    columns, rows = store.execute(by_title("benchlab-versions", "Stored verdicts"))
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
    [stat] = _rows(*store.execute(by_title("benchlab-versions", "Stored verdict")))
    assert (stat["verdict"], stat["comparisons"]) == ("regression", 1)
    both = store.execute(by_title("benchlab-versions", "Stored verdict"), test_type=["load", "stress"])
    assert _rows(*both)[0]["verdict"] == "regression" and _rows(*both)[0]["comparisons"] == 2, "the worst of two"
    [none] = _rows(*store.execute(by_title("benchlab-versions", "Stored verdict"), baseline="1.1", candidate="1.1"))
    assert none["verdict"] is None and none["comparisons"] == 0


def test_per_endpoint_markers_are_the_stored_verdicts(store: Store) -> None:
    query = by_title("benchlab-versions", "Per endpoint: baseline vs candidate")
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
    columns, rows = store.execute(by_title("benchlab-resources", "Services during the run"))
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


def test_no_sql_query_reads_the_raw_request_samples() -> None:
    """Raw samples grow without bound (10M a run and more): the dashboards read the rollups of finished runs."""
    for query in SQL:
        assert "request_samples" not in query.text, query.id
    assert sum("_rollups" in q.text for q in SQL) >= 12
