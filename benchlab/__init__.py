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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "MetricsAnalyzer": "analyzer",
    "BaselineCollector": "baseline",
    "PerformanceBaseline": "baseline",
    "create_baseline_report": "report",
    **dict.fromkeys(
        (
            "BaselineScenario",
            "CriterionResult",
            "ScenarioResult",
            "SoakTestScenario",
            "SpikeTestScenario",
            "StressTestScenario",
            "TestScenario",
        ),
        "scenarios",
    ),
}
"""Where each name of the Python API lives. They load on first use (PEP 562): every `benchlab run`, its writer
child and each worker import this package, and none of them needs the seed API."""


def __getattr__(name: str) -> Any:
    """Load a name of the Python API from its module on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'benchlab' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"benchlab.{home}"), name)
    globals()[name] = value
    return value


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
