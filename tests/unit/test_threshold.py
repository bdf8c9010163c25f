"""Unit tests of benchlab.runners.analysis.threshold: comments, schema, errors, per-endpoint overrides (no services)."""

from __future__ import annotations

import json

import pytest

from benchlab.runners.analysis.threshold import (
    DEFAULT_THRESHOLDS,
    KEYS,
    EndpointThresholds,
    ThresholdError,
    Thresholds,
    parse_thresholds,
    strip_comments,
)

SEED = """{
  "response_time": 0.2,  // 20% regression allowed
  "error_rate": 0.01,    // 1% absolute increase allowed
  "cpu_usage": 0.15,     // 15% increase allowed
  "memory_usage": 0.15,  // 15% increase allowed
  "queue_length": 0.25   // 25% increase allowed
}
"""


def error_of(text: str, source: str = "thresholds.json") -> str:
    """The message parse_thresholds raises for `text`."""
    with pytest.raises(ThresholdError) as info:
        parse_thresholds(text, source)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defaults and the seed file ---------------------------------------------------------------------------------


def test_defaults() -> None:
    assert KEYS == ("response_time", "error_rate", "cpu_usage", "memory_usage", "queue_length", "throughput")
    assert Thresholds() == DEFAULT_THRESHOLDS
    t = DEFAULT_THRESHOLDS
    assert (t.response_time, t.error_rate, t.cpu_usage, t.memory_usage, t.queue_length, t.throughput) == (
        0.2,
        0.01,
        0.15,
        0.15,
        0.25,
        0.2,
    )
    assert t.statistic == ("p95",)
    assert t.endpoints == ()


def test_seed_file_parses_to_the_exact_defaults() -> None:
    assert parse_thresholds(SEED, "thresholds.json") == DEFAULT_THRESHOLDS


def test_empty_object_keeps_defaults_and_omitted_keys_keep_theirs() -> None:
    assert parse_thresholds("{}") == DEFAULT_THRESHOLDS
    t = parse_thresholds('{"cpu_usage": 0.5, "throughput": 0}')
    assert t.cpu_usage == 0.5
    assert t.throughput == 0.0
    assert t.response_time == 0.2
    assert t.error_rate == 0.01
    assert t.statistic == ("p95",)


def test_integers_become_floats() -> None:
    t = parse_thresholds('{"response_time": 1, "error_rate": 0}')
    assert t.response_time == 1.0 and isinstance(t.response_time, float)
    assert t.error_rate == 0.0 and isinstance(t.error_rate, float)


# --- comments ---------------------------------------------------------------------------------------------------


def test_strip_comments_line_and_block() -> None:
    text = '{"a": 1, // tail\n// whole line\n"b": /* inline */ 2 /* multi\nline */}'
    stripped = strip_comments(text)
    assert len(stripped) == len(text)
    assert stripped.count("\n") == text.count("\n")
    assert [i for i, c in enumerate(stripped) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]
    assert "tail" not in stripped and "whole" not in stripped and "inline" not in stripped and "multi" not in stripped
    assert json.loads(stripped) == {"a": 1, "b": 2}


def test_strip_comments_keeps_slashes_inside_strings() -> None:
    text = '{"url": "http://x/y", "glob": "/*api*/", "q": "a \\" // b"} // gone'
    stripped = strip_comments(text)
    assert json.loads(stripped) == {"url": "http://x/y", "glob": "/*api*/", "q": 'a " // b'}
    assert stripped.rstrip() == '{"url": "http://x/y", "glob": "/*api*/", "q": "a \\" // b"}'


def test_strip_comments_keeps_escaped_backslash_before_quote() -> None:
    text = '{"path": "C:\\\\"} // c'
    assert json.loads(strip_comments(text)) == {"path": "C:\\"}


def test_strip_comments_lone_slash_and_unterminated_block() -> None:
    assert strip_comments("1 / 2") == "1 / 2"
    assert strip_comments("1 /* open\nend") == "1        \n   "


def test_strip_comments_crlf() -> None:
    assert strip_comments('{"a": 1} // c\r\n') == '{"a": 1}     \r\n'


def test_comment_markers_inside_endpoint_names_are_names() -> None:
    t = parse_thresholds('{"endpoints": {"http://host/api/*": {"cpu_usage": 1}}} // comment')
    assert t.endpoints[0].pattern == "http://host/api/*"
    assert t.for_endpoint("http://host/api/x").cpu_usage == 1.0


def test_block_comments_in_file() -> None:
    t = parse_thresholds('/* header\n spanning lines */ {"cpu_usage": /* half */ 0.5}')
    assert t.cpu_usage == 0.5


# --- JSON errors ------------------------------------------------------------------------------------------------


def test_json_error_names_the_original_line_after_comments() -> None:
    text = '{\n  // comment line\n  "response_time": 0.3  // tail\n  /* block\n  */\n  "cpu_usage": 0.2\n}\n'
    assert error_of(text) == "thresholds.json line 6: Expecting ',' delimiter"


