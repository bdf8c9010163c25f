"""The gate, its failure lines, noise floors and result records at their edges (killing mutants, no services)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from benchlab.runners.analysis.compare import Comparison, MetricResult
from benchlab.runners.analysis.evidence import RunEvidence
from benchlab.runners.analysis.gate import GateResult, describe, evaluate
from benchlab.runners.analysis.noise import Floor, floors
from benchlab.runners.analysis.series import LatencySeries
from benchlab.runners.analysis.slo import Check, parse_criterion
from benchlab.runners.analysis.verdict import (
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    UNCHANGED,
    Rule,
    decide,
    overall,
)


def result(**kw: Any) -> MetricResult:
    fields: dict[str, Any] = {
        "endpoint": "/a",
        "method": "GET",
        "metric": "p95_ms",
        "subject": "",
        "baseline": 100.0,
        "candidate": 130.0,
        "change": 0.3,
        "change_kind": "relative",
        "ci_low": 0.25,
        "ci_high": 0.35,
        "threshold": 0.2,
        "noise_floor": None,
        "p_value": 0.001,
        "q_value": 0.002,
        "verdict": REGRESSION,
        "gating": True,
    }
    return MetricResult(**(fields | kw))


def comparison(*results: MetricResult) -> Comparison:
    return Comparison(results=results, overall=overall([r.verdict for r in results]), method={}, warnings=())


def slo_check(passed: bool | None, endpoint: str = "", value: float | None = 123.456) -> Check:
    criterion = parse_criterion("p95 < 100ms", "checkout")
    return Check(operation="checkout", endpoint=endpoint, method="", criterion=criterion, value=value, passed=passed)


# -- gate ---------------------------------------------------------------------------------------------------------


def test_describe_relative_change_names_endpoint_numbers_and_threshold() -> None:
    line = describe(result())
    assert line == "regression: p95_ms of GET /a: 100 -> 130 (+30.0% [+25.0%, +35.0%], threshold 20%)"


def test_describe_absolute_change_of_a_subject_and_of_all_endpoints() -> None:
    line = describe(
        result(
            metric="error_rate",
            change_kind="absolute",
            baseline=0.01,
            candidate=0.03,
            change=0.02,
            ci_low=0.015,
            ci_high=0.025,
            threshold=0.01,
        )
    )
    assert line == "regression: error_rate of GET /a: 0.01 -> 0.03 (+0.0200 [+0.0150, +0.0250], threshold 0.01)"
    assert " of api: " in describe(result(subject="api", endpoint="", method=""))
    assert " of all endpoints: " in describe(result(endpoint="", method=""))
    assert " of /a: " in describe(result(method=""))


def test_gate_fails_on_gating_regressions_only() -> None:
    ok = evaluate(comparison(result(verdict=UNCHANGED), result(verdict=IMPROVEMENT)), [])
    assert ok == GateResult(failures=()) and not ok.failed
    bad = evaluate(comparison(result(), result(metric="p50_ms", gating=False), result(verdict=INCONCLUSIVE)), [])
    assert bad.failed and bad.failures == (describe(result()),)


def test_gate_fails_on_inconclusive_only_when_asked() -> None:
    maybe = comparison(result(verdict=INCONCLUSIVE), result(verdict=INCONCLUSIVE, gating=False))
    assert not evaluate(maybe, [], fail_on_inconclusive=False).failed
    asked = evaluate(maybe, [], fail_on_inconclusive=True)
    assert asked.failures == (describe(result(verdict=INCONCLUSIVE)),)
    assert not evaluate(comparison(result(verdict=UNCHANGED)), [], fail_on_inconclusive=True).failed


def test_gate_fails_on_slo_breaches_not_on_unknown_checks() -> None:
    gate = evaluate(None, [slo_check(True), slo_check(None, value=None), slo_check(False), slo_check(False, "/x")])
    assert gate.failures == (
        "SLO breach: checkout: p95 < 100ms on all endpoints (measured 123.5)",
        "SLO breach: checkout: p95 < 100ms on /x (measured 123.5)",
    )
    assert evaluate(comparison(result()), [slo_check(False)]).failures[0].startswith("regression: ")
    assert not evaluate(None, []).failed


# -- verdict rules: the comparisons at their exact edges ----------------------------------------------------------


def test_regression_and_improvement_need_the_interval_strictly_off_zero() -> None:
    rule = Rule(threshold=0.1, higher_is_worse=True)
    assert decide(0.3, 0.0, 0.5, 0.001, rule) == INCONCLUSIVE
    assert decide(-0.3, -0.5, 0.0, 0.001, rule) == INCONCLUSIVE
    assert decide(-0.3, -0.5, -0.01, 0.001, rule) == IMPROVEMENT
    assert decide(-0.1, -0.5, -0.01, 0.001, rule) == INCONCLUSIVE  # exactly at -threshold is not beyond it
    assert decide(-0.3, -0.5, -0.01, 0.05, rule) == INCONCLUSIVE  # q == alpha is not significant
    assert decide(-0.3, -0.5, -0.01, 0.04, Rule(threshold=0.1, higher_is_worse=True, alpha=0.03)) == INCONCLUSIVE
    assert decide(0.05, -0.1, 0.05, 0.5, rule) == INCONCLUSIVE  # low exactly at -threshold is outside the band


def test_decide_orders_a_reversed_interval_and_rejects_infinities() -> None:
    rule = Rule(threshold=0.1, higher_is_worse=False)
    assert decide(-0.3, -0.5, -0.2, 0.001, rule) == REGRESSION
    assert decide(-0.3, -0.2, -0.5, 0.001, rule) == REGRESSION
    assert decide(0.3, 0.2, 0.5, 0.001, rule) == IMPROVEMENT
    latency = Rule(threshold=0.1, higher_is_worse=True)
    for bad in ((math.inf, 0.2, 0.5), (0.3, -math.inf, 0.5), (0.3, 0.2, math.nan)):
        assert decide(*bad, 0.001, latency) == INCONCLUSIVE
    assert decide(0.0, -0.05, 0.05, 1.0, latency) == UNCHANGED
    assert decide(0.0, -0.05, 0.05, 1.0, latency, enough=True) == UNCHANGED
    assert Rule(threshold=0.1, higher_is_worse=True).alpha == 0.05


def test_overall_of_one_word() -> None:
    assert overall([IMPROVEMENT]) == IMPROVEMENT
    assert overall([INCONCLUSIVE, IMPROVEMENT]) == INCONCLUSIVE
    assert overall([UNCHANGED, UNCHANGED]) == UNCHANGED


# -- noise floors -------------------------------------------------------------------------------------------------


def test_floors_are_the_sd_of_log_values_and_of_error_rates() -> None:
    runs = [
        {("/a", "GET"): {"p95_ms": 100.0, "error_rate": 0.01, "rps": 50.0}, ("/b", "GET"): {"p95_ms": 10.0}},
        {("/a", "GET"): {"p95_ms": 110.0, "error_rate": 0.03, "rps": 55.0}, ("/b", "GET"): {"p95_ms": 12.0}},
        {("/a", "GET"): {"p95_ms": 90.0, "error_rate": 0.02}},
    ]
    got = {(f.endpoint, f.metric): f for f in floors(runs)}
    assert sorted(got) == [("/a", "error_rate"), ("/a", "p95_ms")]  # only what every run has
    p95 = got[("/a", "p95_ms")]
    assert p95.spread == pytest.approx(np.std(np.log([100, 110, 90]), ddof=1), rel=1e-12)
    assert p95.mean_value == pytest.approx(100.0) and p95.runs == 3 and p95.method == "GET"
    assert p95.change_kind == "relative"
    err = got[("/a", "error_rate")]
    assert err.spread == pytest.approx(0.01, rel=1e-9) and err.change_kind == "absolute"


def test_floors_skip_non_finite_and_non_positive_values_and_need_two_runs() -> None:
    runs = [
        {("/a", "GET"): {"p95_ms": 0.0, "mean_ms": math.nan, "p50_ms": 5.0, "error_rate": 0.0}},
        {("/a", "GET"): {"p95_ms": 2.0, "mean_ms": 3.0, "p50_ms": 5.0, "error_rate": 0.0}},
    ]
    got = {f.metric: f for f in floors(runs)}
    assert sorted(got) == ["error_rate", "p50_ms"]
    assert got["p50_ms"].spread == 0.0 and got["error_rate"].spread == 0.0
    with pytest.raises(ValueError, match="at least 2 runs, got 1"):
        floors(runs[:1])
    assert floors([{}, {}]) == []


def test_floors_need_every_run_to_have_the_endpoint_and_the_metric() -> None:
    a = [
        {"rps": 1.0, "a_ms": 0.0, "p50_ms": 2.0, "max_ms": 1.0},
        {"rps": 2.0, "a_ms": 1.0, "p50_ms": 3.0, "p99_ms": 1.0},
        {"rps": 3.0, "a_ms": 1.0, "p50_ms": 4.0, "p99_ms": 2.0, "max_ms": 2.0},
        {"rps": 4.0, "a_ms": 1.0, "p50_ms": 5.0, "p99_ms": 3.0, "max_ms": 3.0},
    ]
    runs: list[dict[tuple[str, str], dict[str, float]]] = [{("/a", "GET"): m} for m in a]
    for k in (1, 2, 3):  # /new: not in the first run
        runs[k][("/new", "GET")] = {"rps": 1.0}
    for k in (0, 2, 3):  # /x: not in the second
        runs[k][("/x", "GET")] = {"rps": 1.0}
    got = [(f.endpoint, f.metric, f.runs) for f in floors(runs)]
    assert got == [("/a", "p50_ms", 4), ("/a", "rps", 4)]  # a_ms has a zero; max_ms, p99_ms, /new, /x miss a run


def test_floors_keep_sorted_endpoint_and_metric_order() -> None:
    one = {("/b", "GET"): {"rps": 1.0, "mean_ms": 2.0}, ("/a", "POST"): {"rps": 1.0}}
    two = {("/b", "GET"): {"rps": 2.0, "mean_ms": 3.0}, ("/a", "POST"): {"rps": 3.0}}
    got = [(f.endpoint, f.method, f.metric) for f in floors([one, two])]
    assert got == [("/a", "POST", "rps"), ("/b", "GET", "mean_ms"), ("/b", "GET", "rps")]
    assert isinstance(floors([one, two])[0], Floor)


# -- result records -----------------------------------------------------------------------------------------------


def test_as_dict_turns_non_finite_floats_into_none_and_keeps_the_rest() -> None:
    d = result(change=math.nan, ci_low=-math.inf, noise_floor=0.05, note="x").as_dict()
    assert d["change"] is None and d["ci_low"] is None
    assert d["ci_high"] == 0.35 and d["noise_floor"] == 0.05 and d["gating"] is True and d["note"] == "x"
    assert d["endpoint"] == "/a" and len(d) == 17


def test_run_evidence_windows_are_those_of_the_total_series() -> None:
    series = LatencySeries(
        counts=np.ones(7),
        failures=np.zeros(7),
        sum_ms=np.ones(7),
        hist=np.ones((7, 1)),
        buckets=np.array([100]),
        window_s=1.0,
    )
    assert RunEvidence(run_id=1, latency={("", ""): series, ("/a", "GET"): series}).windows == 7
    assert RunEvidence(run_id=1, latency={("/a", "GET"): series}).windows == 0
