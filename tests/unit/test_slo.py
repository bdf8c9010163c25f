"""Unit tests of benchlab.runners.analysis.slo's criterion syntax: metrics, operators, units, limits (no services)."""

from __future__ import annotations

import pytest

from benchlab.runners.analysis.slo import Criterion, SLOError, parse_criterion


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("p95 < 100ms", "p95", "<", 100.0),
        ("p99 <= 2s", "p99", "<=", 2000.0),
        ("p50 < 250", "p50", "<", 250.0),
        ("mean < 80ms", "mean", "<", 80.0),
        ("median < 50ms", "p50", "<", 50.0),
        ("max < 10s", "max", "<", 10000.0),
        ("p95<100ms", "p95", "<", 100.0),
        ("  P95  <  1.5 S  ", "p95", "<", 1500.0),
        ("p95 < 100 ms", "p95", "<", 100.0),
        ("p(95)<100", "p95", "<", 100.0),
        ("p(99.9) < 1500", "p99.9", "<", 1500.0),
        ("p99.9 < 1500", "p99.9", "<", 1500.0),
        ("p( 90 ) < 70", "p90", "<", 70.0),
        ("avg<200", "mean", "<", 200.0),
        ("med<100", "p50", "<", 100.0),
        ("MEAN < .5s", "mean", "<", 500.0),
        ("rps > 50", "rps", ">", 50.0),
        ("rps >= 5", "rps", ">=", 5.0),
        ("throughput > 10", "rps", ">", 10.0),
        ("RPS>0.5", "rps", ">", 0.5),
        ("error_rate < 0.1%", "error_rate", "<", 0.001),
        ("error_rate < 0.001", "error_rate", "<", 0.001),
        ("errors < 1%", "error_rate", "<", 0.01),
        ("rate<0.01", "error_rate", "<", 0.01),
        ("Error_Rate <= 100%", "error_rate", "<=", 1.0),
        ("fail_ratio < 0.05", "error_rate", "<", 0.05),
        ("p95 < 0.1s", "p95", "<", 100.0),
        ("p95 < 0.3s", "p95", "<", 300.0),
        ("errors < 0.7%", "error_rate", "<", 0.007),
        ("errors < 0.3%", "error_rate", "<", 0.003),
    ],
)
def test_parse_criterion(text: str, metric: str, op: str, limit: float) -> None:
    c = parse_criterion(text, "op")
    assert (c.metric, c.op, c.limit) == (metric, op, limit)
    assert c.text == text.strip()


@pytest.mark.parametrize(
    ("text", "quantile"),
    [
        ("p95 < 1", 0.95),
        ("p(99.9) < 1", 0.999),
        ("p50 < 1", 0.5),
        ("median < 1", 0.5),
        ("p99.99 < 1", 0.9999),
        ("mean < 1", None),
        ("max < 1", None),
        ("rps > 1", None),
        ("rate < 0.1", None),
    ],
)
def test_quantile(text: str, quantile: float | None) -> None:
    assert parse_criterion(text).quantile == quantile


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("p95 = 100", "expected METRIC OP LIMIT"),
        ("p95 == 100", "expected METRIC OP LIMIT"),
        ("p95 << 100", "expected METRIC OP LIMIT"),
        ("p95 != 100", "expected METRIC OP LIMIT"),
        ("p95 <", "expected METRIC OP LIMIT"),
        ("p95 < -1", "expected METRIC OP LIMIT"),
        ("p95 < 100 minutes", "expected METRIC OP LIMIT"),
        ("", "expected METRIC OP LIMIT"),
        ("p95", "expected METRIC OP LIMIT"),
        ("p(95 < 3", "expected METRIC OP LIMIT"),
        ("latency < 100", 'unknown metric "latency"'),
        ("p < 100", 'unknown metric "p"'),
        ("p100 < 100", "a percentile must be above 0 and below 100"),
        ("p0 < 100", "a percentile must be above 0 and below 100"),
        ("p9.9.9 < 100", 'bad percentile "9.9.9"'),
        ("p95 < 5%", "a latency limit takes ms or s, not %"),
        ("rps > 5ms", "a requests-per-second limit takes no unit, got ms"),
        ("rps > 5%", "a requests-per-second limit takes no unit, got %"),
        ("error_rate < 5ms", "an error rate limit is a fraction or a percentage, not ms"),
        ("error_rate < 5", "an error rate limit must be at most 1 (100%); write 5% for a percentage"),
        ("error_rate < 150%", "an error rate limit must be at most 1 (100%)"),
    ],
)
def test_bad_criterion_names_text_and_operation(text: str, reason: str) -> None:
    with pytest.raises(SLOError) as info:
        parse_criterion(text, "health checks")
    message = str(info.value)
    assert message.startswith(f'operation "health checks": bad criterion "{text}": {reason}')
    assert "\n" not in message


def test_bad_criterion_without_operation() -> None:
    with pytest.raises(SLOError, match=r'^bad criterion "p95 = 1": '):
        parse_criterion("p95 = 1")


def test_slo_error_is_a_value_error() -> None:
    assert issubclass(SLOError, ValueError)


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("p95 < 100", 99.9, True),
        ("p95 < 100", 100.0, False),
        ("p95 <= 100", 100.0, True),
        ("p95 <= 100", 100.1, False),
        ("rps > 50", 50.0, False),
        ("rps >= 50", 50.0, True),
        ("rps > 50", 50.1, True),
        ("rps >= 50", 49.9, False),
        ("error_rate < 0.1%", 0.001, False),
        ("error_rate <= 0.1%", 0.001, True),
        ("p95 < 100", float("nan"), False),
        ("p95 < 100", float("inf"), False),
    ],
)
def test_holds_at_and_around_the_limit(text: str, value: float, holds: bool) -> None:
    assert parse_criterion(text).holds(value) is holds


def test_criterion_rejects_unknown_operator() -> None:
    with pytest.raises(SLOError):
        Criterion(metric="p95", op="==", limit=1.0, text="p95 == 1")
