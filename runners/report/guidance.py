"""Numbers a report derives from what it shows: KPI tiles, SLI recommendations, alert thresholds, capacity.

Plain functions over `runners.report.data`; the rules are stated here once and printed with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchlab.runners.analysis.slo import Check
from benchlab.runners.report.data import Capacity, EndpointRow, Mark, StepLoad, Timeline

LATENCY_HEADROOM = 0.5
"""A recommended latency objective sits this far above the observed p95 (50%)."""
WARNING_HEADROOM = 0.25
"""The warning alert fires this far above the observed p95 (25%), before the objective breaks."""
MIN_ERROR_OBJECTIVE = 0.001
"""The smallest error-rate objective recommended (0.1%)."""
RPS_FLOOR = 0.8
"""A throughput objective asks for this share of the observed rps."""


@dataclass(frozen=True, kw_only=True)
class Tile:
    """One KPI: its value and, where an SLO criterion covers it, pass or fail."""

    label: str
    value: str
    status: str
    """pass, fail, unknown or info."""
    detail: str


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    """The SLI objectives and alert thresholds suggested for one endpoint from its observed distribution."""

    name: str
    method: str
    observed_p95_ms: float
    p95_objective_ms: float
    p95_warning_ms: float
    p95_critical_ms: float
    observed_error_rate: float
    error_objective: float
    error_warning: float
    error_critical: float
    observed_rps: float
    rps_objective: float


def nice_ceil(value: float) -> float:
    """The next round number at or above `value` (1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8 or 9 times 10^k)."""
    if not math.isfinite(value) or value <= 0:
        return value
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def recommend(row: EndpointRow) -> Recommendation:
    """Objectives with headroom over what was observed; the warning fires before the objective (critical) breaks."""
    p95 = row.p95_ms
    objective = nice_ceil(p95 * (1 + LATENCY_HEADROOM))
    error_objective = nice_ceil(max(2 * row.error_rate, MIN_ERROR_OBJECTIVE))
    return Recommendation(
        name=row.name,
        method=row.method,
        observed_p95_ms=p95,
        p95_objective_ms=objective,
        p95_warning_ms=min(nice_ceil(p95 * (1 + WARNING_HEADROOM)), objective),
        p95_critical_ms=objective,
        observed_error_rate=row.error_rate,
        error_objective=error_objective,
        error_warning=error_objective / 2,
        error_critical=error_objective,
        observed_rps=row.rps,
        rps_objective=row.rps * RPS_FLOOR,
    )


_TILE_METRICS = (("p95", "p95_ms"), ("p99", "p99_ms"), ("rps", "rps"), ("error_rate", "error_rate"))


def tiles(total: EndpointRow | None, checks: Sequence[Check]) -> list[Tile]:
    """Requests, rps, p95, p99 and error rate of the total; marked by the SLO checks of the whole run."""
    if total is None:
        return []
    on_total = [c for c in checks if c.endpoint == ""]
    out = [Tile(label="Requests", value=f"{total.requests:,}", status="info", detail=f"{total.failures:,} failed")]
    values = {
        "p95": (total.p95_ms, f"{total.p95_ms:.1f} ms"),
        "p99": (total.p99_ms, f"{total.p99_ms:.1f} ms"),
        "rps": (total.rps, f"{total.rps:.1f}/s"),
        "error_rate": (total.error_rate, f"{total.error_rate:.2%}"),
    }
    for metric, _column in _TILE_METRICS:
        _, text = values[metric]
        relevant = [c for c in on_total if c.criterion.metric == metric]
        status, detail = "info", "no SLO criterion"
        if relevant:
            failed = [c for c in relevant if c.passed is False]
            unknown = [c for c in relevant if c.passed is None]
            status = "fail" if failed else "unknown" if unknown else "pass"
            detail = "; ".join(f"{c.operation}: {c.criterion.text}" for c in relevant)
        label = {"p95": "p95", "p99": "p99", "rps": "Throughput", "error_rate": "Error rate"}[metric]
        out.append(Tile(label=label, value=text, status=status, detail=detail))
    return out


def check_counts(checks: Sequence[Check]) -> tuple[int, int, int]:
    """(passed, failed, unknown) SLO checks."""
    passed = sum(1 for c in checks if c.passed is True)
    failed = sum(1 for c in checks if c.passed is False)
    return passed, failed, len(checks) - passed - failed


def capacity(run_id: int, version: str, timeline: Timeline) -> Capacity | None:
    """What each step of a stress run sustained: the second half of each step's windows, until the SLO broke."""
    steps = [m for m in timeline.stages if m.kind == "stress_step"]
    if not steps or not timeline.t:
        return None
    broke = next((m for m in timeline.stages if m.kind == "slo_break"), None)
    end = timeline.t[-1] + timeline.window_s
    out = []
    for i, step in enumerate(steps):
        stop = steps[i + 1].t if i + 1 < len(steps) else end
        if broke is not None and step.t <= broke.t:
            stop = min(stop, broke.t)
        if broke is not None and step.t > broke.t:
            break
        out.append(_step_load(timeline, step, stop, sustained=broke is None or stop < broke.t))
    return Capacity(run_id=run_id, version=version, steps=tuple(out), breach=broke.message if broke else None)


def _step_load(timeline: Timeline, step: Mark, stop: float, *, sustained: bool) -> StepLoad:
    middle = step.t + (stop - step.t) / 2
    idx = [i for i, t in enumerate(timeline.t) if middle <= t and t + timeline.window_s <= stop]
    if not idx:
        idx = [i for i, t in enumerate(timeline.t) if step.t <= t < stop]

    def mean(values: Sequence[float]) -> float:
        finite = [values[i] for i in idx if math.isfinite(values[i])]
        return sum(finite) / len(finite) if finite else math.nan

    rps, fails = mean(timeline.rps), mean(timeline.fails)
    users = step.users if step.users is not None else 0
    return StepLoad(
        users=users,
        rps=rps,
        p95_ms=mean(timeline.p95),
        error_rate=fails / rps if rps and math.isfinite(rps) and rps > 0 else math.nan,
        sustained=sustained,
    )


def headroom(cap: Capacity, current_rps: float) -> float | None:
    """Share of the maximum sustained throughput still unused at the current load (negative: over capacity)."""
    top = cap.max_sustained
    if top is None or not math.isfinite(top.rps) or top.rps <= 0:
        return None
    return 1 - current_rps / top.rps
