"""Unit tests of benchlab.runners.analysis.slo.check: criteria judged on observed rows, by scope (no services)."""

from __future__ import annotations

from benchlab.runners.analysis.slo import DEFAULT_SLOS, Check, Observed, SLOSet, check, parse_slos


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
