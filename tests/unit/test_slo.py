"""Unit tests of benchlab.runners.analysis.slo: criterion syntax, the SLO file, defaults and check() (no services)."""

from __future__ import annotations

import pytest

from benchlab.runners.analysis.slo import (
    DEFAULT_SLOS,
    Check,
    Criterion,
    Observed,
    Operation,
    SLOError,
    SLOSet,
    check,
    parse_criterion,
    parse_slos,
)

EXAMPLE = """{
  // seed operations, with globs
  "health checks": {"match": ["*health*", "/api/v1/status"],
                    "criteria": ["p95 < 100ms", "rps > 50", "error_rate < 0.1%"]},
  "content generation": {"match": ["*generat*", "ContentGenerationUser"],  // k6 style below
                         "criteria": ["p(95)<5000", "rps > 5", "error_rate < 5%"]},
  "checkout": ["p95 < 300ms"]  /* matched by its own name */
}"""


def row(
    endpoint: str = "",
    method: str = "GET",
    *,
    requests: int = 1000,
    rps: float = 100.0,
    error_rate: float = 0.0,
    mean_ms: float = 20.0,
    max_ms: float = 400.0,
    percentiles: dict[float, float] | None = None,
) -> Observed:
    """An observed row with healthy defaults."""
    return Observed(
        endpoint=endpoint,
        method=method,
        requests=requests,
        rps=rps,
        error_rate=error_rate,
        mean_ms=mean_ms,
        max_ms=max_ms,
        percentiles={0.5: 15.0, 0.95: 80.0, 0.99: 120.0} if percentiles is None else percentiles,
    )


def slo_error(text: str, source: str = "slo.json") -> str:
    """The message parse_slos raises for `text`."""
    with pytest.raises(SLOError) as info:
        parse_slos(text, source)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- criteria ---------------------------------------------------------------------------------------------------


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


# --- the SLO file -----------------------------------------------------------------------------------------------


def test_parse_example_file() -> None:
    slos = parse_slos(EXAMPLE, "slo.json")
    assert [op.name for op in slos.operations] == ["health checks", "content generation", "checkout"]
    health, content, checkout = slos.operations
    assert health.match == ("*health*", "/api/v1/status")
    assert health.scope == "endpoint"
    assert [(c.metric, c.op, c.limit) for c in health.criteria] == [
        ("p95", "<", 100.0),
        ("rps", ">", 50.0),
        ("error_rate", "<", 0.001),
    ]
    assert content.match == ("*generat*", "ContentGenerationUser")
    assert [c.text for c in content.criteria] == ["p(95)<5000", "rps > 5", "error_rate < 5%"]
    assert content.criteria[0].limit == 5000.0
    assert checkout == Operation(
        name="checkout",
        match=("checkout",),
        scope="endpoint",
        criteria=(Criterion(metric="p95", op="<", limit=300.0, text="p95 < 300ms"),),
    )


def test_parse_scopes_and_single_strings() -> None:
    slos = parse_slos(
        '{"mixed": {"criteria": "p95 < 3s", "match": "*mixed*", "scope": "scenario"},'
        ' "users": {"criteria": ["rps > 1"], "match": ["Content*"], "scope": "user_class"}}'
    )
    mixed, users = slos.operations
    assert (mixed.scope, mixed.match, mixed.criteria[0].limit) == ("scenario", ("*mixed*",), 3000.0)
    assert (users.scope, users.match) == ("user_class", ("Content*",))


def test_parse_empty_file_has_no_operations() -> None:
    assert parse_slos("{} // nothing") == SLOSet(operations=())


def test_bad_criterion_in_file_names_source_operation_and_text() -> None:
    message = slo_error('{"checkout": ["p95 < 300ms", "p95 ~ 3"]}')
    assert message.startswith('slo.json: operation "checkout": bad criterion "p95 ~ 3": expected METRIC OP LIMIT')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"x": {"criteria": ["p95 < 1"], "matches": ["a"]}}',
            'slo.json: operation "x": unknown key "matches" (known: criteria, match, scope)',
        ),
        (
            '{"x": {"criteria": ["p95 < 1"], "a": 1, "b": 2}}',
            'slo.json: operation "x": unknown keys "a", "b" (known: criteria, match, scope)',
        ),
        ('{"x": {"match": ["a"]}}', 'slo.json: operation "x": missing "criteria"'),
        ('{"x": []}', 'slo.json: operation "x": "criteria" must be a non-empty list of non-empty strings'),
        ('{"x": [1]}', 'slo.json: operation "x": "criteria" must be a non-empty list of non-empty strings'),
        (
            '{"x": {"criteria": ["p95 < 1"], "match": []}}',
            'slo.json: operation "x": "match" must be a non-empty list of non-empty strings',
        ),
        (
            '{"x": {"criteria": ["p95 < 1"], "scope": "host"}}',
            'slo.json: operation "x": "scope" must be one of endpoint, user_class, scenario, got "host"',
        ),
        (
            '{"x": "p95 < 1"}',
            'slo.json: operation "x": expected a list of criteria or an object with "criteria", "match" and "scope"',
        ),
        ('{" ": ["p95 < 1"]}', "slo.json: empty operation name"),
        ("[]", "slo.json: expected a JSON object of operation name to criteria at the top level"),
        ('{"x": ["p95 < 1"], "x": ["p95 < 2"]}', 'slo.json: duplicate key "x"'),
    ],
)
def test_bad_file(text: str, expected: str) -> None:
    assert slo_error(text) == expected


