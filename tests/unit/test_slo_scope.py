"""Whether any SLO can apply to a run: when none can and nothing is compared, the run's samples are not read back."""

from __future__ import annotations

from benchlab.runners.analysis.slo import DEFAULT_SLOS, may_apply, parse_slos


def test_the_seed_table_applies_only_to_scenarios_named_after_its_operations() -> None:
    assert may_apply(DEFAULT_SLOS, scenario="health-check")
    assert may_apply(DEFAULT_SLOS, scenario="content-generation")
    assert not may_apply(DEFAULT_SLOS, scenario="selfbench-u50-w0", user_classes=["SelfBenchUser"])


def test_endpoint_criteria_may_apply_to_any_run_and_user_classes_match() -> None:
    endpoint = parse_slos('{"/search": ["p95 < 200ms"]}')
    assert may_apply(endpoint, scenario="anything")
    by_class = parse_slos('{"api": {"match": ["ApiUser"], "scope": "user_class", "criteria": ["error_rate < 1%"]}}')
    assert may_apply(by_class, user_classes=["WebUser", "ApiUser"])
    assert not may_apply(by_class, user_classes=["WebUser"], scenario="ApiUser-less")
    assert not may_apply(parse_slos("{}"), scenario="health")
