"""The comparison engine on synthetic windowed runs with known effects (no services)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import side, window_rows

from benchlab.runners.analysis import bootstrap
from benchlab.runners.analysis.compare import RunEvidence, Settings, Side, compare
from benchlab.runners.analysis.estimate import latency_estimates
from benchlab.runners.analysis.series import (
    BUCKETS_PER_E,
    ValueSeries,
    hist_percentiles,
    latency_series,
    mean_per_window,
)
from benchlab.runners.analysis.threshold import parse_thresholds
from benchlab.runners.analysis.verdict import INCONCLUSIVE, REGRESSION, UNCHANGED

FAST = Settings(replicates=500)


def _result(comparison, endpoint: str, metric: str):  # type: ignore[no-untyped-def]
    return next(r for r in comparison.results if r.endpoint == endpoint and r.metric == metric)


def test_histogram_percentiles_match_numpy_within_bucket_width() -> None:
    rng = np.random.default_rng(3)
    rt = rng.lognormal(3.0, 0.8, 20_000)
    buckets = np.floor(np.log(rt) * BUCKETS_PER_E).astype(int)
    cols, counts = np.unique(buckets, return_counts=True)
    got = hist_percentiles(counts[None, :].astype(float), cols, [0.5, 0.95, 0.99])[0]
    want = np.percentile(rt, [50, 95, 99])
    assert np.all(np.abs(got / want - 1) < 1 / BUCKETS_PER_E)


def test_series_are_dense_and_sum_to_the_rows() -> None:
    rows = [
        (7, "/a", "GET", 100, 150, 3, 1, 30.0),
        (7, "/a", "GET", 103, 160, 2, 0, 50.0),
        (7, "/b", "GET", 101, 150, 4, 0, 8.0),
    ]
    s = latency_series(rows, 1.0)[7]
    assert s[("/a", "GET")].counts.tolist() == [3, 0, 0, 2]  # idle seconds are windows with no requests
    assert s[("", "")].counts.tolist() == [3, 4, 0, 2]
    assert s[("", "")].failures.tolist() == [1, 0, 0, 0]
    assert s[("/b", "GET")].hist.sum() == 4 and s[("", "")].buckets.tolist() == [150, 160]


def test_known_shift_on_one_endpoint_is_a_regression_there_only() -> None:
    rng = np.random.default_rng(11)
    base = side("1.0", [1, 2, 3], rng)
    cand = side("1.1", [4, 5, 6], rng, scale={"/a": 1.5, "/b": 1.0})
    result = compare(base, cand, settings=FAST)
    a, b = _result(result, "/a", "p95_ms"), _result(result, "/b", "p95_ms")
    assert a.verdict == REGRESSION and a.ci_low > 0 and a.change > 0.2
    assert b.verdict != REGRESSION
    assert result.overall == REGRESSION
    assert {r.endpoint for r in result.results if r.verdict == REGRESSION} <= {"/a", ""}


def test_single_runs_without_calibration_need_the_whole_interval_beyond_the_threshold() -> None:
    """One run a side: the interval holds within-run noise only, so a 1.5x shift whose interval reaches
    below the 20% threshold is inconclusive; a 2.5x shift clears it and is a regression."""
    rng = np.random.default_rng(11)
    base = side("1.0", [1], rng)
    moderate = compare(base, side("1.1", [2], rng, scale={"/a": 1.5, "/b": 1.0}), settings=FAST)
    a = _result(moderate, "/a", "p95_ms")
    assert a.change > 0.2 and 0 < a.ci_low < 0.2
    assert a.verdict == INCONCLUSIVE and a.note.startswith("run-to-run spread unknown")
    large = compare(base, side("1.2", [3], rng, scale={"/a": 2.5, "/b": 1.0}), settings=FAST)
    a = _result(large, "/a", "p95_ms")
    assert a.ci_low > 0.2 and a.verdict == REGRESSION and large.overall == REGRESSION


def test_the_whole_interval_rule_holds_only_while_the_run_to_run_spread_is_unknown() -> None:
    """Three runs a side (the spread is estimated) or a calibrated floor: a regression needs its interval to
    exclude zero, not to clear the threshold; an interval reaching below 20% is still a regression."""
    rng = np.random.default_rng(12)
    three = compare(
        side("1.0", [1, 2, 3], rng), side("1.1", [4, 5, 6], rng, scale={"/a": 1.4, "/b": 1.0}), settings=FAST
    )
    a = _result(three, "/a", "p95_ms")
    assert 0 < a.ci_low < 0.2 < a.change and a.verdict == REGRESSION and not a.note
    rng = np.random.default_rng(11)
    base, cand = side("1.0", [1], rng), side("1.1", [2], rng, scale={"/a": 1.5, "/b": 1.0})
    floors = {("/a", "GET", "p95_ms", ""): 0.01}
    a = _result(compare(base, cand, settings=Settings(replicates=500, floors=floors)), "/a", "p95_ms")
    assert 0 < a.ci_low < 0.2 < a.change and a.verdict == REGRESSION and a.note.startswith("noise floor 0.01")


def test_repeated_aa_pairs_raise_no_regression() -> None:
    rng = np.random.default_rng(5)
    alarms = 0
    for pair in range(12):
        comparison = compare(side("1.0", [2 * pair], rng), side("1.0", [2 * pair + 1], rng), settings=FAST)
        alarms += any(r.verdict == REGRESSION and r.gating for r in comparison.results)
    assert alarms == 0


def test_block_bootstrap_is_honest_where_iid_is_overconfident() -> None:
    """On autocorrelated runs, the i.i.d. bootstrap's standard error is far below the true run-to-run spread."""
    rng = np.random.default_rng(3)
    means, block_se, iid_se = [], [], []
    for _ in range(40):
        series = side("a", [1], rng, phi=0.8, sigma=0.1, windows=120).runs[0].latency[("", "")]
        for blk, out in ((bootstrap.block_length(mean_per_window(series)), block_se), (1.0, iid_se)):
            weights = bootstrap.plan([series.windows], [blk], 300, rng, runs=False).weights
            est = latency_estimates([series], [series.windows], weights, 1.0)
            out.append(float(np.std(np.log(est.replicates["mean_ms"]))))
        means.append(np.log(est.point["mean_ms"]))
    true_se = float(np.std(means, ddof=1))
    assert np.median(iid_se) < 0.5 * true_se  # overconfident: intervals less than half as wide as they should be
    assert 0.6 * true_se < np.median(block_se) < 1.4 * true_se
    assert np.median(block_se) > 1.6 * np.median(iid_se)


