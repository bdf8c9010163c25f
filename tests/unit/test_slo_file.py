"""Unit tests of benchlab.runners.analysis.slo's SLO file: parsing, errors, operation matching and the seed defaults."""

from __future__ import annotations

import pytest

from benchlab.runners.analysis.slo import DEFAULT_SLOS, Criterion, Operation, SLOError, SLOSet, parse_slos

EXAMPLE = """{
  // seed operations, with globs
  "health checks": {"match": ["*health*", "/api/v1/status"],
                    "criteria": ["p95 < 100ms", "rps > 50", "error_rate < 0.1%"]},
  "content generation": {"match": ["*generat*", "ContentGenerationUser"],  // k6 style below
                         "criteria": ["p(95)<5000", "rps > 5", "error_rate < 5%"]},
  "checkout": ["p95 < 300ms"]  /* matched by its own name */
}"""


def slo_error(text: str, source: str = "slo.json") -> str:
    """The message parse_slos raises for `text`."""
    with pytest.raises(SLOError) as info:
        parse_slos(text, source)
    message = str(info.value)
    assert "\n" not in message
    return message


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
