"""The comparison on flat runs, where every replicate is the same and every number is known exactly (no services).

A run whose windows are all alike resamples to itself: changes, intervals, p-values and verdicts are exact, and a
calibrated noise floor is then the only randomness, so its width can be checked against the normal it adds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy.stats import false_discovery_control, norm
from synthetic import side

from benchlab.runners.analysis import bootstrap
from benchlab.runners.analysis.compare import Comparison, MetricResult, RunEvidence, Settings, Side, compare
from benchlab.runners.analysis.series import ValueSeries, bucket_of, latency_series, mean_per_window
from benchlab.runners.analysis.threshold import DEFAULT_THRESHOLDS, Thresholds
from benchlab.runners.analysis.verdict import IMPROVEMENT, INCONCLUSIVE, REGRESSION, UNCHANGED

Load = Mapping[str, tuple[int, int, int]]
"""Endpoint name → (requests, failures, ms per request) in every window."""
SOLO = "1 baseline and 1 candidate run(s) and no calibration: the intervals hold within-run noise only; run "
SOLO += "`benchlab calibrate` or compare more runs"


def run(run_id: int, load: Load, windows: int = 30, window_s: float = 2.0, **resources: list[float]) -> RunEvidence:
    """A run whose windows are all alike; resources given as metric__subject=[values]."""
    rows = [
        (run_id, name, "GET", w, bucket_of(ms), n, f, float(n * ms))
        for w in range(windows)
        for name, (n, f, ms) in load.items()
    ]
    res = {
        tuple(k.split("__")): ValueSeries(values=np.array(v, dtype=float), window_s=window_s)
        for k, v in resources.items()
    }
    return RunEvidence(run_id=run_id, latency=latency_series(rows, window_s)[run_id], resources=res)  # type: ignore[arg-type]


def pick(c: Comparison, endpoint: str, metric: str, subject: str = "") -> MetricResult:
    return next(r for r in c.results if r.endpoint == endpoint and r.metric == metric and r.subject == subject)


def p_of(ms: float, requests: int, q: float) -> float:
    """A percentile of `requests` times all in the bucket of `ms` (histogram interpolation)."""
    return math.exp((bucket_of(ms) + (q * (requests - 1) + 0.5) / requests) / 50)


BASE: Load = {"/a": (100, 1, 10), "/b": (50, 0, 20)}
SLOWER: Load = {"/a": (100, 1, 15), "/b": (50, 0, 20)}


def test_flat_runs_give_exact_changes_p_values_and_verdicts() -> None:
    c = compare(Side("1.0", [run(1, BASE)]), Side("1.1", [run(2, SLOWER)]), settings=Settings(replicates=300))
    keys = [(r.endpoint, r.metric) for r in c.results]
    metrics = ["mean_ms", "p50_ms", "p95_ms", "p99_ms", "rps", "error_rate"]
    assert keys == [(e, m) for e in ("/a", "/b", "") for m in metrics]
    mean = pick(c, "/a", "mean_ms")
    assert (mean.baseline, mean.candidate, mean.method, mean.subject) == (10.0, 15.0, "GET", "")
    assert (
        mean.change == pytest.approx(0.5) and mean.ci_low == pytest.approx(0.5) and mean.ci_high == pytest.approx(0.5)
    )
    assert (mean.p_value, mean.q_value, mean.verdict, mean.gating) == (0.0, 0.0, REGRESSION, False)
    assert (mean.change_kind, mean.threshold, mean.noise_floor, mean.note) == ("relative", 0.2, None, "")
    p95 = pick(c, "/a", "p95_ms")
    assert p95.baseline == pytest.approx(p_of(10, 3000, 0.95)) and p95.candidate == pytest.approx(p_of(15, 3000, 0.95))
    assert p95.change == pytest.approx(math.exp((bucket_of(15) - bucket_of(10)) / 50) - 1)
    assert p95.verdict == REGRESSION and p95.gating and p95.ci_low == pytest.approx(p95.change)
    rps = pick(c, "/a", "rps")
    assert (rps.baseline, rps.candidate, rps.change, rps.ci_low, rps.ci_high) == (50.0, 50.0, 0.0, 0.0, 0.0)
    assert (rps.p_value, rps.q_value, rps.verdict, rps.gating, rps.change_kind) == (
        1.0,
        1.0,
        UNCHANGED,
        True,
        "relative",
    )
    err = pick(c, "/a", "error_rate")
    assert (err.baseline, err.candidate, err.change, err.ci_low, err.ci_high) == (0.01, 0.01, 0.0, 0.0, 0.0)
    assert (err.change_kind, err.threshold, err.p_value, err.verdict, err.gating) == (
        "absolute",
        0.01,
        1.0,
        UNCHANGED,
        True,
    )
    assert {r.verdict for r in c.results if r.endpoint == "/b"} == {UNCHANGED}
    total = pick(c, "", "mean_ms")
    assert total.baseline == pytest.approx(2000 / 150) and total.candidate == pytest.approx(2500 / 150)
    assert (total.method, total.change) == ("", pytest.approx(0.25))
    assert all(r.note == "" and r.noise_floor is None for r in c.results)
    assert c.overall == REGRESSION and c.warnings == (SOLO,)


def test_the_method_record_names_everything_a_reader_needs() -> None:
    c = compare(
        Side("1.0", [run(1, BASE)]), Side("1.1", [run(2, BASE), run(3, BASE)]), settings=Settings(replicates=300)
    )
    block = math.sqrt(30) / 2  # flat series: no autocorrelation to estimate
    assert c.method == {
        "name": "windowed stationary block bootstrap",
        "unit_of_evidence": "2 s windows aggregated in SQL; runs when a side has several",
        "resampling": "runs with replacement, then windows within each run by a stationary bootstrap "
        "(Politis & Romano 1994; block length by Politis & White 2004, as in arch)",
        "interval": "95% percentile bootstrap interval of the change "
        "(log ratio for relative metrics, difference for the error rate)",
        "replicates": 300,
        "p_value": "two-sided, from the replicates' mean and standard error (normal approximation)",
        "multiple_testing": "Benjamini-Hochberg across all metrics (scipy), false discovery rate 0.05",
        "verdict_rule": "regression: change beyond the threshold, interval excluding zero, adjusted p < alpha; "
        "when the run-to-run spread is unknown (no noise floor and too few runs), the whole interval beyond "
        "the threshold; unchanged: interval within the threshold band; otherwise inconclusive",
        "percentiles": "point estimates exact over the pooled samples; resampled from 2% log-spaced histograms",
        "assumptions": [
            "windows farther apart than the block length are close to independent (stationarity within a run)",
            "runs of one version are exchangeable repeats of the same experiment",
            "with fewer than 3 runs a side, run-to-run variance comes from the calibrated noise floor; "
            "without one, a regression must clear the threshold with its whole interval",
        ],
        "runs": {"baseline": [1], "candidate": [2, 3]},
        "block_lengths": {"baseline": [block], "candidate": [block, block]},
        "seed": 20240101,
    }
    assert c.warnings == (SOLO.replace("1 candidate", "2 candidate"),)
    fixed = compare(
        Side("1.0", [run(1, BASE)]), Side("1.1", [run(2, BASE)]), settings=Settings(replicates=100, block=4.0)
    )
    assert fixed.method["block_lengths"] == {"baseline": [4.0], "candidate": [4.0]}
    assert "90% percentile" in compare(*_pair(), settings=Settings(replicates=100, confidence=0.9)).method["interval"]
    assert compare(*_pair(), settings=Settings(replicates=100, alpha=0.1)).method["multiple_testing"].endswith(" 0.1")


def _pair() -> tuple[Side, Side]:
    return Side("1.0", [run(1, BASE)]), Side("1.1", [run(2, BASE)])


def test_block_lengths_follow_each_runs_own_total_series() -> None:
    rng = np.random.default_rng(8)
    base, cand = side("1.0", [1, 2], rng, phi=0.9), side("1.1", [3], rng, phi=0.2)
    c = compare(base, cand, settings=Settings(replicates=100))
    want = {
        name: [bootstrap.block_length(mean_per_window(r.latency[("", "")])) for r in s.runs]
        for name, s in (("baseline", base), ("candidate", cand))
    }
    assert c.method["block_lengths"] == want and len(set(want["baseline"] + want["candidate"])) == 3


def test_direction_thresholds_and_alpha_of_each_metric() -> None:
    base = run(
        1, {"/a": (100, 0, 10)}, cpu_percent__api=[40.0] * 30, rss_bytes__api=[1e9] * 30, queue_length__q=[5.0] * 30
    )
    worse = run(
        2, {"/a": (50, 5, 30)}, cpu_percent__api=[60.0] * 30, rss_bytes__api=[2e9] * 30, queue_length__q=[9.0] * 30
    )
    limits = Thresholds(cpu_usage=0.11, memory_usage=0.12, queue_length=0.13, throughput=0.14, error_rate=0.02)
    c = compare(Side("1", [base]), Side("2", [worse]), limits, Settings(replicates=200))
    assert {(r.metric, r.verdict) for r in c.results if r.endpoint == "/a"} == {
        (m, REGRESSION) for m in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "rps", "error_rate")
    }
    assert pick(c, "/a", "rps").change == pytest.approx(-0.5) and pick(c, "/a", "rps").threshold == 0.14
    assert pick(c, "/a", "error_rate").change == pytest.approx(0.1) and pick(c, "/a", "error_rate").threshold == 0.02
    resources = [r for r in c.results if r.subject]
    assert [(r.metric, r.subject, r.threshold) for r in resources] == [
        ("cpu_percent", "api", 0.11),
        ("queue_length", "q", 0.13),
        ("rss_bytes", "api", 0.12),
    ]
    assert all(r.verdict == REGRESSION and r.gating and r.endpoint == r.method == "" for r in resources)
    assert all(r.change_kind == "relative" and r.note == "" for r in resources)
    assert pick(c, "", "cpu_percent", "api").change == pytest.approx(0.5)
    assert pick(c, "", "cpu_percent", "api").baseline == 40.0
    better = compare(Side("2", [worse]), Side("1", [base]), limits, Settings(replicates=200))
    assert {r.verdict for r in better.results} == {IMPROVEMENT}
    strict = compare(Side("1", [base]), Side("2", [worse]), limits, Settings(replicates=200, alpha=0.0))
    assert {r.verdict for r in strict.results} == {INCONCLUSIVE}  # q = 0 is not below an alpha of 0


def test_gating_follows_the_statistic_and_exact_points_win() -> None:
    base, cand = Side("1", [run(1, BASE)]), Side("2", [run(2, SLOWER)])
    c = compare(base, cand, Thresholds(statistic=("mean", "p99")), Settings(replicates=100))
    assert [r.metric for r in c.results if r.endpoint == "/a" and r.gating] == [
        "mean_ms",
        "p99_ms",
        "rps",
        "error_rate",
    ]
    exact = compare(
        Side("1", base.runs, exact={("/a", "GET"): {"mean_ms": 11.0}}),
        Side("2", cand.runs, exact={("/a", "GET"): {"mean_ms": 16.5}, ("/b", "GET"): {"p95_ms": 1.0}}),
        settings=Settings(replicates=100),
    )
    mean = pick(exact, "/a", "mean_ms")
    assert (mean.baseline, mean.candidate, mean.change) == (11.0, 16.5, pytest.approx(0.5))
    assert pick(exact, "/b", "p95_ms").candidate == 1.0
    assert pick(exact, "/b", "p95_ms").baseline == pytest.approx(p_of(20, 1500, 0.95))


def test_endpoints_and_resources_of_both_sides_only_total_last() -> None:
    base = run(
        1,
        {"/b": (30, 0, 5), "/a": (30, 0, 5), "/z": (30, 0, 5)},
        cpu_percent__api=[1.0] * 30,
        cpu_percent__db=[1.0] * 30,
    )
    cand = run(
        2,
        {"/a": (30, 0, 5), "/c": (30, 0, 5), "/b": (30, 0, 5)},
        cpu_percent__api=[1.0] * 30,
        queue_length__q=[1.0] * 30,
    )
    c = compare(Side("1", [base]), Side("2", [cand]), settings=Settings(replicates=100))
    order = list(dict.fromkeys((r.endpoint, r.subject) for r in c.results))
    assert order == [("/a", ""), ("/b", ""), ("", ""), ("", "api")]


def test_too_little_data_names_the_side_and_the_shortfall() -> None:
    floors = {("/a", "GET", "mean_ms", ""): 0.1}
    few = compare(
        Side("1", [run(1, {"/a": (100, 0, 10)}, windows=5)]),
        Side("2", [run(2, {"/a": (100, 0, 12)}, windows=30)]),
        settings=Settings(replicates=100, floors=floors),
    )
    mean = pick(few, "/a", "mean_ms")
    assert mean.note == "baseline has 5 windows (< 10)" and mean.verdict == INCONCLUSIVE
    assert mean.change == pytest.approx(0.2) and mean.noise_floor == 0.1
    assert all(math.isnan(x) for x in (mean.ci_low, mean.ci_high, mean.p_value, mean.q_value))
    assert {r.note for r in few.results} == {"baseline has 5 windows (< 10)"}
    swapped = compare(
        Side("1", [run(1, {"/a": (100, 0, 10)}, windows=30)]),
        Side("2", [run(2, {"/a": (100, 0, 12)}, windows=5)]),
        settings=Settings(replicates=100),
    )
    assert {r.note for r in swapped.results} == {"candidate has 5 windows (< 10)"}
    # Exactly at every limit is enough: 10 windows, 20 requests, 5 requests beyond p50.
    edge = compare(
        Side("1", [run(1, {"/a": (2, 0, 10)}, windows=10)]),
        Side("2", [run(2, {"/a": (1, 0, 10)}, windows=10)]),
        settings=Settings(replicates=100),
    )
    notes = {r.metric: r.note for r in edge.results if r.endpoint == "/a"}
    assert notes == {
        "mean_ms": "candidate has 10 requests (< 20)",
        "p50_ms": "",
        "p95_ms": "baseline has 1.0 requests beyond p95 (< 5)",
        "p99_ms": "baseline has 0.2 requests beyond p99 (< 5)",
        "rps": "",
        "error_rate": "candidate has 10 requests (< 20)",
    }
    assert pick(edge, "/a", "p50_ms").verdict == UNCHANGED and pick(edge, "/a", "rps").verdict == REGRESSION


def test_zero_readings_and_missing_resamples() -> None:
    def queue(values: list[float]) -> Side:
        return Side("v", [run(1, BASE, queue_length__q=values)])

    def judged(base: list[float], cand: list[float], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> MetricResult:
        floors = {("", "", "queue_length", "q"): 0.05}
        c = compare(queue(base), queue(cand), thresholds, Settings(replicates=100, floors=floors, floor_min_runs=1))
        return pick(c, "", "queue_length", "q")

    zero = judged([0.0] * 30, [0.0] * 30)
    assert (zero.change, zero.ci_low, zero.ci_high, zero.p_value) == (0, 0, 0, 1)
    assert (zero.verdict, zero.note, zero.noise_floor) == (UNCHANGED, "", 0.05)
    strict = judged([0.0] * 30, [0.0] * 30, Thresholds(queue_length=0.0))  # nothing is inside a zero band
    assert (strict.verdict, strict.note) == (INCONCLUSIVE, "zero on both sides")
    gone = judged([0.5] * 30, [0.0] * 30)
    assert (gone.change, gone.verdict, gone.note) == (-1.0, INCONCLUSIVE, "too many resamples without data")
    assert all(math.isnan(x) for x in (gone.ci_low, gone.ci_high, gone.p_value, gone.q_value))
    assert gone.noise_floor == 0.05
    new = judged([0.0] * 30, [0.5] * 30)
    assert math.isnan(new.change) and new.note == "too many resamples without data"
    short = judged([1.0] * 9, [1.0] * 30)
    assert (short.verdict, short.note) == (INCONCLUSIVE, "fewer than 10 readings on a side")
    assert math.isnan(short.ci_low) and short.change == 0.0
    ten = judged([1.0] * 10, [1.0] * 10)
    assert (ten.verdict, ten.note) == (UNCHANGED, "")


def test_resource_readings_are_resampled_in_blocks_as_long_as_they_are_correlated() -> None:
    wave = 50 + 10 * np.sin(np.arange(30) / 30 * 2 * np.pi)  # slow: neighbouring readings move together
    flat, slow = run(1, BASE, cpu_percent__api=[50.0] * 30), run(2, BASE, cpu_percent__api=list(wave))
    c = compare(Side("1", [flat]), Side("2", [slow]), settings=Settings(replicates=2000))
    iid = compare(Side("1", [flat]), Side("2", [slow]), settings=Settings(replicates=2000, block=1.0))
    width, iid_width = (pick(x, "", "cpu_percent", "api") for x in (c, iid))
    assert width.ci_high - width.ci_low > 1.5 * (iid_width.ci_high - iid_width.ci_low)


def test_an_endpoint_in_one_window_has_too_many_empty_resamples() -> None:
    def sparse(run_id: int) -> RunEvidence:
        rows = [(run_id, "/a", "GET", w, bucket_of(10), 40, 0, 400.0) for w in range(30)]
        rows.append((run_id, "/rare", "GET", 7, bucket_of(10), 25, 0, 250.0))
        return RunEvidence(run_id=run_id, latency=latency_series(rows, 1.0)[run_id])

    c = compare(Side("1", [sparse(1)]), Side("2", [sparse(2)]), settings=Settings(replicates=400))
    rare = pick(c, "/rare", "mean_ms")
    assert (rare.verdict, rare.note) == (INCONCLUSIVE, "too many resamples without data")
    assert pick(c, "/rare", "rps").note == "too many resamples without data"


def test_a_noise_floor_adds_normal_noise_scaled_by_the_runs_of_each_side() -> None:
    base = Side("1", [run(k, {"/a": (100, 0, 10)}) for k in (1, 2)])
    cand = Side("2", [run(k, {"/a": (100, 0, 12)}) for k in (3, 4, 5, 6)])
    floors = {("/a", "GET", "mean_ms", ""): 0.3, ("/a", "GET", "rps", ""): 0.001}
    c = compare(base, cand, settings=Settings(replicates=20_000, floors=floors, floor_min_runs=5))
    mean = pick(c, "/a", "mean_ms")
    sd = 0.3 * math.sqrt(1 / 2 + 1 / 4)
    assert math.log1p(mean.ci_high) - math.log1p(mean.ci_low) == pytest.approx(2 * norm.ppf(0.975) * sd, rel=0.02)
    assert (math.log1p(mean.ci_high) + math.log1p(mean.ci_low)) / 2 == pytest.approx(math.log(1.2), abs=0.02)
    assert mean.p_value == pytest.approx(2 * norm.sf(math.log(1.2) / sd), abs=0.01)
    assert (mean.noise_floor, mean.verdict) == (0.3, INCONCLUSIVE)
    assert mean.note == "noise floor 0.3 added: fewer than 5 runs on a side"
    rps = pick(c, "/a", "rps")  # a tiny floor: still unchanged, and the note stays
    assert (rps.verdict, rps.note, rps.noise_floor) == (
        UNCHANGED,
        "noise floor 0.001 added: fewer than 5 runs on a side",
        0.001,
    )
    assert pick(c, "/a", "p95_ms").noise_floor is None and pick(c, "/a", "p95_ms").note == ""
    tested = [r for r in c.results if not math.isnan(r.p_value)]
    assert [r.q_value for r in tested] == pytest.approx(list(false_discovery_control([r.p_value for r in tested])))
    narrow = compare(base, cand, settings=Settings(replicates=20_000, floors=floors, floor_min_runs=5, confidence=0.5))
    m = pick(narrow, "/a", "mean_ms")
    assert math.log1p(m.ci_high) - math.log1p(m.ci_low) == pytest.approx(2 * norm.ppf(0.75) * sd, rel=0.03)
    enough = compare(base, cand, settings=Settings(replicates=500, floors=floors, floor_min_runs=2))
    m = pick(enough, "/a", "mean_ms")  # two runs a side reach floor_min_runs: no noise added
    assert (m.ci_low, m.ci_high, m.note, m.noise_floor) == (pytest.approx(0.2), pytest.approx(0.2), "", 0.3)


def test_runs_are_resampled_when_a_side_has_several() -> None:
    def two(version: str) -> Side:
        return Side(
            version,
            [
                run(1, {"/a": (100, 0, 10)}, cpu_percent__api=[10.0] * 30),
                run(2, {"/a": (100, 0, 20)}, cpu_percent__api=[20.0] * 30),
            ],
        )

    c = compare(two("1"), two("2"), settings=Settings(replicates=300))
    for r in (pick(c, "/a", "mean_ms"), pick(c, "", "cpu_percent", "api")):
        assert r.change == pytest.approx(0.0) and r.ci_high - r.ci_low > 0.2 and r.ci_low < 0 < r.ci_high
        assert r.verdict == INCONCLUSIVE
        assert r.note.startswith("run-to-run spread unknown (fewer than 3 runs on a side, no calibration)")
    assert c.warnings[0].startswith("2 baseline and 2 candidate run(s) and no calibration")
    three = compare(two("1"), two("2"), settings=Settings(replicates=300, floor_min_runs=2))
    assert pick(three, "/a", "mean_ms").note == ""  # enough runs a side: the spread is estimated, no note


def test_warnings_name_thresholds_inside_the_noise_of_gating_metrics_only() -> None:
    floors = {
        ("/a", "GET", "p95_ms", ""): 0.08,  # 2·√2·0.08 = 0.23 > 0.2: inside the noise
        ("/a", "GET", "p99_ms", ""): 0.065,  # 0.18 < 0.2: fine
        ("/a", "GET", "p50_ms", ""): 0.5,  # not gating
        ("", "", "p95_ms", ""): 0.08,
        ("", "", "cpu_percent", "api"): 0.1,
        ("/b", "GET", "p95_ms", ""): 0.2 / (2 * math.sqrt(2)),  # exactly at the limit: not inside
    }
    base = Side("1", [run(k, BASE, cpu_percent__api=[5.0] * 30) for k in (1, 2, 3)])
    cand = Side("2", [run(k, BASE, cpu_percent__api=[5.0] * 30) for k in (4, 5, 6)])
    c = compare(base, cand, Thresholds(statistic=("p95", "p99")), Settings(replicates=100, floors=floors))
    assert c.warnings == (
        "threshold 0.2 of p95_ms (/a) is inside the run-to-run noise (floor 0.08): expect false alarms",
        "threshold 0.2 of p95_ms (all endpoints) is inside the run-to-run noise (floor 0.08): expect false alarms",
        "threshold 0.15 of cpu_percent (api) is inside the run-to-run noise (floor 0.1): expect false alarms",
    )
    assert compare(base, cand, settings=Settings(replicates=100)).warnings == ()
    one = compare(Side("1", base.runs[:1]), cand, settings=Settings(replicates=100, floors={("x", "", "rps", ""): 1.0}))
    assert one.warnings == ()  # a calibration, but of nothing compared here
