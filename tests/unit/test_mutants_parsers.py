"""Thresholds and SLO files at their edges (comments, exact messages, limits, matching), and the summary columns."""

from __future__ import annotations

import json

import pytest

from benchlab.metrics.store.stats import EndpointStats
from benchlab.runners.analysis.slo import (
    Criterion,
    Observed,
    Operation,
    SLOError,
    SLOSet,
    check,
    may_apply,
    parse_criterion,
    parse_slos,
)
from benchlab.runners.analysis.summary import Totals, load_seconds, run_columns
from benchlab.runners.analysis.threshold import ThresholdError, parse_thresholds, strip_comments

# -- thresholds: comments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "", "u": "http://x/*y*/"} // X marks the spot',
        '{"a": "q\\"//not a comment", "b": "\\\\"} /* X */',
        '{"a": "x"/* right after a string */, "b": "y"// and a line\n}',
        '{"a": 1 /**/, "b": [1, /***/ 2]}',
        '/* multi\nline X */ {"a": "//", "b": "/*"}\r\n// trailing',
    ],
)
def test_comments_go_and_strings_stay(text: str) -> None:
    stripped = strip_comments(text)
    assert len(stripped) == len(text) and [i for i, c in enumerate(text) if c in "\r\n"] == [
        i for i, c in enumerate(stripped) if c in "\r\n"
    ]
    want = {"a": "", "u": "http://x/*y*/"} if text.startswith('{"a": "",') else None
    parsed = json.loads(stripped)
    if want:
        assert parsed == want
    assert "X" not in stripped and "comment" not in stripped.replace("not a comment", "")


def test_strings_and_comments_exactly() -> None:
    assert json.loads(strip_comments('{"a": "q\\"//not a comment", "b": "\\\\"}')) == {
        "a": 'q"//not a comment',
        "b": "\\",
    }
    assert json.loads(strip_comments('{"a": "x"/* c */, "b": "y"// d\n}')) == {"a": "x", "b": "y"}
    assert strip_comments("1 /* open to the end X") == "1" + " " * 21
    assert strip_comments('{"a": "unterminated') == '{"a": "unterminated'


def test_unterminated_input_is_a_one_line_error() -> None:
    with pytest.raises(ThresholdError, match=r"^thresholds line 1: "):
        parse_thresholds('{"response_time": "abc')
    with pytest.raises(ThresholdError, match=r"^t.json line 2: "):
        parse_thresholds('{"response_time": 0.1,\n /* never closed', "t.json")


# -- thresholds: messages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "thresholds: expected a JSON object at the top level, got array"),
        ("null", "thresholds: expected a JSON object at the top level, got null"),
        ("true", "thresholds: expected a JSON object at the top level, got boolean"),
        ('"x"', "thresholds: expected a JSON object at the top level, got string"),
        ("1", "thresholds: expected a JSON object at the top level, got number"),
        ('{"endpoints": {"/a": {}}, "endpoints": {}}', 'thresholds: duplicate key "endpoints"'),
        ('{"endpoints": []}', 'thresholds: "endpoints" must be an object of name or pattern to overrides'),
        ('{"endpoints": {"/a": null}}', 'thresholds: endpoints["/a"]: expected an object of thresholds, got null'),
        (
            '{"endpoints": {"/a": {"x": 1}}}',
            'thresholds: endpoints["/a"]: unknown key "x" (known: response_time, '
            "error_rate, cpu_usage, memory_usage, queue_length, throughput, statistic)",
        ),
        ('{"endpoints": {"/a": 3}}', 'thresholds: endpoints["/a"]: expected an object of thresholds, got number'),
        ('{"endpoints": {"POST  ": {}}}', 'thresholds: endpoints["POST  "]: empty endpoint name'),
        (
            '{"endpoints": {"/a": {"statistic": "p42"}}}',
            'thresholds: endpoints["/a"]: "statistic" has unknown statistic "p42" (one of mean, p50, p95, p99, median)',
        ),
        (
            '{"statistic": []}',
            'thresholds: "statistic" must be a string or a non-empty list of strings '
            "(one of mean, p50, p95, p99, median)",
        ),
        ('{"error_rate": 2}', 'thresholds: "error_rate" (an absolute difference of rates) must be <= 1, got 2'),
        ('{"cpu_usage": -1}', 'thresholds: "cpu_usage" must be >= 0, got -1'),
        ('{"cpu_usage": true}', 'thresholds: "cpu_usage" must be a number >= 0, got true'),
        (
            '{"respons_time": 1}',
            'thresholds: unknown key "respons_time" (did you mean "response_time"? known: '
            "response_time, error_rate, cpu_usage, memory_usage, queue_length, throughput, statistic, endpoints)",
        ),
    ],
)
def test_threshold_messages(text: str, message: str) -> None:
    with pytest.raises(ThresholdError) as e:
        parse_thresholds(text)
    assert str(e.value) == message


