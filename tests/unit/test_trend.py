"""Change points over runs (E-divisive means with a permutation test) and the trend built on them."""

from __future__ import annotations

import numpy as np
import pytest

from benchlab.runners.analysis.trend import (
    Point,
    TrendSettings,
    _divergences,
    best_split,
    change_points,
    trend,
)


def _points(values: np.ndarray, versions: list[str] | None = None) -> list[Point]:
    versions = versions or ["1.0"] * len(values)
    return [
        Point(run_id=i + 1, version=versions[i], started_at=f"2024-01-{i + 1:02d}T10:00:00+00:00", value=float(v))
        for i, v in enumerate(values)
    ]


def _brute(x: np.ndarray, tau: int) -> float:
    left, right = x[:tau], x[tau:]
    m, n = len(left), len(right)
    cross = np.abs(left[:, None] - right[None, :]).mean()
    within_l = np.abs(left[:, None] - left[None, :]).sum() / (m * (m - 1))
    within_r = np.abs(right[:, None] - right[None, :]).sum() / (n * (n - 1))
    return m * n / (m + n) * (2 * cross - within_l - within_r)


def test_divergence_matches_the_definition() -> None:
    x = np.random.default_rng(3).normal(size=15)
    q = _divergences(x, 3)
    assert np.allclose(q[:, -1], [_brute(x, t) for t in range(3, 13)])  # κ = len(x): the whole segment
    assert q[2, 4] == pytest.approx(_brute(x[:10], 5))  # τ = 5, κ = 10
    assert np.isnan(q[5, 0])  # right side shorter than min_segment


def test_a_known_step_is_found_with_its_levels_and_significance() -> None:
    rng = np.random.default_rng(1)
    values = np.r_[rng.normal(100, 3, 10), rng.normal(130, 3, 10)]
    t = trend(_points(values, ["1.0"] * 10 + ["1.1"] * 10), "p95")
    assert [cp.index for cp in t.change_points] == [10]
    cp = t.change_points[0]
    assert cp.version == "1.1" and cp.run_id == 11
    assert cp.before == pytest.approx(100, abs=4) and cp.after == pytest.approx(130, abs=4)
    assert cp.change == pytest.approx(0.3, abs=0.06)
    assert cp.p_value <= 0.01
    assert t.change == pytest.approx(0.3, abs=0.08)


def test_two_steps_are_both_found() -> None:
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(100, 4, 8), rng.normal(150, 4, 8), rng.normal(100, 4, 8)]
    assert [i for i, _, _ in change_points(values)] == [8, 16]


def test_flat_noisy_series_have_no_change_point_beyond_the_false_alarm_rate() -> None:
    rng = np.random.default_rng(7)
    alarms = sum(bool(change_points(100 * np.exp(rng.normal(0, 0.1, 25)))) for _ in range(40))
    assert alarms <= 5  # 5% of 40 is 2 expected; 5 would be a 1-in-100 event
    assert change_points(100 * np.exp(np.random.default_rng(0).normal(0, 0.1, 30))) == []


def test_too_little_history_calls_no_change_and_says_so() -> None:
    values = np.array([100, 101, 99, 200, 201])
    t = trend(_points(values), "p95")
    assert t.change_points == ()
    assert any("too little history" in n for n in t.notes)
    assert any("at least 6 runs" in n for n in t.notes)


def test_a_single_outlier_at_the_end_is_not_a_change_point() -> None:
    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(100, 3, 15), [400.0]]
    assert change_points(values) == []
    split = best_split(np.log(values), 3)
    assert split is not None and split[0] <= 13  # a split leaves at least min_segment runs either side


def test_same_series_same_answer_and_settings_are_checked() -> None:
    rng = np.random.default_rng(5)
    values = np.r_[rng.normal(50, 2, 7), rng.normal(60, 2, 7)]
    assert change_points(values) == change_points(values)
    with pytest.raises(ValueError, match="min_runs"):
        TrendSettings(min_runs=4, min_segment=3)
    with pytest.raises(ValueError, match="min_segment"):
        TrendSettings(min_segment=1)


def test_zero_values_are_analysed_on_the_raw_scale() -> None:
    values = np.r_[np.zeros(8), np.full(8, 0.05) + np.random.default_rng(6).normal(0, 0.002, 8)]
    assert [i for i, _, _ in change_points(values)] == [8]


def test_missing_values_are_noted_not_searched() -> None:
    values = np.r_[np.full(6, 100.0), [np.nan], np.full(6, 130.0)]
    t = trend(_points(values), "p95")
    assert t.change_points == ()
    assert any("no value" in n for n in t.notes)
