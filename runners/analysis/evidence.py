"""The plain data of a comparison: the evidence of each side, the settings, and the judged results.

Kept apart from `compare` (which brings scipy) so the store can be queried while scipy is still importing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchlab.runners.analysis.series import LatencySeries, ValueSeries

Key = tuple[str, str]
"""(endpoint name, method); ("", "") is the total over all endpoints."""
FloorKey = tuple[str, str, str, str]
"""(endpoint, method, metric, subject) of a noise floor; subject is "" for request metrics."""


@dataclass(frozen=True)
class RunEvidence:
    """One run, as windows."""

    run_id: int
    """Store id of the run."""
    latency: Mapping[Key, LatencySeries]
    """Endpoint → request windows; ("", "") holds all endpoints."""
    resources: Mapping[tuple[str, str], ValueSeries] = field(default_factory=dict)
    """(metric, subject) → readings per window, e.g. ("cpu_percent", "api"), ("queue_length", "jobs")."""

    @property
    def windows(self) -> int:
        """Windows of the run's grid."""
        total = self.latency.get(("", ""))
        return total.windows if total is not None else 0


@dataclass(frozen=True)
class Side:
    """The runs of one version in a comparison."""

    version: str
    """App version label."""
    runs: Sequence[RunEvidence]
    """Its runs, newest first."""
    exact: Mapping[Key, Mapping[str, float]] = field(default_factory=dict)
    """Exact values over the pooled samples (from SQL), used as point estimates where given."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a comparison is computed."""

    replicates: int = 2000
    """Bootstrap replicates."""
    confidence: float = 0.95
    """Level of the intervals."""
    alpha: float = 0.05
    """False discovery rate of the Benjamini-Hochberg adjustment."""
    seed: int = 20240101
    """Seed of the resampling, so the same data always gives the same verdict."""
    min_windows: int = 10
    """Fewer windows than this on a side makes every metric inconclusive."""
    min_tail: int = 5
    """A percentile needs at least this many requests beyond it on each side."""
    floors: Mapping[FloorKey, float] = field(default_factory=dict)
    """Calibrated run-to-run spread per metric (sd of the log value, or of the value for error rates)."""
    floor_min_runs: int = 3
    """With fewer runs than this on a side, the noise floor widens the interval."""
    block: float | None = None
    """Expected block length in windows; None picks it per run from the data (1 would be an i.i.d. bootstrap)."""


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    """One metric of one endpoint (or service or queue), judged."""

    endpoint: str
    method: str
    metric: str
    subject: str
    baseline: float
    candidate: float
    change: float
    change_kind: str
    ci_low: float
    ci_high: float
    threshold: float
    noise_floor: float | None
    p_value: float
    q_value: float
    verdict: str
    gating: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with NaN as None."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Every judged metric, the overall verdict over the gating ones, and how they were computed."""

    results: tuple[MetricResult, ...]
    overall: str
    method: dict[str, Any]
    warnings: tuple[str, ...]
