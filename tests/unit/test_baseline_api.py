"""The seed CLI's verbs as benchlab commands, and the seed API's scenario criteria (no runs, no services)."""

from __future__ import annotations

import pytest

from benchlab import PerformanceBaseline, StressTestScenario, TestScenario
from benchlab.runners.cli import build_parser
from benchlab.runners.errors import BadInput
from benchlab.runners.seed import seed_argv


class User:
    """Stands in for a Locust user class."""


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCUSTFILE", "TARGET_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_seed_run_types_are_run_with_a_test_type() -> None:
    argv = seed_argv(["--type", "stress", "--users", "20", "--duration", "120", "--operation", "checkout"])
    assert argv == [
        "run", "--test-type", "stress", "--host", "http://localhost:8000", "-f", "locustfile.py",
        "--users", "20", "--duration", "120", "--scenario", "checkout",
    ]  # fmt: skip
    ns = build_parser().parse_args(argv)
    assert (ns.test_type, ns.users, ns.run_time, ns.scenario) == ("stress", 20, "120", "checkout")
    given = seed_argv(["--type=baseline", "-f", "mine.py", "--host", "http://h:1"])
    assert given == ["run", "--test-type", "baseline", "-f", "mine.py", "--host", "http://h:1"]


def test_seed_compare_and_trend() -> None:
    assert seed_argv(["--type", "compare", "--operation", "mixed_workload_baseline"]) == [
        "compare",
        "--operation",
        "mixed_workload_baseline",
    ]
    ns = build_parser().parse_args(seed_argv(["--type", "compare", "--operation", "mixed_workload_baseline"]))
    assert ns.operation == "mixed_workload_baseline"
    trend = seed_argv(["--type", "trend", "--operation", "content_generation_baseline", "--days", "7"])
    assert trend == ["trend", "--scenario", "content_generation", "--test-type", "baseline", "--days", "7"]


def test_commands_and_bad_types_are_left_alone_or_refused() -> None:
    assert seed_argv(["run", "--test-type", "load"]) == ["run", "--test-type", "load"]
    assert seed_argv(["compare", "--version", "1.1"]) == ["compare", "--version", "1.1"]
    with pytest.raises(BadInput, match="bad --type 'bogus'"):
        seed_argv(["--type", "bogus"])


def test_duration_is_the_run_time_of_run() -> None:
    ns = build_parser().parse_args(["run", "-f", "x.py", "--duration", "90"])
    assert ns.run_time == "90"


def test_scenario_criteria_are_slo_criteria() -> None:
    scenario = TestScenario(
        name="custom_test",
        description="Custom test scenario",
        user_classes=[User],
        users=15,
        spawn_rate=2,
        run_time=240,
        objectives=["Test custom functionality"],
        success_criteria={"response_time_p95": 2000, "error_rate": 0.01, "min_rps": 8},
    )
    texts = {key: (c.metric, c.op, c.limit) for key, c in scenario.criteria()}
    assert texts == {
        "response_time_p95": ("p95", "<", 2000.0),
        "error_rate": ("error_rate", "<", 0.01),
        "min_rps": ("rps", ">=", 8.0),
    }
    assert TestScenario.test_type == "load"
    with pytest.raises(ValueError, match="unknown success criteria"):
        TestScenario(name="x", description="", user_classes=[User], success_criteria={"p95": 1})


def test_stress_scenario_breaks_on_its_criteria() -> None:
    stress = StressTestScenario(
        name="s", description="", user_classes=[User], success_criteria={"response_time_p95": 500, "error_rate": 1e-5}
    )
    assert stress.options() == ["--stress-steps", "5", "--slo-p95-ms", "500", "--slo-error-rate", "0.00001"]


def test_performance_baseline_round_trips_the_seed_fields() -> None:
    data = {
        "operation": "content_generation_baseline",
        "environment": "baseline",
        "version": "0.1.0",
        "timestamp": "2024-01-01T12:00:00",
        "response_time_mean": 2500.0,
        "response_time_median": 2000.0,
        "response_time_p95": 4500.0,
        "response_time_p99": 8000.0,
        "response_time_max": 12000.0,
        "requests_per_second": 8.5,
        "concurrent_users": 10,
        "total_requests": 2550,
        "error_rate": 0.02,
        "error_count": 51,
        "test_duration": 300,
        "raw_data": {"endpoints": {}, "timeline": [], "errors": []},
    }
    baseline = PerformanceBaseline.from_dict(data)
    assert baseline.response_time_p95 == 4500.0 and baseline.run_id is None
    assert baseline.to_dict() == data
    with pytest.raises(ValueError, match="unknown run_id"):
        PerformanceBaseline.from_dict(data | {"run_id": 3})
