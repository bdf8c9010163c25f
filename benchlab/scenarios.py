"""The seed framework's test scenarios: a named run with objectives and success criteria, run and checked.

A scenario runs through `BaselineCollector.collect_baseline` (so `benchlab run`'s code) with its test type's
load shape, and checks its criteria with the SLO code of `--slo` (`runners.analysis.slo`), judged by
`runners.judge` over the run's steady-state windows like every run's SLO checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from benchlab.baseline import BaselineCollector, PerformanceBaseline

CRITERIA = {
    "response_time_p95": "p95 < {}ms",
    "response_time_p99": "p99 < {}ms",
    "response_time_median": "p50 < {}ms",
    "response_time_mean": "mean < {}ms",
    "error_rate": "error_rate < {}",
    "max_error_rate": "error_rate < {}",
    "min_rps": "rps >= {}",
}
"""Keys of `success_criteria` and the SLO criterion each one is (limits in ms, a fraction, requests per second)."""


def _number(value: float) -> str:
    """A limit as criterion text: plain decimals (no exponent)."""
    return f"{float(value):.12f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, kw_only=True)
class CriterionResult:
    """One success criterion checked on the run's totals; `passed` is None when the value is unknown."""

    name: str
    criterion: str
    limit: float
    value: float | None
    passed: bool | None


@dataclass(frozen=True, kw_only=True)
class ScenarioResult:
    """A scenario's run: its baseline and each criterion, passed or not."""

    scenario: str
    baseline: PerformanceBaseline
    criteria: tuple[CriterionResult, ...]

    @property
    def passed(self) -> bool:
        """Every criterion passed (an unknown value does not pass)."""
        return all(c.passed is True for c in self.criteria)

    def summary(self) -> str:
        """One line per criterion, then the outcome."""
        lines = [
            f"{'pass' if c.passed else 'FAIL' if c.passed is False else 'unknown'}: {c.name} {c.criterion} "
            f"(measured {'n/a' if c.value is None else f'{c.value:.4g}'})"
            for c in self.criteria
        ]
        return "\n".join([*lines, f"{self.scenario}: {'PASSED' if self.passed else 'FAILED'}"])


@dataclass(frozen=True)
class TestScenario:
    """A named load test and its success criteria (`response_time_p95` ms, `error_rate` fraction, `min_rps`)."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    test_type: ClassVar[str] = "load"
    """benchlab load shape of the scenario."""

    name: str
    description: str
    user_classes: Sequence[type]
    users: int = 10
    spawn_rate: float = 1.0
    run_time: float = 60.0
    """Seconds."""
    objectives: Sequence[str] = field(default_factory=tuple)
    success_criteria: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.criteria()

    def criteria(self) -> list[tuple[str, Any]]:
        """(key, parsed criterion) of each success criterion; ValueError for an unknown key or a bad limit."""
        from benchlab.runners.analysis.slo import parse_criterion

        unknown = [k for k in self.success_criteria if k not in CRITERIA]
        if unknown:
            raise ValueError(f"scenario {self.name}: unknown success criteria {unknown} (known: {', '.join(CRITERIA)})")
        return [
            (k, parse_criterion(CRITERIA[k].format(_number(v)), self.name)) for k, v in self.success_criteria.items()
        ]

    def options(self) -> list[str]:
        """Further `benchlab run` flags of this scenario's load shape."""
        return []

    def run(
        self,
        host: str | None = None,
        db: str | None = None,
        *,
        collector: BaselineCollector | None = None,
        results_dir: str | Path | None = None,
    ) -> ScenarioResult:
        """Run the scenario, store it, and check each success criterion on its steady-state totals."""
        collector = collector or BaselineCollector(host, db=db, results_dir=results_dir)
        baseline = collector.collect_baseline(
            list(self.user_classes),
            users=self.users,
            spawn_rate=self.spawn_rate,
            run_time=self.run_time,
            test_type=self.test_type,
            operation=self.name,
            options=self.options(),
        )
        return ScenarioResult(scenario=self.name, baseline=baseline, criteria=self.check(collector, baseline))

    def check(self, collector: BaselineCollector, baseline: PerformanceBaseline) -> tuple[CriterionResult, ...]:
        """The criteria on a stored run, through `runners.judge` (the SLO checks of every run)."""
        from benchlab.runners.analysis.slo import Operation, SLOSet
        from benchlab.runners.judge import judge_runs, select
        from benchlab.runners.settings import JudgeSettings

        parsed = self.criteria()
        if baseline.run_id is None or not parsed:
            return ()
        operation = Operation(name=self.name, match=("*",), scope="scenario", criteria=tuple(c for _, c in parsed))
        judge = JudgeSettings(candidate_runs=(baseline.run_id,), slos=SLOSet(operations=(operation,)), save=False)
        with collector.store() as store:
            checks = judge_runs(store, judge, select(store, judge)).checks
        by_text = {c.criterion.text: c for c in checks}
        out = []
        for key, criterion in parsed:
            found = by_text.get(criterion.text)
            out.append(
                CriterionResult(
                    name=key,
                    criterion=criterion.text,
                    limit=criterion.limit,
                    value=None if found is None else found.value,
                    passed=None if found is None else found.passed,
                )
            )
        return tuple(out)


@dataclass(frozen=True)
class BaselineScenario(TestScenario):
    """All users at once, held: the reference numbers of an operation."""

    test_type: ClassVar[str] = "baseline"


@dataclass(frozen=True)
class StressTestScenario(TestScenario):
    """Users go up in steps until the success criteria's p95 or error rate breaks: the breaking point."""

    test_type: ClassVar[str] = "stress"
    steps: int = 5

    def options(self) -> list[str]:
        out = ["--stress-steps", str(self.steps)]
        if "response_time_p95" in self.success_criteria:
            out += ["--slo-p95-ms", _number(self.success_criteria["response_time_p95"])]
        rate = self.success_criteria.get("error_rate", self.success_criteria.get("max_error_rate"))
        return out + (["--slo-error-rate", _number(rate)] if rate is not None else [])


@dataclass(frozen=True)
class SpikeTestScenario(TestScenario):
    """A steady level, a jump to `spike_factor` times the users, and back."""

    test_type: ClassVar[str] = "spike"
    spike_factor: float = 5.0

    def options(self) -> list[str]:
        return ["--spike-factor", str(self.spike_factor)]


@dataclass(frozen=True)
class SoakTestScenario(TestScenario):
    """A long hold at the users: drift and leaks."""

    test_type: ClassVar[str] = "soak"
