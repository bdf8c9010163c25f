"""`benchlab report` and the report after `benchlab run`: read the store into `ReportData`, render, write atomically.

The only place a report touches the store; everything is aggregated in SQL (windows, histograms, groups).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.timeline import backlog_rows, error_counts, history, latest_of_type
from benchlab.metrics.store.window import queue_rows, resource_rows, window_blocks
from benchlab.runners.analysis.series import BUCKETS_PER_E, MIN_MS, block_series, hist_percentiles, value_series
from benchlab.runners.errors import EXIT_OK, BadInput
from benchlab.runners.judge import judge_runs, select
from benchlab.runners.report import guidance
from benchlab.runners.report.data import (
    Capacity,
    Distribution,
    EndpointRow,
    ErrorGroup,
    HistoryPoint,
    Mark,
    ReportData,
    RunInfo,
    Section,
    StepLoad,
    Timeline,
    ValueTrack,
)
from benchlab.runners.settings import JudgeSettings

MAX_POINTS = 600
"""Charts have at most about this many windows per run: longer runs get longer windows."""
HISTORY_DAYS = 30
STAGE_KINDS = ("stage", "stress_step", "slo_break", "spike_start", "spike_end", "soak_checkpoint")
DEFAULT_REPORT_DIR = Path("results/reports")
JUDGE_DEFAULTS = {"replicates": 2000, "window": 1.0, "warmup": 0.1, "no_save": True}
JUDGE_DEFAULTS |= {"fail_on_regression": False, "fail_on_inconclusive": False}
"""What `judge_settings` reads that `report` has no flag for: a report judges like `compare`, stores nothing."""


def _epoch(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _duration(run: Run) -> float:
    if run.ended_at is not None:
        return max(0.0, _epoch(run.ended_at) - _epoch(run.started_at))
    return float(run.planned_duration_s or 0.0)


RUN_KEYS: tuple[str, ...] = ("scenario", "test_type", "app_version", "environment", "host", "users", "workers")
RUN_KEYS += ("status", "git_commit", "benchlab_version", "locustfile")


def run_info(run: Run) -> RunInfo:
    """A stored run's metadata, as plain data."""
    started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
    fields = {k: getattr(run, k) for k in RUN_KEYS}
    return RunInfo(run_id=run.id, started_at=started.isoformat(), duration_s=_duration(run), **fields)


def build(store: Store, judge: JudgeSettings, *, days: int = HISTORY_DAYS) -> ReportData:
    """Everything a report shows, for the runs `judge` selects (a comparison when it names a baseline)."""
    selection = select(store, judge)
    cand, base = selection.candidate, selection.baseline
    seconds = sum(_duration(r) for r in cand)
    first = cand[0]
    notes: list[str] = []
    # Postgres does the heavy lifting, one backend per read: the verdict, the charts and the analysis at once.
    with ThreadPoolExecutor(max_workers=4 if store.is_postgres else 1) as pool:
        judged = pool.submit(judge_runs, store, judge, selection)
        charts = [pool.submit(_timeline, store, runs[0], _label(runs)) for runs in (cand, base) if runs]
        endpoints = pool.submit(_endpoints, store, [r.id for r in cand], seconds)
        sections = pool.submit(_sections, store, first, notes)
        verdict = judged.result()
        timelines, dists = [], []
        for runs, chart in zip([r for r in (cand, base) if r], charts, strict=True):
            tl, dist = chart.result()
            timelines.append(tl)
            dists.append(dist if len(runs) == 1 else _distribution(store, runs, tl))
    points = _history(store, first, days)
    title = f"{first.scenario}: {verdict.candidate_label}" + (
        f" against {verdict.baseline_label}" if base else f" ({first.test_type} run {first.id})"
    )
    return ReportData(
        title=title,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        candidate=tuple(run_info(r) for r in cand),
        baseline=tuple(run_info(r) for r in base),
        candidate_label=verdict.candidate_label,
        baseline_label=verdict.baseline_label,
        endpoints=endpoints.result(),
        comparison=verdict.comparison,
        checks=tuple(verdict.checks),
        timelines=tuple(timelines),
        distributions=tuple(dists),
        resources=_resources(store, [r for side in (cand[:1], base[:1]) for r in side]),
        errors=tuple(
            ErrorGroup(endpoint=e.name, method=e.method, message=e.message, count=e.count)
            for e in error_counts(store, [r.id for r in cand])
        ),
        history=points,
        change_points=_change_points(points, notes),
        capacity=_capacity(store, first, notes),
        sections=sections.result(),
        notes=tuple(notes),
    )


