"""Windowed series, per-side estimates and resampling plans on small hand-computed cases (no services)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import optimal_block_length as arch_block_length

from benchlab.runners.analysis.bootstrap import MIN_BLOCK, block_length, optimal_block_length, plan, stationary_indices
from benchlab.runners.analysis.estimate import latency_estimates, value_estimates
from benchlab.runners.analysis.series import (
    BUCKETS_PER_E,
    LatencySeries,
    ValueSeries,
    bucket_of,
    hist_percentiles,
    latency_series,
    mean_per_window,
    steady_windows,
    trim,
    value_series,
)


def series(
    counts: list[float], fails: list[float], sums: list[float], hist: list[list[float]], buckets: list[int]
) -> LatencySeries:
    return LatencySeries(
        counts=np.array(counts, dtype=float),
        failures=np.array(fails, dtype=float),
        sum_ms=np.array(sums, dtype=float),
        hist=np.array(hist, dtype=float),
        buckets=np.array(buckets),
        window_s=1.0,
    )


# -- series -------------------------------------------------------------------------------------------------------


def test_bucket_of_is_floor_of_log_times_fifty_with_a_floor_at_one_microsecond() -> None:
    assert bucket_of(1.0) == 0
    assert bucket_of(2.0) == math.floor(math.log(2.0) * 50) == 34
    assert bucket_of(0.5) == math.floor(math.log(0.5) * 50) == -35
    assert bucket_of(0.0) == bucket_of(0.001) == math.floor(math.log(0.001) * 50)
    assert bucket_of(-5.0) == bucket_of(0.001)
    assert BUCKETS_PER_E == 50


def test_latency_series_per_run_and_method_with_a_total() -> None:
    rows = [
        (1, "/a", "GET", 10, 100, 2, 1, 8.0),
        (1, "/a", "POST", 12, 101, 1, 0, 3.0),
        (2, "/a", "GET", 5, 100, 4, 0, 10.0),
    ]
    out = latency_series(rows, 2.0)
    assert sorted(out) == [1, 2]
    one = out[1]
    assert sorted(one) == [("", ""), ("/a", "GET"), ("/a", "POST")]
    get, post, total = one[("/a", "GET")], one[("/a", "POST")], one[("", "")]
    assert get.counts.tolist() == [2, 0, 0] and get.failures.tolist() == [1, 0, 0] and get.sum_ms.tolist() == [8, 0, 0]
    assert get.hist.tolist() == [[2, 0], [0, 0], [0, 0]] and post.hist.tolist() == [[0, 0], [0, 0], [0, 1]]
    assert total.counts.tolist() == [2, 0, 1] and total.sum_ms.tolist() == [8, 0, 3]
    assert total.failures.tolist() == [1, 0, 0] and total.hist.tolist() == [[2, 0], [0, 0], [0, 1]]
    assert total.buckets.tolist() == [100, 101] and total.window_s == 2.0 and get.window_s == 2.0
    assert total.windows == 3 and total.requests == 3
    assert out[2][("", "")].counts.tolist() == [4] and out[2][("/a", "GET")].buckets.tolist() == [100]


def test_value_series_sorts_by_window_and_skips_missing_readings() -> None:
    rows = [(1, "cpu", 3, 5.0), (1, "cpu", 1, 7.0), (1, "rss", 1, None), (2, "cpu", 0, 1)]
    out = value_series(rows, 5.0)  # type: ignore[arg-type]
    assert sorted(out) == [1, 2] and sorted(out[1]) == ["cpu"]
    assert out[1]["cpu"].values.tolist() == [7.0, 5.0] and out[1]["cpu"].window_s == 5.0
    assert out[2]["cpu"].values.tolist() == [1.0]
    assert value_series([], 1.0) == {}


def test_hist_percentiles_interpolate_in_log_space_within_a_bucket() -> None:
    hist = np.array([[2.0, 2.0], [0.0, 0.0]])
    got = hist_percentiles(hist, np.array([0, 50]), [0.0, 0.25, 0.5, 1.0])
    want = np.exp(np.array([0.25, 0.625, 1.0, 50.75]) / 50)
    assert got[0] == pytest.approx(want, rel=1e-12)
    assert np.isnan(got[1]).all()
    edge = hist_percentiles(np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 1.0]]), np.array([0, 50]), [1.0, 1.7 / 3])
    assert edge[0, 0] == pytest.approx(np.exp(50.5 / 50))  # rank 1 is the second time, not the first
    assert edge[1, 1] == pytest.approx(np.exp(1 / 50))  # never beyond its own bucket's top
    assert edge[2].tolist() == pytest.approx([np.exp(50.5 / 50)] * 2)  # one request is a percentile too
    one = hist_percentiles(np.array([0.0, 4.0, 0.0]), np.array([-10, 0, 10]), [0.5])
    assert one.shape == (1, 1) and one[0, 0] == pytest.approx(np.exp((0 + (1.5 + 0.5) / 4) / 50))


def test_mean_per_window_fills_empty_windows_with_the_overall_mean() -> None:
    s = series([2, 0, 3, 1], [0, 0, 0, 0], [10, 0, 45, 4], [[2], [0], [3], [1]], [0])
    assert mean_per_window(s).tolist() == [5.0, 59 / 6, 15.0, 4.0]
    assert mean_per_window(None).size == 0
    assert mean_per_window(series([0, 0], [0, 0], [0, 0], [[0], [0]], [0])).size == 0


@pytest.mark.parametrize(
    ("windows", "window_s", "warmup", "want"),
    [
        (100, 1.0, 0.1, slice(10, 99)),
        (1000, 1.0, 0.1, slice(30, 999)),  # warm-up capped at 30 s
        (1000, 2.0, 0.1, slice(15, 999)),  # 30 s are 15 windows of 2 s
        (101, 1.0, 0.1, slice(11, 100)),  # a fraction of a window rounds up
        (100, 1.0, 0.0, slice(1, 99)),  # the first window always goes
        (5, 1.0, 0.1, slice(1, 4)),
        (3, 1.0, 0.1, slice(1, 2)),  # one window left is enough
        (2, 1.0, 0.1, slice(0, 2)),  # nothing left: keep everything
        (1000, 100.0, 0.1, slice(1, 999)),
    ],
)
def test_steady_windows(windows: int, window_s: float, warmup: float, want: slice) -> None:
    assert steady_windows(windows, window_s, warmup=warmup) == want


def test_steady_windows_default_warmup_and_cap() -> None:
    assert steady_windows(200, 1.0) == slice(20, 199)
    assert steady_windows(200, 1.0, max_warmup_s=5.0) == slice(5, 199)


def test_trim_keeps_the_windows_and_the_buckets() -> None:
    s = series([1, 2, 3, 4], [0, 1, 0, 1], [1, 2, 3, 4], [[1, 0], [1, 1], [0, 3], [4, 0]], [7, 9])
    t = trim(s, slice(1, 3))
    assert t.counts.tolist() == [2, 3] and t.failures.tolist() == [1, 0] and t.sum_ms.tolist() == [2, 3]
    assert t.hist.tolist() == [[1, 1], [0, 3]] and t.buckets.tolist() == [7, 9] and t.window_s == 1.0


# -- estimates ----------------------------------------------------------------------------------------------------


def test_latency_estimates_concatenate_runs_and_weight_windows() -> None:
    s1 = series([2, 4], [1, 0], [10, 30], [[2, 0], [1, 3]], [0, 50])
    weights = np.array([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [2, 1, 0, 0, 0]], dtype=float)
    est = latency_estimates([s1, None], [2, 3], weights, 2.0)
    assert est.requests == 6 and est.windows == 5
    assert est.point["mean_ms"] == pytest.approx(40 / 6)
    assert est.point["rps"] == pytest.approx(6 / 10) and est.point["error_rate"] == pytest.approx(1 / 6)
    assert est.point["p50_ms"] == pytest.approx(np.exp(1 / 50))
    reps = est.replicates
    assert reps["mean_ms"][1] == 5.0 and reps["rps"][1] == 1.0 and reps["error_rate"][1] == 0.5
    assert np.isnan(reps["mean_ms"][2]) and reps["rps"][2] == 0.0 and np.isnan(reps["error_rate"][2])
    assert np.isnan(reps["p95_ms"][2])
    assert reps["mean_ms"][3] == pytest.approx(50 / 8) and reps["rps"][3] == pytest.approx(8 / 6)
    assert reps["error_rate"][3] == pytest.approx(2 / 8)
    for metric, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        want = hist_percentiles(np.array([[5.0, 3.0]]), np.array([0, 50]), [q])[0, 0]
        assert reps[metric][3] == pytest.approx(want)


def test_latency_estimates_of_single_requests_and_short_windows() -> None:
    s = series([1, 3], [1, 0], [7, 30], [[1, 0], [0, 3]], [0, 50])
    est = latency_estimates([s], [2], np.array([[1.0, 0.0], [0.0, 1.0]]), 0.5)
    assert est.replicates["mean_ms"].tolist() == [7.0, 10.0] and est.replicates["error_rate"].tolist() == [1.0, 0.0]
    assert est.replicates["rps"].tolist() == [2.0, 6.0] and est.point["rps"] == 4.0


def test_latency_estimates_align_histograms_on_the_union_of_buckets() -> None:
    s1 = series([2, 4], [0, 0], [1, 1], [[2, 0], [1, 3]], [0, 50])
    s3 = series([5], [0], [1], [[0, 5]], [50, 100])
    est = latency_estimates([s1, s3], [2, 1], np.ones((1, 3)), 1.0)
    assert est.point["p50_ms"] == pytest.approx(np.exp((50 + 2.5 / 3) / 50))
    assert est.point["p99_ms"] == pytest.approx(np.exp((100 + (0.99 * 10 - 6 + 0.5) / 5) / 50))


def test_value_estimates_are_weighted_means() -> None:
    a, b = ValueSeries(values=np.array([1.0, 2.0, 3.0]), window_s=1.0), ValueSeries(np.array([5.0]), 1.0)
    weights = np.array([[1, 1, 1, 1], [2, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    est = value_estimates([a, b], weights)
    assert est.point == {"mean": 2.75} and est.windows == 4 and est.requests == 0
    assert est.replicates["mean"][:2].tolist() == [2.75, 1.0] and np.isnan(est.replicates["mean"][2])
    empty = value_estimates([], np.zeros((2, 0)))
    assert math.isnan(empty.point["mean"]) and empty.windows == 0


# -- resampling ---------------------------------------------------------------------------------------------------


def test_block_length_fallbacks_and_clipping() -> None:
    assert block_length(np.arange(4.0)) == 1.0  # short: sqrt(4)/2
    assert block_length(np.arange(9.0)) == 1.5
    assert block_length(np.ones(100)) == 5.0  # constant: sqrt(n)/2
    assert block_length(np.array([])) == MIN_BLOCK == 1.0
    assert block_length(np.r_[np.arange(99.0), np.nan]) == 5.0
    assert block_length(np.r_[np.arange(99.0), np.inf]) == 5.0
    walk = np.cumsum(np.random.default_rng(75).normal(size=31))  # a random walk: blocks as long as allowed
    assert optimal_block_length(walk) == 11.0 and block_length(walk) == pytest.approx(31 / 3)
    rng = np.random.default_rng(7)
    white = rng.normal(size=400)
    assert block_length(white) == max(1.0, min(optimal_block_length(white), 400 / 3))
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(size=50)
        assert 1.0 <= block_length(noise) <= 50 / 3
        if optimal_block_length(noise) < 1:
            assert block_length(noise) == 1.0


def _ar(seed: int) -> np.ndarray:
    """An AR(1) series (integrated now and then) of random length and coefficient."""
    r = np.random.default_rng(seed)
    n, phi = int(r.integers(12, 400)), float(r.uniform(-0.9, 0.99))
    x, e = np.zeros(n), r.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return np.cumsum(x) if r.random() < 0.3 else x


@pytest.mark.parametrize("seed", [49, 92])
def test_block_length_matches_arch_at_the_bandwidth_and_length_limits(seed: int) -> None:
    x = _ar(seed)  # 49: the bandwidth search ends at its last lag; 92: the length cap of 3 sqrt(n) binds
    with np.errstate(divide="ignore", invalid="ignore"):
        assert optimal_block_length(x) == pytest.approx(float(arch_block_length(x)["stationary"].iloc[0]), rel=1e-9)


def test_ten_windows_are_enough_to_estimate_a_block_length() -> None:
    x = np.arange(10.0) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        assert block_length(x) == max(1.0, min(optimal_block_length(x), 10 / 3)) == 10 / 3


def test_block_lengths_below_one_are_one_and_huge_blocks_never_restart() -> None:
    rng = np.random.default_rng(1)
    idx = stationary_indices(50, 0.2, 400, rng)
    assert (idx[:, 1:] == (idx[:, :-1] + 1) % 50).mean() == pytest.approx(0.02, abs=0.01)
    assert np.array_equal(np.unique(idx), np.arange(50))  # every window, the first included, can be drawn
    whole = stationary_indices(50, 1e12, 20, rng)
    assert np.all(whole[:, 1:] == (whole[:, :-1] + 1) % 50)
    assert len({int(r[0]) for r in whole}) > 5  # each replicate starts at its own random window


def test_plan_records_offsets_blocks_and_whether_runs_were_resampled() -> None:
    rng = np.random.default_rng(4)
    p = plan([50, 30, 20], [3.0, 2.0, 1.5], 100, rng, runs=False)
    assert p.offsets == (0, 50, 80) and p.block_lengths == (3.0, 2.0, 1.5) and not p.resampled_runs
    assert p.weights.shape == (100, 100) and np.all(p.weights[:, 80:].sum(axis=1) == 20)
    single = plan([40], [2.0], 100, rng, runs=True)
    assert not single.resampled_runs and np.all(single.weights.sum(axis=1) == 40)
    assert plan([40, 40], [2.0, 2.0], 10, rng, runs=True).resampled_runs


def test_plan_draws_whole_runs_with_their_own_windows() -> None:
    rng = np.random.default_rng(5)
    p = plan([10, 10], [1.0, 1.0], 600, rng, runs=True)
    per_run = np.stack([p.weights[:, :10].sum(axis=1), p.weights[:, 10:].sum(axis=1)], axis=1)
    assert set(map(tuple, per_run.tolist())) == {(20.0, 0.0), (10.0, 10.0), (0.0, 20.0)}
    counts = {k: int(np.all(per_run == k, axis=1).sum()) for k in ((20.0, 0.0), (10.0, 10.0), (0.0, 20.0))}
    assert 100 < counts[(20.0, 0.0)] < 200 and 100 < counts[(0.0, 20.0)] < 200 and 220 < counts[(10.0, 10.0)] < 380
    assert p.weights.min() >= 0 and np.all(p.weights.sum(axis=1) == 20)
    twice = p.weights[np.all(per_run == (20.0, 0.0), axis=1), :10]
    assert (twice % 2 == 1).any()  # a run drawn twice gets two independent resamples, not one counted double
    assert len({tuple(row) for row in twice}) > len(twice) // 2