def test_json_error_line_of_missing_value() -> None:
    text = '{\n  "response_time": 0.3, // ok\n  "cpu_usage": // oops\n}\n'
    assert error_of(text) == "thresholds.json line 4: Expecting value"


def test_json_error_uses_source_name() -> None:
    assert error_of("", "my.json") == "my.json line 1: Expecting value"


def test_trailing_comma_is_an_error() -> None:
    assert error_of('{"cpu_usage": 0.2,\n}').startswith("thresholds.json line 2: ")


def test_duplicate_key_is_an_error() -> None:
    assert error_of('{"cpu_usage": 0.2, "cpu_usage": 0.3}') == 'thresholds.json: duplicate key "cpu_usage"'


def test_top_level_must_be_an_object() -> None:
    assert error_of("[1]") == "thresholds.json: expected a JSON object at the top level, got array"


# --- schema errors ----------------------------------------------------------------------------------------------


def test_unknown_top_level_key_names_it_and_the_known_keys() -> None:
    message = error_of('{"respone_time": 0.2}')
    assert message.startswith('thresholds.json: unknown key "respone_time" (')
    assert 'did you mean "response_time"?' in message
    assert (
        "known: response_time, error_rate, cpu_usage, memory_usage, queue_length, throughput, statistic, endpoints)"
        in message
    )


def test_unknown_endpoint_key_names_endpoint_and_key() -> None:
    message = error_of('{"endpoints": {"/x": {"foo": 1}}}')
    assert message.startswith('thresholds.json: endpoints["/x"]: unknown key "foo" (known: ')
    assert "endpoints" not in message.split("known: ")[1]


def test_endpoints_cannot_nest() -> None:
    message = error_of('{"endpoints": {"/x": {"endpoints": {}}}}')
    assert message.startswith('thresholds.json: endpoints["/x"]: unknown key "endpoints"')


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"cpu_usage": "0.2"}', 'thresholds.json: "cpu_usage" must be a number >= 0, got "0.2"'),
        ('{"cpu_usage": true}', 'thresholds.json: "cpu_usage" must be a number >= 0, got true'),
        ('{"cpu_usage": null}', 'thresholds.json: "cpu_usage" must be a number >= 0, got null'),
        ('{"cpu_usage": [0.2]}', 'thresholds.json: "cpu_usage" must be a number >= 0, got [0.2]'),
        ('{"cpu_usage": NaN}', 'thresholds.json: "cpu_usage" must be a number >= 0, got NaN'),
        ('{"queue_length": -0.1}', 'thresholds.json: "queue_length" must be >= 0, got -0.1'),
        (
            '{"error_rate": 1.5}',
            'thresholds.json: "error_rate" (an absolute difference of rates) must be <= 1, got 1.5',
        ),
        (
            '{"endpoints": {"/x": {"throughput": -1}}}',
            'thresholds.json: endpoints["/x"]: "throughput" must be >= 0, got -1',
        ),
    ],
)
def test_bad_values_name_the_key(body: str, expected: str) -> None:
    assert error_of(body) == expected


def test_error_rate_of_one_is_allowed() -> None:
    assert parse_thresholds('{"error_rate": 1}').error_rate == 1.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"endpoints": []}', 'thresholds.json: "endpoints" must be an object of name or pattern to overrides'),
        ('{"endpoints": {"/x": 1}}', 'thresholds.json: endpoints["/x"]: expected an object of thresholds, got number'),
        ('{"endpoints": {"": {}}}', 'thresholds.json: endpoints[""]: empty endpoint name'),
        ('{"endpoints": {"GET  ": {}}}', 'thresholds.json: endpoints["GET  "]: empty endpoint name'),
    ],
)
def test_bad_endpoints(body: str, expected: str) -> None:
    assert error_of(body) == expected


# --- statistic --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"p99"', ("p99",)),
        ('"median"', ("p50",)),
        ('"MEAN"', ("mean",)),
        ('["p95", "p99", "mean"]', ("p95", "p99", "mean")),
        ('["median", "p50", "p95"]', ("p50", "p95")),
    ],
)
def test_statistic(raw: str, expected: tuple[str, ...]) -> None:
    assert parse_thresholds(f'{{"statistic": {raw}}}').statistic == expected


@pytest.mark.parametrize("raw", ['"p90"', "[]", "95", '["p95", 99]', "null"])
def test_bad_statistic(raw: str) -> None:
    assert error_of(f'{{"statistic": {raw}}}').startswith('thresholds.json: "statistic" ')


def test_bad_statistic_names_it() -> None:
    assert '"p90"' in error_of('{"statistic": ["p95", "p90"]}')


# --- per-endpoint overrides -------------------------------------------------------------------------------------