def test_too_little_data_is_inconclusive_not_unchanged() -> None:
    rng = np.random.default_rng(2)
    result = compare(side("1.0", [1], rng, windows=5), side("1.1", [2], rng, windows=5), settings=FAST)
    assert {r.verdict for r in result.results} == {INCONCLUSIVE}
    assert all("windows" in r.note for r in result.results)
    sparse = compare(side("1.0", [1], rng, rps=1.0), side("1.1", [2], rng, rps=1.0), settings=FAST)
    assert _result(sparse, "/a", "p99_ms").verdict == INCONCLUSIVE  # about 60 requests: < 5 beyond p99


def test_per_endpoint_threshold_override_changes_the_verdict() -> None:
    rng = np.random.default_rng(11)
    base = side("1.0", [1], rng)
    cand = side("1.1", [2], rng, scale={"/a": 1.5, "/b": 1.0})
    loose = parse_thresholds('{"endpoints": {"/a": {"response_time": 2.0}}}')
    assert _result(compare(base, cand, loose, FAST), "/a", "p95_ms").verdict != REGRESSION


def test_several_runs_are_resampled_as_runs() -> None:
    rng = np.random.default_rng(4)
    comparison = compare(side("1.0", [1, 2, 3], rng), side("1.1", [4, 5, 6], rng, scale={"/a": 1.6}), settings=FAST)
    assert _result(comparison, "/a", "p95_ms").verdict == REGRESSION
    assert comparison.method["runs"] == {"baseline": [1, 2, 3], "candidate": [4, 5, 6]}
    assert not comparison.warnings  # three runs a side: run-to-run variance is estimated


def test_noise_floor_widens_the_interval_of_single_runs() -> None:
    rng = np.random.default_rng(6)
    base, cand = side("1.0", [1], rng), side("1.1", [2], rng, scale={"/a": 1.3, "/b": 1.0})
    plain = _result(compare(base, cand, settings=FAST), "/a", "p95_ms")
    floors = {("/a", "GET", "p95_ms", ""): 0.2}
    wide = _result(compare(base, cand, settings=Settings(replicates=500, floors=floors)), "/a", "p95_ms")
    assert (wide.ci_high - wide.ci_low) > 1.5 * (plain.ci_high - plain.ci_low)
    assert wide.noise_floor == 0.2 and wide.verdict == INCONCLUSIVE
    noisy = compare(base, cand, settings=Settings(replicates=500, floors=floors))
    assert any("inside the run-to-run noise" in w for w in noisy.warnings)


def test_resources_are_judged_with_their_threshold() -> None:
    rng = np.random.default_rng(9)
    base, cand = side("1.0", [1], rng), side("1.1", [2], rng)

    def with_cpu(s: Side, level: float) -> Side:
        cpu = ValueSeries(values=level + rng.normal(0, 2, 60), window_s=1.0)
        runs = [
            RunEvidence(run_id=r.run_id, latency=r.latency, resources={("cpu_percent", "api"): cpu}) for r in s.runs
        ]
        return Side(version=s.version, runs=runs)

    hot = compare(with_cpu(base, 40), with_cpu(cand, 60), settings=FAST)
    cpu = next(r for r in hot.results if r.metric == "cpu_percent")
    assert cpu.subject == "api" and cpu.verdict == REGRESSION and cpu.threshold == 0.15
    same = compare(with_cpu(base, 40), with_cpu(cand, 40.5), settings=FAST)
    assert next(r for r in same.results if r.metric == "cpu_percent").verdict == UNCHANGED


def test_same_data_same_seed_same_verdicts() -> None:
    rng = np.random.default_rng(1)
    base, cand = side("1.0", [1], rng), side("1.1", [2], rng)
    one, two = compare(base, cand, settings=FAST), compare(base, cand, settings=FAST)
    assert [r.as_dict() for r in one.results] == [r.as_dict() for r in two.results]


@pytest.mark.parametrize("metric", ["rps", "error_rate"])
def test_exact_point_estimates_are_used_when_given(metric: str) -> None:
    rng = np.random.default_rng(1)
    base = side("1.0", [1], rng)
    exact = Side(version="1.0", runs=base.runs, exact={("/a", "GET"): {metric: 123.0}})
    assert _result(compare(exact, side("1.1", [2], rng), settings=FAST), "/a", metric).baseline == 123.0


def test_window_rows_helper_is_consistent() -> None:
    rows = window_rows(1, np.random.default_rng(0), windows=3, rps=10)
    assert {r[3] for r in rows} == {1000, 1001, 1002}
