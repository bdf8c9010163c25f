"""Analyses over time, from the store: trends across runs and the per-run analysis of stress, spike and soak runs.

The only module of these analyses that reads the store: it builds plain data, calls `runners.analysis.trend`,
`stress`, `spike` and `soak`, and hands the results to `runners.report.analysis`. The `trend` and `analyze`
sub-commands and their flags live here too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchlab.runners.errors import BadInput
from benchlab.runners.prune import require_samples

if TYPE_CHECKING:  # the CLI builds its parser without numpy and scipy; the handlers import them
    import numpy as np

    from benchlab.metrics.store.database import Store
    from benchlab.metrics.store.model import Run
    from benchlab.runners.analysis.compare import Key
    from benchlab.runners.analysis.series import LatencySeries
    from benchlab.runners.analysis.soak import SoakResult, SoakSettings
    from benchlab.runners.analysis.spike import SpikeResult, SpikeSettings
    from benchlab.runners.analysis.stress import BreakingPoint, Limits
    from benchlab.runners.analysis.threshold import Thresholds
    from benchlab.runners.analysis.trend import Trend, TrendSettings

log = logging.getLogger(__name__)

METRICS = {
    "p95": "p95_ms",
    "p50": "p50_ms",
    "p99": "p99_ms",
    "mean": "mean_ms",
    "max": "max_ms",
    "rps": "rps",
    "error_rate": "error_rate",
}
"""--metric of `trend` → column of the runs table (and field of an endpoint's stats)."""
DRIFT_TYPES = ("soak", "load", "baseline")
"""Test types whose steady hold is analysed for drift and leaks."""


@dataclass(frozen=True, kw_only=True)
class TrendQuery:
    """Which runs a trend covers."""

    scenario: str
    test_type: str | None = None
    endpoint: str | None = None
    """NAME or "METHOD NAME"; None for all endpoints (the runs table's columns)."""
    days: float = 30.0
    metric: str = "p95"


@dataclass(frozen=True, kw_only=True)
class RunAnalysis:
    """The analysis of one run for its test type."""

    run: Run
    kind: str
    """breaking_point, spike or drift."""
    result: BreakingPoint | SpikeResult | SoakResult
    source: str = ""
    """Where settings came from that the run did not store (the stress SLO)."""


# ---------------------------------------------------------------------------------------------------- trend


def load_trend(
    store: Store, query: TrendQuery, settings: TrendSettings | None = None, now: datetime | None = None
) -> tuple[TrendQuery, Trend]:
    """One value per completed run of the scenario in the last `days`, oldest first, and its trend."""
    from benchlab.metrics.store.history import latest_test_type, runs_since, scenarios
    from benchlab.runners.analysis.trend import Point, trend

    if query.metric not in METRICS:
        raise BadInput(f"unknown metric {query.metric!r}: expected one of {', '.join(METRICS)}")
    test_type = query.test_type or latest_test_type(store, scenario=query.scenario)
    if test_type is None:
        known = ", ".join(scenarios(store)) or "none"
        raise BadInput(f"no completed run of scenario {query.scenario!r}; scenarios with runs: {known}")
    query = TrendQuery(**{**query.__dict__, "test_type": test_type})
    since = (now or datetime.now(UTC)) - timedelta(days=query.days)
    runs = runs_since(store, scenario=query.scenario, test_type=test_type, since=since)
    column = METRICS[query.metric]
    values = _endpoint_values(store, runs, query.endpoint, column) if query.endpoint else None
    points = [
        Point(
            run_id=r.id,
            version=r.app_version,
            started_at=_iso(r.started_at),
            value=float(v) if (v := (values[r.id] if values else getattr(r, column))) is not None else float("nan"),
        )
        for r in runs
    ]
    return query, trend(points, query.metric, settings)


def _iso(ts: datetime) -> str:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def _endpoint_values(store: Store, runs: Sequence[Run], endpoint: str, column: str) -> dict[int, float | None]:
    """The metric of one endpoint per run (exact, over the run's samples)."""
    from benchlab.metrics.store.query import endpoint_stats

    method, _, name = endpoint.partition(" ") if re.match(r"^[A-Z]+ ", endpoint) else ("", "", endpoint)
    out: dict[int, float | None] = {}
    for run in runs:
        rows = [r for r in endpoint_stats(store, run.id) if r.name == name and (not method or r.method == method)]
        if len({r.method for r in rows}) > 1:
            methods = ", ".join(sorted(f"{r.method} {name}" for r in rows))
            raise BadInput(f"endpoint {name!r} has several methods; name one of: {methods}")
        if not rows:
            out[run.id] = None
        elif column == "rps":
            span = rows[0].last_ts - rows[0].first_ts
            out[run.id] = rows[0].requests / span if span > 0 else None
        else:
            out[run.id] = float(getattr(rows[0], column))
    return out


# ------------------------------------------------------------------------------------------------ per run


def _timeline(store: Store, run_id: int, window_s: float) -> tuple[dict[Key, LatencySeries], int]:
    """The run's latency windows per endpoint (all of them under ("", "")) and its first window's index."""
    from benchlab.metrics.store.window import window_blocks
    from benchlab.runners.analysis.series import BUCKETS_PER_E, MIN_MS, block_series

    blocks = window_blocks(store, [run_id], window_s=window_s, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS)
    if not blocks:
        raise BadInput(f"run {run_id} has no stored samples")
    return block_series(blocks, window_s)[run_id], min(int(b.window.min()) for b in blocks)


def _readings(store: Store, run_id: int, window_s: float) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(metric, subject) → (window indices, mean reading) of the sidecar's resource and queue samples."""
    import numpy as np

    from benchlab.metrics.store.window import queue_rows, resource_rows

    sources = [(m, resource_rows(store, [run_id], window_s=window_s, column=m)) for m in ("cpu_percent", "rss_bytes")]
    sources.append(("queue_length", queue_rows(store, [run_id], window_s=window_s)))
    grouped: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for metric, rows in sources:
        for _, label, window, value in rows:
            grouped.setdefault((metric, label), []).append((window, value))
    return {key: (np.array([w for w, _ in pts]), np.array([v for _, v in pts])) for key, pts in grouped.items()}


_STEP = re.compile(r"step (\d+)/\d+")
_SLO = re.compile(r"slo p95_ms<=(?P<p95>[\d.e+]+) fail_ratio<=(?P<err>[\d.e+-]+)")


def load_breaking_point(
    store: Store, run: Run, *, window_s: float = 1.0, limits: Limits | None = None
) -> tuple[BreakingPoint, str]:
    """The breaking point of a stress run, and where its SLO came from when `limits` is None."""
    from benchlab.metrics.store.history import events_of
    from benchlab.runners.analysis.stress import Limits, Readings, Step, breaking_point

    events = events_of(store, run.id, ("stress_step", "slo_break", "stop"))
    marks = [e for e in events if e["kind"] == "stress_step"]
    if not marks:
        raise BadInput(f"run {run.id} has no stress_step events: is it a stress run?")
    series, first = _timeline(store, run.id, window_s)
    total = series[("", "")]
    end = next((e["ts"] for e in events if e["kind"] == "stop"), (first + total.windows) * window_s)
    steps = []
    for i, mark in enumerate(marks):
        found = _STEP.search(mark["message"] or "")
        stop = marks[i + 1]["ts"] if i + 1 < len(marks) else end
        index = int(found.group(1)) if found else i + 1
        steps.append(Step(index=index, users=int(mark["user_count"] or 0), start_s=mark["ts"], end_s=stop))
    broke = next((e for e in events if e["kind"] == "slo_break"), None)
    source = "given"
    if limits is None:
        slo = _SLO.search(broke["message"] or "") if broke else None
        source = "the run's slo_break event" if slo else "defaults (the run broke no SLO it recorded)"
        limits = Limits(
            p95_ms=float(slo["p95"]) if slo else Limits.p95_ms,
            error_rate=float(slo["err"]) if slo else Limits.error_rate,
            cores=os.cpu_count() or 1,
        )
    live = None
    if broke is not None:
        live = (max((s.index for s in steps if s.start_s <= broke["ts"]), default=steps[0].index), broke["message"])
    readings: Readings = {k: (w * window_s, v) for k, (w, v) in _readings(store, run.id, window_s).items()}
    return breaking_point(steps, total, first * window_s, readings, limits, live), source


def load_spike(store: Store, run: Run, *, window_s: float = 1.0, settings: SpikeSettings | None = None) -> SpikeResult:
    """Recovery of a spike run (from its spike_start and spike_end events)."""
    from benchlab.metrics.store.history import events_of
    from benchlab.runners.analysis.spike import recovery

    events = events_of(store, run.id, ("spike_start", "spike_end"))
    start = next((e["ts"] for e in events if e["kind"] == "spike_start"), None)
    end = next((e["ts"] for e in events if e["kind"] == "spike_end"), None)
    if start is None or end is None:
        raise BadInput(f"run {run.id} has no spike_start/spike_end events: is it a spike run?")
    series, first = _timeline(store, run.id, window_s)
    return recovery(series[("", "")], first * window_s, (start, end), settings)


def load_soak(
    store: Store,
    run: Run,
    *,
    window_s: float = 1.0,
    warmup: float = 0.2,
    settings: SoakSettings | None = None,
    thresholds: Thresholds | None = None,
) -> SoakResult:
    """Drift and leaks over the run's steady state (warm-up and partial windows left out)."""
    from benchlab.runners.analysis.series import steady_windows, trim
    from benchlab.runners.analysis.soak import soak
    from benchlab.runners.analysis.threshold import DEFAULT_THRESHOLDS

    series, first = _timeline(store, run.id, window_s)
    keep = steady_windows(series[("", "")].windows, window_s, warmup=warmup)
    latency = {key: trim(s, keep) for key, s in series.items()}
    n = keep.stop - keep.start
    resources = {}
    for key, (windows, values) in _readings(store, run.id, window_s).items():
        pos = windows - first - keep.start
        inside = (pos >= 0) & (pos < n)
        if inside.any():
            resources[key] = (pos[inside], values[inside])
    return soak(run.id, latency, resources, settings, thresholds or DEFAULT_THRESHOLDS)


def analyze_run(store: Store, run_id: int, *, window_s: float = 1.0, limits: Limits | None = None) -> RunAnalysis:
    """The analysis of the run's test type: breaking point, spike recovery, or drift and leaks."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"run {run_id} not found in {store.settings.url}")
    require_samples(store, [run], "analyze")
    if run.test_type == "stress":
        result, source = load_breaking_point(store, run, window_s=window_s, limits=limits)
        return RunAnalysis(run=run, kind="breaking_point", result=result, source=source)
    if run.test_type == "spike":
        return RunAnalysis(run=run, kind="spike", result=load_spike(store, run, window_s=window_s))
    if run.test_type in DRIFT_TYPES:
        return RunAnalysis(run=run, kind="drift", result=load_soak(store, run, window_s=window_s))
    raise BadInput(f"run {run_id} has test type {run.test_type!r}: nothing to analyse")


# ------------------------------------------------------------------------------------------------------ CLI


def add_trend(sub: Any, db: Callable[[argparse.ArgumentParser], None], positive: Any) -> None:
    """The `trend` sub-command."""
    p = sub.add_parser("trend", help="one value per run over the last days, its change, and change points")
    p.add_argument("--scenario", "--operation", dest="scenario", required=True)
    p.add_argument("--test-type", default=None, help="default: that of the scenario's latest run")
    p.add_argument("--endpoint", default=None, help="NAME or 'METHOD NAME' (default: all endpoints)")
    p.add_argument("--days", type=positive(float, "days"), default="30")
    p.add_argument("--metric", choices=tuple(METRICS), default="p95")
    p.add_argument("--min-runs", type=positive(int, "min runs"), default=None, help="runs needed (default 6)")
    p.add_argument("--min-segment", type=positive(int, "min segment"), default=None, help="runs a side (default 3)")
    p.add_argument("--alpha", type=positive(float, "alpha"), default=None, help="significance (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the trend as one JSON object")
    db(p)
    p.set_defaults(handler=cmd_trend)


def cmd_trend(ns: argparse.Namespace) -> int:
    """`benchlab trend`."""
    from benchlab.runners.analysis.trend import TrendSettings
    from benchlab.runners.commands import open_store
    from benchlab.runners.report import analysis as report

    given = {"min_runs": ns.min_runs, "min_segment": ns.min_segment, "alpha": ns.alpha}
    try:
        settings = TrendSettings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    query = TrendQuery(
        scenario=ns.scenario, test_type=ns.test_type, endpoint=ns.endpoint, days=ns.days, metric=ns.metric
    )
    store = open_store(ns)
    try:
        query, result = load_trend(store, query, settings)
    finally:
        store.close()
    print(json.dumps(report.trend_json(query, result)) if ns.json else report.trend_text(query, result))
    return 0


def add_analyze(sub: Any, db: Callable[[argparse.ArgumentParser], None], positive: Any) -> None:
    """The `analyze` sub-command."""
    p = sub.add_parser("analyze", help="a run's analysis: breaking point, spike recovery, or drift and leaks")
    p.add_argument("--run", type=positive(int, "run id"), required=True)
    p.add_argument("--window", type=positive(float, "window"), default="1", help="window length in seconds")
    p.add_argument(
        "--slo-p95-ms", type=positive(float, "SLO p95"), default=None, help="stress SLO (default: the run's)"
    )
    p.add_argument("--slo-error-rate", type=positive(float, "SLO error rate", zero_ok=True), default=None)
    p.add_argument("--cores", type=positive(int, "cores"), default=None, help="CPU cores of the target (default: all)")
    p.add_argument("--json", action="store_true", help="print the analysis as one JSON object")
    db(p)
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(ns: argparse.Namespace) -> int:
    """`benchlab analyze --run ID`."""
    from benchlab.runners.analysis.stress import Limits
    from benchlab.runners.commands import open_store
    from benchlab.runners.report import analysis as report

    limits = None
    if ns.slo_p95_ms is not None or ns.slo_error_rate is not None or ns.cores is not None:
        limits = Limits(
            p95_ms=ns.slo_p95_ms if ns.slo_p95_ms is not None else Limits.p95_ms,
            error_rate=ns.slo_error_rate if ns.slo_error_rate is not None else Limits.error_rate,
            cores=ns.cores or os.cpu_count() or 1,
        )
    store = open_store(ns)
    try:
        analysis = analyze_run(store, ns.run, window_s=ns.window, limits=limits)
    finally:
        store.close()
    print(json.dumps(report.analysis_json(analysis)) if ns.json else report.analysis_text(analysis))
    return 0


def after_run(spec: Any, runs: Sequence[tuple[str, int]]) -> None:
    """Print the breaking point of every completed stress run of `benchlab run` (never changes its exit code)."""
    stress = [run_id for test_type, run_id in runs if test_type == "stress"]
    if not stress:
        return  # before the imports: the stress analysis brings scipy, ~1 s of CPU that other runs need not pay
    from benchlab.metrics.store.database import Store
    from benchlab.runners.analysis.stress import Limits
    from benchlab.runners.report import analysis as report

    shape = spec.shape
    limits = Limits(p95_ms=shape.slo_p95_ms, error_rate=shape.slo_error_rate, cores=os.cpu_count() or 1)
    store = Store(settings=spec.store).open()
    try:
        for run_id in stress:
            try:
                run = store.get_run(run_id)
                if run is None:
                    continue
                result, _ = load_breaking_point(store, run, limits=limits)
                print(report.analysis_text(RunAnalysis(run=run, kind="breaking_point", result=result, source="run")))
            except (BadInput, ValueError) as exc:
                print(f"benchlab: no breaking point for run {run_id}: {exc}", file=sys.stderr)
    finally:
        store.close()
    sys.stdout.flush()
