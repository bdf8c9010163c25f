"""benchlab: Locust runs measured release against release.

The repository's `runners/` and `metrics/` folders install as `benchlab.runners` and `benchlab.metrics`;
nothing is installed under a generic top-level name.

The seed framework's Python API: `BaselineCollector`, `MetricsAnalyzer`, `TestScenario` (and the baseline, stress,
spike and soak scenarios) and `create_baseline_report`, over the same code as the CLI.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("benchlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

from benchlab.analyzer import MetricsAnalyzer
from benchlab.baseline import BaselineCollector, PerformanceBaseline
from benchlab.report import create_baseline_report
from benchlab.scenarios import (
    BaselineScenario,
    CriterionResult,
    ScenarioResult,
    SoakTestScenario,
    SpikeTestScenario,
    StressTestScenario,
    TestScenario,
)

__all__ = [
    "BaselineCollector",
    "BaselineScenario",
    "CriterionResult",
    "MetricsAnalyzer",
    "PerformanceBaseline",
    "ScenarioResult",
    "SoakTestScenario",
    "SpikeTestScenario",
    "StressTestScenario",
    "TestScenario",
    "__version__",
    "create_baseline_report",
]
