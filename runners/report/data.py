"""What a report shows, as plain frozen data: built by `runners.reporting` from the store, read by the renderers.

Every section but the run metadata is optional: a renderer shows what is there and says what is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchlab.runners.analysis.slo import Check

if TYPE_CHECKING:  # compare brings scipy; the CLI's parser and `run` import this module without it
    from benchlab.runners.analysis.compare import Comparison

Floats = tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Metadata of one stored run."""

    run_id: int
    scenario: str
    test_type: str
    app_version: str
    environment: str
    host: str
    users: int
    workers: int
    status: str
    started_at: str
    """ISO time, UTC."""
    duration_s: float
    git_commit: str | None
    benchlab_version: str
    locustfile: str


@dataclass(frozen=True, kw_only=True)
class EndpointRow:
    """Exact statistics of one endpoint over a side's runs (`name` "" is the total)."""

    name: str
    method: str
    requests: int
    failures: int
    rps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        """Failures per request."""
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, kw_only=True)
class Mark:
    """A run event on the time axis: a user-count change or a shape stage."""

    t: float
    """Seconds since the run started."""
    kind: str
    message: str
    users: int | None


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """One run over time, in aggregated windows: latency percentiles, throughput, users and stages."""

    run_id: int
    version: str
    window_s: float
    t: Floats
    """Start of each window in seconds since the run started."""
    p50: Floats
    p95: Floats
    p99: Floats
    rps: Floats
    fails: Floats
    """Failed requests per second."""
    users: tuple[Mark, ...] = ()
    """User-count events, in time order."""
    stages: tuple[Mark, ...] = ()
    """Stage events (stress_step, slo_break, spike_start, spike_end, soak_checkpoint)."""


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """A side's latency histogram over all its windows (log buckets about 2% wide)."""

    version: str
    lower_ms: Floats
    """Lower bound of each non-empty bucket, ascending."""
    counts: Floats


@dataclass(frozen=True, kw_only=True)
class ValueTrack:
    """One resource or queue metric of one service or queue over a run's time axis."""

    metric: str
    """cpu_percent, rss_bytes, queue_length or backlog_age_s."""
    subject: str
    version: str
    run_id: int
    t: Floats
    values: Floats


@dataclass(frozen=True, kw_only=True)
class ErrorGroup:
    """Failed requests of one endpoint with one message."""

    endpoint: str
    method: str
    message: str
    count: int


@dataclass(frozen=True, kw_only=True)
class HistoryPoint:
    """One completed run of the scenario in the version history."""

    run_id: int
    version: str
    started_at: str
    p95_ms: float | None
    rps: float | None
    error_rate: float | None


@dataclass(frozen=True, kw_only=True)
class StepLoad:
    """One step of a stress run: its users and what the target sustained."""

    users: int
    rps: float
    p95_ms: float
    error_rate: float
    sustained: bool
    """False for the step in which the SLO broke (and any after it)."""


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """Capacity guidance from the last stress run of the scenario."""

    run_id: int
    version: str
    steps: tuple[StepLoad, ...]
    breach: str | None
    """The slo_break message, or None when the SLO held up to the maximum."""

    @property
    def max_sustained(self) -> StepLoad | None:
        """The highest step that held the SLO."""
        held = [s for s in self.steps if s.sustained]
        return max(held, key=lambda s: s.users) if held else None


@dataclass(frozen=True, kw_only=True)
class Section:
    """A per-run analysis (breaking point, spike recovery, soak slopes): its lines and an optional x-y chart."""

    title: str
    lines: tuple[str, ...]
    points: tuple[tuple[float, float], ...] = ()
    """Measured (x, y), such as (users, rps) of each stress step."""
    curve: tuple[tuple[float, float], ...] = ()
    """A model over the same axes, such as the USL throughput curve."""
    x_label: str = ""
    y_label: str = ""


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything one report shows."""

    title: str
    generated_at: str
    candidate: tuple[RunInfo, ...]
    baseline: tuple[RunInfo, ...] = ()
    candidate_label: str = ""
    baseline_label: str = ""
    endpoints: tuple[EndpointRow, ...] = ()
    """The candidate's endpoints, the total row last."""
    comparison: Comparison | None = None
    checks: tuple[Check, ...] = ()
    timelines: tuple[Timeline, ...] = ()
    """The candidate's newest run first, then the baseline's newest run (if any)."""
    distributions: tuple[Distribution, ...] = ()
    resources: tuple[ValueTrack, ...] = ()
    errors: tuple[ErrorGroup, ...] = ()
    history: tuple[HistoryPoint, ...] = ()
    change_points: tuple[int, ...] | None = None
    """Indices into `history` where the trend analysis found a change; None when that analysis is not available."""
    capacity: Capacity | None = None
    sections: tuple[Section, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What the report could not show, and why."""

    @property
    def is_comparison(self) -> bool:
        """True when a baseline was compared."""
        return self.comparison is not None

    @property
    def total(self) -> EndpointRow | None:
        """The candidate's all-endpoints row."""
        return next((r for r in self.endpoints if r.name == "" and r.method == ""), None)
