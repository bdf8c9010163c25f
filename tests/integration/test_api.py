"""The seed framework's Python examples, run against the demo target.

Each block below is the seed's example (../shared/seeds/000-performance-framework.md, "Usage Examples" and
"Advanced Usage") with only its import lines, the base user class name (BaseHalcytoneUser → HttpUser) and the
run times (seconds instead of minutes) changed. They run in order in one namespace, as a reader pasting them
into one session would. The seed's host is http://localhost:8000, so the demo target listens there.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from target_fixture import Target, running_target

from benchlab import PerformanceBaseline, TestScenario

REPO = Path(__file__).resolve().parents[2]
VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")

BASIC = """
from benchlab import BaselineCollector
from locustfile import ContentGenerationUser

collector = BaselineCollector("http://localhost:8000")
baseline = collector.collect_baseline(
    user_class=ContentGenerationUser,
    users=10,
    spawn_rate=2,
    run_time=3
)

print(f"P95 Response Time: {baseline.response_time_p95}ms")
print(f"Throughput: {baseline.requests_per_second} RPS")
print(f"Error Rate: {baseline.error_rate:.2%}")
"""

REGRESSION = """
from benchlab import MetricsAnalyzer, BaselineCollector

collector = BaselineCollector()
analyzer = MetricsAnalyzer(collector)

# Compare current vs previous baseline
previous = collector.get_latest_baseline("content_generation")
current = collector.collect_baseline(...)

analysis = analyzer.compare_baselines(current, previous)
print(f"Overall Assessment: {analysis['overall_assessment']}")
"""

CUSTOM = """
from locust import HttpUser, task, between
from benchlab import BaselineCollector

class CustomUser(HttpUser):
    wait_time = between(1, 3)
    host = "http://localhost:8000"

    @task
    def custom_endpoint(self):
        self.client.get("/api/custom-endpoint")

# Collect baseline for custom user pattern
collector = BaselineCollector()
baseline = collector.collect_baseline(CustomUser, users=5, run_time=3)
"""

SCENARIO = """
from benchlab import TestScenario
from locust import HttpUser, task

class CustomTestUser(HttpUser):
    @task
    def custom_workflow(self):
        # Implement custom test workflow
        pass

scenario = TestScenario(
    name="custom_test",
    description="Custom test scenario",
    user_classes=[CustomTestUser],
    users=15,
    spawn_rate=2,
    run_time=3,
    objectives=["Test custom functionality"],
    success_criteria={
        "response_time_p95": 2000,
        "error_rate": 0.01,
        "min_rps": 8
    }
)
"""

TREND = """
from benchlab import MetricsAnalyzer

analyzer = MetricsAnalyzer(collector)
trends = analyzer.analyze_trend("content_generation_baseline", days=30)

print(f"Response time trend: {trends['trends']['response_time_p95']['change_percent']}%")
print(f"Throughput trend: {trends['trends']['requests_per_second']['change_percent']}%")
"""

REPORT = """
from benchlab import create_baseline_report

baselines = [baseline1, baseline2, baseline3]
report = create_baseline_report(baselines, "performance/results/report.md")
"""


@pytest.fixture(scope="module")
def seed_port() -> Iterator[Target]:
    """The demo target on the seed's port 8000, shared by the module."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 8000))
        except OSError:
            pytest.skip("port 8000, the seed examples' host, is in use")
    with running_target(version="1.0", port=8000) as target:
        yield target


@pytest.fixture
def seed_target(seed_port: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Target:
    """The target, a fresh temp SQLite store by BENCHLAB_DB_URL, and load_tests/ importable, as for a reader."""
    monkeypatch.delenv("TARGET_HOST", raising=False)
    monkeypatch.setenv("BENCHLAB_DB_URL", f"sqlite:///{tmp_path / 'bench.db'}")
    monkeypatch.setenv("BENCHLAB_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.syspath_prepend(str(REPO / "load_tests"))
    monkeypatch.chdir(tmp_path)
    return seed_port


def test_seed_examples_run_against_the_demo_target(seed_target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    ns: dict[str, Any] = {"__name__": "seed_examples"}
    exec(BASIC, ns)
    baseline1 = ns["baseline"]
    assert isinstance(baseline1, PerformanceBaseline) and baseline1.run_id is not None
    assert baseline1.operation == "content_generation_baseline"
    assert baseline1.total_requests > 0 and baseline1.concurrent_users == 10
    assert "P95 Response Time:" in capsys.readouterr().out

    exec(REGRESSION, ns)
    assert ns["previous"].run_id == baseline1.run_id and ns["current"].run_id != baseline1.run_id
    analysis = ns["analysis"]
    assert analysis["overall_assessment"] in VERDICTS
    assert analysis["metrics"]["response_time_p95"]["verdict"] in VERDICTS
    assert {r["metric"] for r in analysis["results"]} >= {"p95_ms", "rps", "error_rate"}
    assert "Overall Assessment:" in capsys.readouterr().out

    exec(CUSTOM, ns)
    baseline3 = ns["baseline"]
    assert baseline3.operation == "custom_baseline" and baseline3.error_count == baseline3.total_requests > 0

    exec(SCENARIO, ns)
    assert [key for key, _ in ns["scenario"].criteria()] == ["response_time_p95", "error_rate", "min_rps"]

    exec(TREND, ns)
    trend = ns["trends"]["trends"]["response_time_p95"]
    assert ns["trends"]["runs"] == 2 and math.isfinite(trend["change_percent"])
    assert [v["run_id"] for v in trend["values"]] == [baseline1.run_id, ns["current"].run_id]

    ns |= {"baseline1": baseline1, "baseline2": ns["current"], "baseline3": baseline3}
    exec(REPORT, ns)
    written = Path("performance/results/report.md").read_text()
    assert written == ns["report"] and "content_generation_baseline" in written and "custom_baseline" in written


def test_a_scenario_runs_and_reports_each_criterion(seed_target: Target, tmp_path: Path) -> None:
    from locustfile import HealthCheckUser

    scenario = TestScenario(
        name="health_scenario",
        description="health polls",
        user_classes=[HealthCheckUser],
        users=5,
        spawn_rate=5,
        run_time=3,
        success_criteria={"response_time_p95": 2000, "error_rate": 0.01, "min_rps": 1, "response_time_mean": 0.001},
    )
    result = scenario.run(results_dir=tmp_path / "results")
    by_name = {c.name: c for c in result.criteria}
    assert [by_name[k].passed for k in ("response_time_p95", "error_rate", "min_rps")] == [True, True, True]
    assert by_name["response_time_mean"].passed is False and by_name["response_time_mean"].value is not None
    assert result.passed is False and "FAIL: response_time_mean" in result.summary()
    files = list((tmp_path / "results" / "load").glob("health_scenario_load_*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["operation"] == "health_scenario_load"