def test_json_error_line_number_counts_comment_lines() -> None:
    text = '{\n  // one\n  /* two\n  three */\n  "x": ["p95 < 1"]\n  "y": ["p95 < 2"]\n}'
    assert slo_error(text) == "slo.json line 6: Expecting ',' delimiter"


def test_comment_markers_inside_match_strings_are_kept() -> None:
    slos = parse_slos('{"x": {"criteria": ["p95 < 1"], "match": ["http://h/*", "/*/v1"]}} // c')
    assert slos.operations[0].match == ("http://h/*", "/*/v1")


# --- matching ---------------------------------------------------------------------------------------------------


def test_operation_matches_endpoint_and_method_name_case_insensitively() -> None:
    op = Operation(name="o", match=("POST /api/*", "/health"), scope="endpoint", criteria=())
    assert op.matches(endpoint="/api/x", method="POST")
    assert op.matches(endpoint="/api/x", method="post")
    assert not op.matches(endpoint="/api/x", method="GET")
    assert op.matches(endpoint="/HEALTH", method="GET")
    assert not op.matches(endpoint="", method="POST")
    assert not op.matches(user_classes=["/health"], scenario="/health")


def test_operation_matches_user_class_and_scenario() -> None:
    users = Operation(name="u", match=("Content*",), scope="user_class", criteria=())
    assert users.matches(user_classes=["HealthUser", "contentgenerationuser"])
    assert not users.matches(user_classes=["HealthUser"])
    assert not users.matches(endpoint="Content", scenario="Content")
    scenario = Operation(name="s", match=("*mixed*",), scope="scenario", criteria=())
    assert scenario.matches(scenario="Mixed_Workload")
    assert not scenario.matches(scenario="")
    assert not scenario.matches(endpoint="/mixed", user_classes=["Mixed"])


def test_defaults_are_the_seed_table() -> None:
    table = {
        op.name: (op.scope, op.match, [(c.metric, c.op, c.limit) for c in op.criteria])
        for op in DEFAULT_SLOS.operations
    }
    assert table == {
        "health checks": (
            "scenario",
            ("*health*",),
            [("p95", "<", 100.0), ("rps", ">", 50.0), ("error_rate", "<", 0.001)],
        ),
        "content generation": (
            "scenario",
            ("*content*", "*generat*"),
            [("p95", "<", 5000.0), ("rps", ">", 5.0), ("error_rate", "<", 0.05)],
        ),
        "mixed workload": (
            "scenario",
            ("*mixed*",),
            [("p95", "<", 3000.0), ("rps", ">", 10.0), ("error_rate", "<", 0.02)],
        ),
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scenario": "locustfile:HealthCheckUser"}, ["health checks"]),
        ({"scenario": "health_checks"}, ["health checks"]),
        ({"scenario": "demo:content_generation_test"}, ["content generation"]),
        ({"scenario": "locustfile:ContentGenerationUser"}, ["content generation"]),
        ({"scenario": "mixed_workload"}, ["mixed workload"]),
        ({"scenario": "locustfile:MixedWorkloadUser"}, ["mixed workload"]),
        ({"scenario": "auth_session_test"}, []),
        ({"endpoint": "/health", "method": "GET"}, []),  # defaults judge a whole run, never one endpoint
        ({"endpoint": "/api/v1/generate/complex", "method": "POST"}, []),
    ],
)
def test_defaults_match_names(kwargs: dict[str, str], expected: list[str]) -> None:
    assert [op.name for op in DEFAULT_SLOS.operations if op.matches(**kwargs)] == expected


# --- check ------------------------------------------------------------------------------------------------------


def outcome(checks: list[Check]) -> list[tuple[str, str, str, float | None, bool | None]]:
    """(operation, endpoint, criterion text, value, passed) of each check."""
    return [(c.operation, c.endpoint, c.criterion.text, c.value, c.passed) for c in checks]