OVERRIDES = """{
  "response_time": 0.1,
  "statistic": "p95",
  "endpoints": {
    "/api/v1/generate/simple": {"response_time": 0.5},     // exact name, listed first: still wins over globs
    "/api/v1/generate*": {"response_time": 0.3, "cpu_usage": 0.4, "statistic": ["p99", "mean"]},
    "/api/*/generate/*": {"response_time": 0.35},
    "POST /api/v1/generate/simple": {"response_time": 0.9},
    "POST /api/v1/upload*": {"error_rate": 0.05},
    "/API/v1/health": {"error_rate": 0.5}
  }
}"""


def test_overrides_parse_in_file_order_with_methods() -> None:
    t = parse_thresholds(OVERRIDES, "thresholds.json")
    assert [(e.method, e.pattern) for e in t.endpoints] == [
        ("", "/api/v1/generate/simple"),
        ("", "/api/v1/generate*"),
        ("", "/api/*/generate/*"),
        ("POST", "/api/v1/generate/simple"),
        ("POST", "/api/v1/upload*"),
        ("", "/API/v1/health"),
    ]
    assert t.endpoints[1] == EndpointThresholds(
        pattern="/api/v1/generate*", values={"response_time": 0.3, "cpu_usage": 0.4}, statistic=("p99", "mean")
    )
    assert t.endpoints[0].statistic is None


def test_for_endpoint_without_a_match_is_the_defaults_without_overrides() -> None:
    t = parse_thresholds(OVERRIDES)
    assert t.for_endpoint("/other") == Thresholds(response_time=0.1)


def test_for_endpoint_globs_apply_in_file_order() -> None:
    t = parse_thresholds(OVERRIDES).for_endpoint("/api/v1/generate/complex", "GET")
    assert t.response_time == 0.35
    assert t.cpu_usage == 0.4
    assert t.statistic == ("p99", "mean")
    assert t.endpoints == ()


def test_for_endpoint_exact_name_wins_over_globs() -> None:
    t = parse_thresholds(OVERRIDES).for_endpoint("/api/v1/generate/simple", "GET")
    assert t.response_time == 0.5
    assert t.cpu_usage == 0.4  # from the glob, which the exact override does not set
    assert t.statistic == ("p99", "mean")


def test_for_endpoint_method_override_applies_only_to_its_method() -> None:
    t = parse_thresholds(OVERRIDES)
    assert t.for_endpoint("/api/v1/generate/simple", "POST").response_time == 0.9
    assert t.for_endpoint("/api/v1/generate/simple", "post").response_time == 0.9
    assert t.for_endpoint("/api/v1/generate/simple").response_time == 0.5
    assert t.for_endpoint("/api/v1/upload/big", "POST").error_rate == 0.05
    assert t.for_endpoint("/api/v1/upload/big", "PUT").error_rate == 0.01


def test_for_endpoint_is_case_sensitive() -> None:
    t = parse_thresholds(OVERRIDES)
    assert t.for_endpoint("/API/v1/health").error_rate == 0.5
    assert t.for_endpoint("/api/v1/health").error_rate == 0.01


def test_glob_character_classes() -> None:
    t = parse_thresholds('{"endpoints": {"/item/[0-9]*": {"queue_length": 2}}}')
    assert t.for_endpoint("/item/42").queue_length == 2.0
    assert t.for_endpoint("/item/abc").queue_length == 0.25


def test_name_with_space_that_is_not_a_method() -> None:
    t = parse_thresholds('{"endpoints": {"Generate content": {"cpu_usage": 0.9}}}')
    assert t.endpoints[0].method == ""
    assert t.endpoints[0].pattern == "Generate content"
    assert t.for_endpoint("Generate content", "POST").cpu_usage == 0.9


def test_for_endpoint_keeps_statistic_when_override_has_none() -> None:
    t = parse_thresholds('{"statistic": ["p50", "p99"], "endpoints": {"/x": {"cpu_usage": 0.3}}}')
    assert t.for_endpoint("/x").statistic == ("p50", "p99")


def test_as_dict_round_trips() -> None:
    t = parse_thresholds(OVERRIDES)
    out = t.as_dict()
    assert out["response_time"] == 0.1
    assert out["throughput"] == 0.2
    assert out["statistic"] == ["p95"]
    endpoints = out["endpoints"]
    assert isinstance(endpoints, dict)
    assert list(endpoints) == [
        "/api/v1/generate/simple",
        "/api/v1/generate*",
        "/api/*/generate/*",
        "POST /api/v1/generate/simple",
        "POST /api/v1/upload*",
        "/API/v1/health",
    ]
    assert endpoints["/api/v1/generate*"] == {"response_time": 0.3, "cpu_usage": 0.4, "statistic": ["p99", "mean"]}
    assert parse_thresholds(json.dumps(out)) == t


def test_as_dict_of_defaults() -> None:
    assert DEFAULT_THRESHOLDS.as_dict() == {
        "response_time": 0.2,
        "error_rate": 0.01,
        "cpu_usage": 0.15,
        "memory_usage": 0.15,
        "queue_length": 0.25,
        "throughput": 0.2,
        "statistic": ["p95"],
        "endpoints": {},
    }