def test_method_overrides_apply_after_any_method_ones_whatever_the_file_order() -> None:
    t = parse_thresholds('{"endpoints": {"POST /a": {"response_time": 0.5}, "/a": {"response_time": 0.3}}}')
    assert t.for_endpoint("/a", "POST").response_time == 0.5
    assert t.for_endpoint("/a", "GET").response_time == 0.3 and t.for_endpoint("/a").response_time == 0.3
    assert t.for_endpoint("/b").response_time == 0.2


# -- SLOs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "limit"),
    [
        ("p1 < 10", "p1", 10.0),
        ("p0.5<10", "p0.5", 10.0),
        ("p95 < 0.0015s", "p95", 1.5),
        ("p99.9 <= 2.5s", "p99.9", 2500.0),
        ("error_rate < 0.1%", "error_rate", 0.001),
        ("errors <= 100%", "error_rate", 1.0),
        ("rate < 1", "error_rate", 1.0),
    ],
)
def test_criteria_limits(text: str, metric: str, limit: float) -> None:
    c = parse_criterion(text)
    assert (c.metric, c.limit) == (metric, limit)
    assert type(c.limit) is float


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "error_rate < 5",
            'bad criterion "error_rate < 5": an error rate limit must be at most 1 (100%); write 5% for a percentage',
        ),
        ("error_rate < 150%", 'bad criterion "error_rate < 150%": an error rate limit must be at most 1 (100%)'),
        (
            "error_rate < 1s",
            'bad criterion "error_rate < 1s": an error rate limit is a fraction or a percentage, not s',
        ),
        ("errors < 1ms", 'bad criterion "errors < 1ms": an error rate limit is a fraction or a percentage, not ms'),
        ("p0 < 1", 'bad criterion "p0 < 1": a percentile must be above 0 and below 100 (use max for the largest)'),
        (
            "latency < 1",
            'bad criterion "latency < 1": unknown metric "latency" (known: p<N>, p(<N>), mean, avg, '
            "median, med, max, rps, throughput, error_rate, errors, rate, fail_ratio)",
        ),
        (
            "p95 = 1",
            'bad criterion "p95 = 1": expected METRIC OP LIMIT such as "p95 < 100ms", "rps > 50" or '
            '"error_rate < 0.1%" (OP one of <, <=, >, >=)',
        ),
    ],
)
def test_criterion_messages(text: str, message: str) -> None:
    with pytest.raises(SLOError) as e:
        parse_criterion(text)
    assert str(e.value) == message
    with pytest.raises(SLOError) as e:
        parse_criterion(text, "checkout")
    assert str(e.value) == f'operation "checkout": {message}'


def test_non_text_criteria_and_unknown_operators_are_slo_errors() -> None:
    with pytest.raises(SLOError, match=r"^bad criterion 5: expected METRIC OP LIMIT"):
        parse_criterion(5)  # type: ignore[arg-type]
    with pytest.raises(SLOError) as e:
        Criterion(metric="p95", op="==", limit=1.0, text="p95 == 1")
    assert str(e.value) == 'criterion "p95 == 1": unknown operator "=="'