def _label(runs: Sequence[Run]) -> str:
    return "+".join(sorted({r.app_version for r in runs}))


def chart_window(duration_s: float) -> float:
    """Window length of a run's charts: 1 s, or longer so that a run has at most about MAX_POINTS windows."""
    return float(max(1, math.ceil(duration_s / MAX_POINTS)))


def _timeline(store: Store, run: Run, version: str) -> tuple[Timeline, Distribution]:
    window_s = chart_window(_duration(run))
    blocks = window_blocks(store, [run.id], window_s=window_s, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS)
    start = _epoch(run.started_at)
    marks = _marks(store, run.id, start)
    users = tuple(m for m in marks if m.kind in ("start", "users", "stop") and m.users is not None)
    stages = tuple(m for m in marks if m.kind in STAGE_KINDS)
    series = block_series(blocks, window_s).get(run.id, {}).get(("", ""))
    if series is None:
        empty = Timeline(
            run_id=run.id, version=version, window_s=window_s, t=(), p50=(), p95=(), p99=(), rps=(), fails=()
        )
        return replace(empty, users=users, stages=stages), Distribution(version=version, lower_ms=(), counts=())
    first = min(int(b.window.min()) for b in blocks)
    pct = hist_percentiles(series.hist, series.buckets, (0.5, 0.95, 0.99))
    timeline = Timeline(
        run_id=run.id,
        version=version,
        window_s=window_s,
        t=tuple(float(x) for x in (first + np.arange(series.windows)) * window_s - start),
        p50=tuple(pct[:, 0].tolist()),
        p95=tuple(pct[:, 1].tolist()),
        p99=tuple(pct[:, 2].tolist()),
        rps=tuple((series.counts / window_s).tolist()),
        fails=tuple((series.failures / window_s).tolist()),
        users=users,
        stages=stages,
    )
    counts = series.hist.sum(axis=0)
    dist = Distribution(
        version=version,
        lower_ms=tuple(np.exp(series.buckets / BUCKETS_PER_E).tolist()),
        counts=tuple(counts.tolist()),
    )
    return timeline, dist


def _distribution(store: Store, runs: Sequence[Run], tl: Timeline) -> Distribution:
    """The pooled histogram of several runs (one SQL aggregation with windows as long as the charts')."""
    ids = [r.id for r in runs]
    totals: dict[int, float] = {}
    for blk in window_blocks(store, ids, window_s=tl.window_s, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS):
        for bucket, count in zip(blk.bucket.tolist(), blk.requests.tolist(), strict=True):
            totals[bucket] = totals.get(bucket, 0.0) + count
    buckets = sorted(totals)
    lower = tuple(math.exp(b / BUCKETS_PER_E) for b in buckets)
    return Distribution(version=tl.version, lower_ms=lower, counts=tuple(totals[b] for b in buckets))


def _marks(store: Store, run_id: int, start: float) -> list[Mark]:
    return [
        Mark(t=_epoch(e["ts"]) - start, kind=str(e["kind"]), message=str(e["message"] or ""), users=e["user_count"])
        for e in store.events(run_id)
    ]


