"""Baseline files in the seed's format: names, the per-second timeline and its round trip, validation, and
judging two files (windowed bootstrap with histograms, change only without)."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchlab.runners.analysis import baseline as fmt
from benchlab.runners.analysis.series import WindowRow, bucket_of, latency_series
from benchlab.runners.baseline import judge_baselines, read
from benchlab.runners.errors import BadInput
from benchlab.runners.settings import JudgeSettings

START = 1_700_000_000


def rows_of(latency_ms: float, seconds: int, *, rate: int = 40, seed: int = 1, fail_every: int = 0) -> list[WindowRow]:
    """Window rows of one synthetic run: two endpoints, `rate` requests a second, lognormal latencies."""
    rng = np.random.default_rng(seed)
    grouped: dict[tuple[str, str, int, int], list[float]] = {}
    fails: dict[tuple[str, str, int, int], int] = {}
    n = 0
    for second in range(seconds):
        for ms in rng.lognormal(math.log(latency_ms), 0.3, rate):
            n += 1
            name, method = ("/health", "GET") if n % 3 else ("/api/v1/content/generate", "POST")
            key = (name, method, START + second, bucket_of(float(ms)))
            grouped.setdefault(key, []).append(float(ms))
            fails[key] = fails.get(key, 0) + (1 if fail_every and n % fail_every == 0 else 0)
    return [(7, k[0], k[1], k[2], k[3], len(v), fails[k], sum(v)) for k, v in grouped.items()]


def baseline_of(rows: list[WindowRow], version: str, **totals: Any) -> dict[str, Any]:
    """A baseline file around a synthetic timeline (totals are not what is judged when there are windows)."""
    values = {
        "operation": "content_generation_baseline",
        "environment": "local",
        "version": version,
        "timestamp": "2024-01-01T12:00:00+00:00",
        "response_time_mean": 100.0,
        "response_time_median": 90.0,
        "response_time_p95": 200.0,
        "response_time_p99": 300.0,
        "response_time_max": 500.0,
        "requests_per_second": 40.0,
        "concurrent_users": 10,
        "total_requests": 1200,
        "error_rate": 0.0,
        "error_count": 0,
        "test_duration": 30.0,
        "raw_data": {"endpoints": {}, "timeline": fmt.timeline(rows), "errors": []},
    }
    return fmt.validate(values | totals, "test")


def test_operation_names_follow_the_seed() -> None:
    assert fmt.operation_name("locustfile:ContentGenerationUser") == "content_generation"
    assert fmt.operation_name("locustfile:HealthCheckUser+MixedWorkloadUser") == "health_check_mixed_workload"
    assert fmt.operation_name("checkout flow") == "checkout_flow"
    assert fmt.operation_name("content_generation") == "content_generation"
    assert fmt.operation_name("locustfile") == "locustfile"
    assert fmt.split_operation("content_generation_baseline") == ("content_generation", "baseline")
    assert fmt.split_operation("mixed_workload_stress") == ("mixed_workload", "stress")
    assert fmt.split_operation("content_generation") == ("content_generation", None)
    started = datetime(2024, 1, 1, 12, 5, 0, tzinfo=UTC)
    name = fmt.file_name("content_generation", "baseline", started)
    assert name == "content_generation_baseline_20240101_120500.json"


def test_timeline_has_one_point_per_second_and_rebuilds_the_same_windows() -> None:
    rows = rows_of(50.0, 12, fail_every=7)
    points = fmt.timeline(rows)
    assert len(points) == 12
    assert points[0]["timestamp"] == datetime.fromtimestamp(START, UTC).isoformat()
    assert sum(p["requests"] for p in points) == sum(r[5] for r in rows)
    assert sum(p["failures"] for p in points) == sum(r[6] for r in rows)
    assert {"GET /health", "POST /api/v1/content/generate"} <= set(points[3]["endpoints"])
    rebuilt = fmt.window_rows(points)
    assert rebuilt is not None
    again, window_s = rebuilt
    assert window_s == 1.0
    before, after = latency_series(rows, 1.0)[7], latency_series(again, 1.0)[0]
    assert set(before) == set(after)
    for key, series in before.items():
        np.testing.assert_array_equal(series.counts, after[key].counts)
        np.testing.assert_array_equal(series.failures, after[key].failures)
        np.testing.assert_allclose(series.sum_ms, after[key].sum_ms, rtol=1e-6)
        np.testing.assert_array_equal(series.hist, after[key].hist)


def test_validation_names_missing_and_unknown_fields() -> None:
    good = baseline_of(rows_of(50.0, 3), "1.0")
    assert list(good) == list(fmt.FIELDS)
    missing = {k: v for k, v in good.items() if k != "response_time_p95"}
    with pytest.raises(fmt.BaselineError, match="missing response_time_p95"):
        fmt.validate(missing, "a.json")
    with pytest.raises(fmt.BaselineError, match="unknown extra"):
        fmt.validate(good | {"extra": 1}, "a.json")
    with pytest.raises(fmt.BaselineError, match="raw_data must be an object"):
        fmt.validate(good | {"raw_data": {"endpoints": {}}}, "a.json")
    with pytest.raises(fmt.BaselineError, match="error_rate must be a number"):
        fmt.validate(good | {"error_rate": "2%"}, "a.json")
    with pytest.raises(fmt.BaselineError, match="expected a JSON object"):
        fmt.validate([], "a.json")


def test_reading_a_file_checks_it(tmp_path: Path) -> None:
    good = baseline_of(rows_of(50.0, 3), "1.0")
    path = tmp_path / "a.json"
    path.write_text(json.dumps(good))
    assert read(path) == good
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "error_rate"}))
    with pytest.raises(BadInput, match=r"a\.json: not a baseline file: missing error_rate"):
        read(path)
    path.write_text("{")
    with pytest.raises(BadInput, match="not JSON"):
        read(path)
    with pytest.raises(BadInput, match="cannot read"):
        read(tmp_path / "missing.json")


def test_files_with_windows_are_judged_by_the_bootstrap() -> None:
    judge = JudgeSettings(replicates=400)
    base = baseline_of(rows_of(50.0, 30, seed=1), "1.0")
    same = baseline_of(rows_of(50.0, 30, seed=2), "1.0b")
    slow = baseline_of(rows_of(100.0, 30, seed=3), "1.1")
    verdict = judge_baselines(judge, base, slow)
    total = {r.metric: r for r in verdict.comparison.results if r.endpoint == ""}
    assert total["p95_ms"].verdict == "regression"
    assert math.isfinite(total["p95_ms"].ci_low) and total["p95_ms"].ci_low > 0.5
    assert verdict.comparison.overall == "regression"
    assert any("baseline files" in w for w in verdict.comparison.warnings)
    assert judge_baselines(judge, base, same).comparison.overall in ("unchanged", "inconclusive")
    assert {c.operation for c in verdict.checks} == {"content generation"}  # the seed's SLO table, by operation


def test_files_without_windows_give_the_change_only_and_say_so() -> None:
    base = baseline_of(rows_of(50.0, 3), "1.0")
    cand = copy.deepcopy(base) | {"version": "1.1", "response_time_p95": 300.0, "error_rate": 0.02}
    for data in (base, cand):
        data["raw_data"]["timeline"] = [{"t": 0, "requests": 10}]  # another tool's timeline: no histograms
    assert fmt.side(cand) is None
    verdict = judge_baselines(JudgeSettings(), base, cand)
    results = {r.metric: r for r in verdict.comparison.results}
    assert results["p95_ms"].change == pytest.approx(0.5)
    assert results["error_rate"].change == pytest.approx(0.02)
    assert {r.verdict for r in results.values()} == {"inconclusive"}
    assert all(math.isnan(r.ci_low) for r in results.values())
    assert verdict.comparison.overall == "inconclusive"
    assert fmt.NO_WINDOWS in verdict.comparison.warnings
