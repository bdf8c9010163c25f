"""The verdict rules at their edges."""

from __future__ import annotations

import pytest

from benchlab.runners.analysis.verdict import (
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    UNCHANGED,
    Rule,
    decide,
    overall,
)

LATENCY = Rule(threshold=0.2, higher_is_worse=True)
THROUGHPUT = Rule(threshold=0.2, higher_is_worse=False)


@pytest.mark.parametrize(
    ("change", "low", "high", "q", "expected"),
    [
        (0.30, 0.10, 0.50, 0.01, REGRESSION),
        (0.30, 0.10, 0.50, 0.05, INCONCLUSIVE),  # not significant after adjustment (q == alpha)
        (0.30, -0.01, 0.50, 0.01, INCONCLUSIVE),  # interval includes no change
        (0.20, 0.10, 0.30, 0.01, INCONCLUSIVE),  # exactly at the threshold is not beyond it; CI crosses it
        (0.201, 0.001, 0.30, 0.01, REGRESSION),
        (0.05, -0.10, 0.19, 0.50, UNCHANGED),  # the whole interval inside the band
        (0.05, -0.10, 0.20, 0.50, INCONCLUSIVE),  # interval touches the threshold
        (0.15, 0.10, 0.19, 0.001, UNCHANGED),  # real but tolerated
        (0.15, 0.10, 0.25, 0.001, INCONCLUSIVE),  # may exceed the threshold
        (-0.30, -0.50, -0.10, 0.01, IMPROVEMENT),
        (-0.30, -0.50, 0.01, 0.01, INCONCLUSIVE),
        (0.0, -0.5, 0.5, 1.0, INCONCLUSIVE),  # too wide to decide: never silently unchanged
    ],
)
def test_latency_rules(change: float, low: float, high: float, q: float, expected: str) -> None:
    assert decide(change, low, high, q, LATENCY) == expected


def test_direction_of_throughput_is_reversed() -> None:
    assert decide(-0.30, -0.50, -0.10, 0.01, THROUGHPUT) == REGRESSION
    assert decide(0.30, 0.10, 0.50, 0.01, THROUGHPUT) == IMPROVEMENT
    assert decide(-0.05, -0.1, 0.1, 0.8, THROUGHPUT) == UNCHANGED


def test_not_enough_data_or_nan_is_inconclusive() -> None:
    assert decide(0.5, 0.4, 0.6, 0.001, LATENCY, enough=False) == INCONCLUSIVE
    assert decide(float("nan"), 0.1, 0.2, 0.001, LATENCY) == INCONCLUSIVE


def test_absolute_threshold_on_error_rate() -> None:
    rule = Rule(threshold=0.01, higher_is_worse=True)
    assert decide(0.02, 0.012, 0.03, 0.001, rule) == REGRESSION
    assert decide(0.002, -0.003, 0.008, 0.4, rule) == UNCHANGED


def test_overall_orders_regression_first() -> None:
    assert overall([UNCHANGED, IMPROVEMENT, INCONCLUSIVE, REGRESSION]) == REGRESSION
    assert overall([UNCHANGED, IMPROVEMENT, INCONCLUSIVE]) == INCONCLUSIVE
    assert overall([UNCHANGED, IMPROVEMENT]) == IMPROVEMENT
    assert overall([]) == UNCHANGED


@pytest.mark.parametrize(
    ("change", "low", "high", "rule", "expected"),
    [
        (0.30, 0.10, 0.50, LATENCY, INCONCLUSIVE),  # beyond zero, not beyond the threshold: no claim
        (0.30, 0.20, 0.50, LATENCY, INCONCLUSIVE),  # at the threshold is not beyond it
        (0.30, 0.201, 0.50, LATENCY, REGRESSION),
        (-0.30, -0.50, -0.10, LATENCY, INCONCLUSIVE),
        (-0.30, -0.50, -0.201, LATENCY, IMPROVEMENT),
        (-0.30, -0.50, -0.201, THROUGHPUT, REGRESSION),
        (0.30, 0.201, 0.50, THROUGHPUT, IMPROVEMENT),
        (0.05, -0.10, 0.19, LATENCY, UNCHANGED),  # the band rule is unchanged by the margin
    ],
)
def test_unknown_run_to_run_spread_needs_the_whole_interval_beyond_the_threshold(
    change: float, low: float, high: float, rule: Rule, expected: str
) -> None:
    assert decide(change, low, high, 0.001, rule, margin=True) == expected
    if expected != UNCHANGED:
        assert decide(change, low, high, 0.001, rule) in (REGRESSION, IMPROVEMENT)  # zero suffices with a known spread