def _endpoints(store: Store, ids: list[int], seconds: float) -> tuple[EndpointRow, ...]:
    keys = ("name", "method", "requests", "failures", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    return tuple(
        EndpointRow(**{k: getattr(s, k) for k in keys}, rps=s.requests / seconds if seconds > 0 else 0.0)
        for s in endpoint_stats(store, ids)
    )


def _resources(store: Store, runs: Sequence[Run]) -> tuple[ValueTrack, ...]:
    out: list[ValueTrack] = []
    for run in runs:
        window_s = chart_window(_duration(run))
        start = _epoch(run.started_at)
        sources: list[tuple[str, Any]] = [
            (m, resource_rows(store, [run.id], window_s=window_s, column=m)) for m in ("cpu_percent", "rss_bytes")
        ]
        sources += [("queue_length", queue_rows(store, [run.id], window_s=window_s))]
        sources += [("backlog_age_s", backlog_rows(store, [run.id], window_s=window_s))]
        for metric, rows in sources:
            windows: dict[str, list[float]] = {}
            for _, label, w, _v in rows:
                windows.setdefault(label, []).append(w * window_s - start)
            for label, series in value_series(rows, window_s).get(run.id, {}).items():
                values = tuple(series.values.tolist())
                t = tuple(windows[label])
                track = ValueTrack(
                    metric=metric, subject=label, version=run.app_version, run_id=run.id, t=t, values=values
                )
                out.append(track)
    return tuple(out)


def _history(store: Store, run: Run, days: int) -> tuple[HistoryPoint, ...]:
    since = datetime.now(UTC) - timedelta(days=days)
    return tuple(
        HistoryPoint(
            run_id=h.run_id,
            version=h.app_version,
            started_at=datetime.fromtimestamp(_epoch(h.started_at), UTC).isoformat(timespec="seconds"),
            p95_ms=h.p95_ms,
            rps=h.rps,
            error_rate=h.error_rate,
        )
        for h in history(store, scenario=run.scenario, test_type=run.test_type, since=since)
    )


def _optional(module: str) -> Any | None:
    """A module that another part of benchlab may not have (yet): the report shows its section only if it does."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _change_points(points: Sequence[HistoryPoint], notes: list[str]) -> tuple[int, ...] | None:
    trend = _optional("benchlab.runners.analysis.trend")
    find: Callable[[Sequence[float]], Any] | None = getattr(trend, "change_points", None)
    if find is None:
        notes.append("change points of the version history: the trend analysis (runners.analysis.trend) is pending")
        return None
    values = [p.p95_ms if p.p95_ms is not None else math.nan for p in points]
    if any(math.isnan(v) for v in values):
        return ()
    return tuple(int(cp[0] if isinstance(cp, tuple) else cp.index) for cp in find(values))


def _capacity(store: Store, run: Run, notes: list[str]) -> Capacity | None:
    """From the last stress run: the breaking-point analysis when there is one, else the steps' second halves."""
    stress = run if run.test_type == "stress" else latest_of_type(store, scenario=run.scenario, test_type="stress")
    if stress is None:
        return None
    analyses = _optional("benchlab.runners.analyses")
    if analyses is None:
        tl, _ = _timeline(store, stress, stress.app_version)
        return guidance.capacity(stress.id, stress.app_version, tl)
    try:
        bp, _source = analyses.load_breaking_point(store, stress)
    except Exception as exc:  # an analysis that cannot be made leaves its section out, with a note
        notes.append(f"capacity from stress run {stress.id}: {exc}")
        return None
    ok = bp.last_ok.index if bp.last_ok is not None else -1
    steps = tuple(
        StepLoad(users=r.users, rps=r.rps, p95_ms=r.p95_ms, error_rate=r.error_rate, sustained=r.index <= ok)
        for r in bp.steps
    )
    breach = "; ".join(bp.broken.broke) or f"step {bp.broken.index}" if bp.broken is not None else None
    return Capacity(run_id=stress.id, version=stress.app_version, steps=steps, breach=breach)


TITLES = {"breaking_point": "Breaking point", "spike": "Spike recovery", "drift": "Drift and leaks (soak slopes)"}


def _sections(store: Store, run: Run, notes: list[str]) -> tuple[Section, ...]:
    """The analysis of the run's test type (breaking point and USL, spike recovery, soak slopes), when available."""
    analyses = _optional("benchlab.runners.analyses")
    text = _optional("benchlab.runners.report.analysis")
    if analyses is None or text is None:
        notes.append("breaking point, spike recovery and soak slopes: pending their analyses (runners.analyses)")
        return ()
    try:
        found = analyses.analyze_run(store, run.id)
    except Exception as exc:  # wrong test type, too short a run: a note, not a failed report
        notes.append(f"analysis of run {run.id}: {exc}")
        return ()
    lines = tuple(str(text.analysis_text(found)).splitlines()[1:])
    usl = getattr(found.result, "usl", None)
    if usl is None:
        return (Section(title=TITLES.get(found.kind, found.kind), lines=lines),)
    top = max(n for n, _ in usl.measured) * 1.5
    grid = [1 + i * (top - 1) / 60 for i in range(61)]
    curve = tuple((n, usl.lam * n / (1 + usl.sigma * (n - 1) + usl.kappa * n * (n - 1))) for n in grid)
    points = tuple((float(n), float(x)) for n, x in usl.measured)
    labels = {"x_label": "users", "y_label": "requests/s (USL model: line)"}
    return (Section(title=TITLES["breaking_point"], lines=lines, points=points, curve=curve, **labels),)


# ------------------------------------------------------------------------------------------------ the CLI


def add_report(sub: Any, db: Callable[[argparse.ArgumentParser], None], positive: Any) -> None:
    """The `report` sub-command."""
    p = sub.add_parser("report", help="HTML, Markdown, notebook, JUnit XML or JSON report of a run or a comparison")
    p.add_argument("--run", type=positive(int, "run id"), action="append", default=[], help="candidate run id")
    p.add_argument("--version", default=None, help="candidate version (its latest completed runs)")
    p.add_argument("--baseline-version", default=None, help="compare with this version's latest runs")
    p.add_argument("--baseline-run", type=positive(int, "run id"), action="append", default=[], help="baseline run id")
    p.add_argument("--scenario", default=None)
    p.add_argument("--test-type", default=None)
    p.add_argument("--runs", type=positive(int, "runs"), default="1", help="latest completed runs per version")
    p.add_argument("--format", default="html", help="comma-separated: html, md, ipynb, junit, json (default html)")
    p.add_argument("--out", type=Path, default=DEFAULT_REPORT_DIR, help=f"directory (default {DEFAULT_REPORT_DIR})")
    p.add_argument("--days", type=positive(int, "days"), default=str(HISTORY_DAYS), help="trend window in days")
    p.add_argument("--thresholds", type=Path, default=None, help="regression thresholds JSON")
    p.add_argument("--slo", type=Path, default=None, help="success criteria JSON (default: the seed's table)")
    p.set_defaults(handler=cmd_report, **JUDGE_DEFAULTS)
    db(p)


def cmd_report(ns: argparse.Namespace) -> int:
    """`benchlab report`: check the input, read the store, write every format; print the paths."""
    from benchlab.runners.commands import open_store
    from benchlab.runners.report import markdown, output, summary_ci
    from benchlab.runners.verdicts import selected

    if not (ns.run or ns.version):
        raise BadInput("nothing to report: pass --run ID or --version V")
    try:
        formats = output.parse_formats(ns.format)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if ns.out.exists() and not ns.out.is_dir():
        raise BadInput(f"cannot write reports to {ns.out}: not a directory")
    judge = selected(ns)
    store = open_store(ns)
    try:
        data = build(store, judge, days=ns.days)
    finally:
        store.close()
    try:
        paths = output.write(data, formats, ns.out, db_url=store.settings.url, days=ns.days)
    except OSError as exc:
        raise BadInput(f"cannot write reports to {ns.out}: {exc.strerror or exc}") from None
    summary_ci.append(markdown.render(data, days=ns.days))
    for path in paths:
        print(path)
    return EXIT_OK


def report_after_run(
    store_settings: StoreSettings, judge: JudgeSettings | None, run_ids: Sequence[int], out_dir: Path
) -> list[Path]:
    """The HTML report of each finished run (against its baseline version when one is set); paths printed.

    A report that cannot be made is a warning on stderr: the run itself went fine.
    """
    from benchlab.runners.report import markdown, output, summary_ci

    paths: list[Path] = []
    base = judge or JudgeSettings()
    store = Store(settings=store_settings).open()
    try:
        for run_id in run_ids:
            settings = replace(base, candidate_runs=(run_id,), scenario=None, test_type=None, save=False)
            try:
                data = build(store, settings)
                paths += output.write(data, ("html",), out_dir, db_url=store.settings.url)
                summary_ci.append(markdown.render(data))
            except Exception as exc:  # a report is a by-product: never fail the run for it
                print(f"benchlab: report of run {run_id} not written: {exc}", file=sys.stderr)
    finally:
        store.close()
    for path in paths:
        print(f"report: {path}")
    return paths


def comparison_report(store: Store, baseline_run: int, candidate_run: int, out_dir: Path = DEFAULT_REPORT_DIR) -> Path:
    """The HTML report of one run against another (what `benchlab demo` ends with); its path."""
    from benchlab.runners.report import output

    judge = JudgeSettings(baseline_runs=(baseline_run,), candidate_runs=(candidate_run,), save=False)
    return output.write(build(store, judge), ("html",), out_dir, db_url=store.settings.url)[0]