def test_check_pass_fail_and_unknown() -> None:
    slos = parse_slos(
        '{"api": {"match": ["/api/*"], "criteria": ["p95 < 100ms", "p(99.9) < 1s", "rps >= 20", "errors < 1%",'
        ' "mean <= 20", "max < 0.5s", "med < 15"]}}'
    )
    observed = [
        row("", rps=500.0),
        row("/api/a", rps=20.0, error_rate=0.02),
        row("/api/b", "POST", rps=10.0, percentiles={0.950: 100.0, 0.5000001: 10.0}, mean_ms=20.5, max_ms=600.0),
        row("/other"),
    ]
    assert outcome(check(slos, observed)) == [
        ("api", "/api/a", "p95 < 100ms", 80.0, True),
        ("api", "/api/a", "p(99.9) < 1s", None, None),
        ("api", "/api/a", "rps >= 20", 20.0, True),
        ("api", "/api/a", "errors < 1%", 0.02, False),
        ("api", "/api/a", "mean <= 20", 20.0, True),
        ("api", "/api/a", "max < 0.5s", 400.0, True),
        ("api", "/api/a", "med < 15", 15.0, False),
        ("api", "/api/b", "p95 < 100ms", 100.0, False),
        ("api", "/api/b", "p(99.9) < 1s", None, None),
        ("api", "/api/b", "rps >= 20", 10.0, False),
        ("api", "/api/b", "errors < 1%", 0.0, True),
        ("api", "/api/b", "mean <= 20", 20.5, False),
        ("api", "/api/b", "max < 0.5s", 600.0, False),
        ("api", "/api/b", "med < 15", 10.0, True),
    ]
    checks = check(slos, observed)
    assert (checks[7].method, checks[0].method) == ("POST", "GET")
    assert checks[0].criterion == slos.operations[0].criteria[0]


def test_check_endpoint_scope_never_matches_the_total_row() -> None:
    slos = parse_slos('{"all": {"match": ["*"], "criteria": ["rps > 1"]}}')
    assert outcome(check(slos, [row(""), row("/x", rps=0.5)])) == [("all", "/x", "rps > 1", 0.5, False)]


def test_check_method_name_match() -> None:
    slos = parse_slos('{"writes": {"match": ["POST *"], "criteria": ["p95 < 90"]}}')
    observed = [row("/a", "GET"), row("/a", "POST"), row("/b", "POST", percentiles={0.95: 95.0})]
    assert [(c.endpoint, c.method, c.passed) for c in check(slos, observed)] == [
        ("/a", "POST", True),
        ("/b", "POST", False),
    ]


def test_check_scenario_and_user_class_use_the_total_row() -> None:
    slos = parse_slos(
        '{"mixed": {"match": ["*mixed*"], "scope": "scenario", "criteria": ["rps > 10"]},'
        ' "gen": {"match": ["ContentGenerationUser"], "scope": "user_class", "criteria": ["errors < 2%"]}}'
    )
    observed = [row("/api/mixed", rps=1.0), row("", rps=12.0, error_rate=0.03)]
    assert outcome(check(slos, observed, scenario="mixed_workload", user_classes=["ContentGenerationUser"])) == [
        ("mixed", "", "rps > 10", 12.0, True),
        ("gen", "", "errors < 2%", 0.03, False),
    ]
    assert check(slos, observed, scenario="baseline", user_classes=["HealthUser"]) == []


def test_check_scenario_without_a_total_row_is_unknown() -> None:
    slos = parse_slos('{"mixed": {"match": ["*mixed*"], "scope": "scenario", "criteria": ["rps > 10"]}}')
    assert outcome(check(slos, [row("/x")], scenario="mixed")) == [("mixed", "", "rps > 10", None, None)]


def test_check_without_requests_knows_only_rps() -> None:
    slos = parse_slos('{"x": ["p95 < 100", "rps > 1", "error_rate < 1%", "mean < 10", "max < 10"]}')
    observed = [row("x", requests=0, rps=0.0, mean_ms=0.0, max_ms=0.0, percentiles={})]
    assert [(c.value, c.passed) for c in check(slos, observed)] == [
        (None, None),
        (0.0, False),
        (None, None),
        (None, None),
        (None, None),
    ]


def test_check_nan_value_is_unknown() -> None:
    slos = parse_slos('{"x": ["mean < 100"]}')
    assert [(c.value, c.passed) for c in check(slos, [row("x", mean_ms=float("nan"))])] == [(None, None)]


def test_check_defaults_on_a_seed_like_run() -> None:
    observed = [
        row("", rps=140.0, error_rate=0.004, percentiles={0.95: 2500.0}),
        row("/health", rps=60.0, percentiles={0.95: 40.0}),
        row("/api/v1/status", rps=40.0, error_rate=0.002, percentiles={0.95: 30.0}),
        row("/api/v1/generate/complex", "POST", rps=6.0, error_rate=0.01, percentiles={0.95: 5000.0}),
        row("/api/v1/users", rps=34.0),
    ]
    checks = check(DEFAULT_SLOS, observed, scenario="mixed_workload")
    assert [(c.operation, c.endpoint, c.criterion.metric, c.passed) for c in checks] == [
        ("mixed workload", "", "p95", True),
        ("mixed workload", "", "rps", True),
        ("mixed workload", "", "error_rate", True),
    ]


def test_check_of_empty_inputs() -> None:
    assert check(DEFAULT_SLOS, []) == []
    assert check(SLOSet(operations=()), [row("/health")]) == []
    health = check(DEFAULT_SLOS, [row("", rps=40.0, error_rate=0.002, percentiles={0.95: 30.0})], scenario="health")
    assert [(c.criterion.metric, c.passed) for c in health] == [("p95", True), ("rps", False), ("error_rate", False)]