def test_slo_file_messages_name_the_source() -> None:
    with pytest.raises(SLOError) as e:
        parse_slos('{"x": 1}')
    assert str(e.value).startswith('slo: operation "x": expected a list of criteria')
    with pytest.raises(SLOError) as e:
        parse_slos('{"x": ["p95 <"]}', "s.json")
    assert str(e.value).startswith('s.json: operation "x": bad criterion "p95 <"')


def _op(scope: str, *match: str) -> Operation:
    return Operation(name="op", match=match, scope=scope, criteria=(parse_criterion("rps > 1"),))


def test_matching_needs_the_name_it_is_scoped_to() -> None:
    anything = _op("endpoint", "*")
    assert not anything.matches() and not anything.matches(method="GET") and anything.matches(endpoint="/a")
    assert not _op("endpoint", "* /a").matches(endpoint="/a")
    assert _op("endpoint", "get /A").matches(endpoint="/a", method="GET")
    assert not _op("scenario", "*").matches() and _op("scenario", "*").matches(scenario="s")
    assert not may_apply(SLOSet(operations=(_op("scenario", "*"),))) and may_apply(
        SLOSet(operations=(_op("endpoint"),))
    )
    assert not _op("user_class", "*").matches(user_classes=["", ""]) and _op("user_class", "U*").matches(
        user_classes=["x", "user"]
    )


def test_check_leaves_scenario_operations_out_without_a_scenario_and_marks_missing_totals() -> None:
    slos = SLOSet(operations=(_op("scenario", "*"),))
    row = Observed(endpoint="/a", method="GET", requests=1, rps=2.0, error_rate=0.0, mean_ms=1.0, max_ms=1.0,
                   percentiles={})  # fmt: skip
    assert check(slos, [row]) == []
    (unknown,) = check(slos, [row], scenario="s")
    assert (unknown.endpoint, unknown.method, unknown.value, unknown.passed) == ("", "", None, None)
    one = check(
        SLOSet(
            operations=(
                Operation(name="e", match=("*",), scope="endpoint", criteria=(parse_criterion("errors < 1%"),)),
            )
        ),
        [row],
    )
    assert [(c.value, c.passed) for c in one] == [(0.0, True)]  # one request is enough to know the error rate


# -- summary columns ----------------------------------------------------------------------------------------------


def _stats(name: str, first: float, last: float) -> EndpointStats:
    return EndpointStats(name, name and "GET", 10, 1, 5.0, 4.0, 9.0, 12.0, 1.0, 20.0, 100, 0, first, last, {"200": 9})


TOTALS = Totals(run_id=1, status="completed", duration_s=8.0, total_requests=12, failures=2, stored_samples=10,
                spooled=3, replayed=2, pending=1)  # fmt: skip


def test_load_seconds_is_the_sample_span_or_the_duration() -> None:
    assert load_seconds([_stats("", 100.0, 100.5)], TOTALS) == 0.5
    assert load_seconds([_stats("/a", 100.0, 104.0)], TOTALS) == 8.0  # no total row
    assert load_seconds([_stats("", 100.0, 100.0)], TOTALS) == 8.0
    assert load_seconds([], TOTALS) == 8.0


def test_run_columns_exactly() -> None:
    assert run_columns([_stats("/a", 0, 1), _stats("", 100.0, 100.5)], TOTALS) == {
        "total_requests": 12,
        "total_failures": 2,
        "stored_samples": 10,
        "spooled_samples": 3,
        "replayed_samples": 2,
        "rps": 20.0,
        "error_rate": 0.1,
        "mean_ms": 5.0,
        "p50_ms": 4.0,
        "p95_ms": 9.0,
        "p99_ms": 12.0,
        "max_ms": 20.0,
    }
    assert run_columns([], TOTALS) == {
        "total_requests": 12,
        "total_failures": 2,
        "stored_samples": 10,
        "spooled_samples": 3,
        "replayed_samples": 2,
        "rps": 1.25,
    }
    assert run_columns([], Totals(**{**TOTALS.__dict__, "duration_s": 0.0}))["rps"] == 0.0
