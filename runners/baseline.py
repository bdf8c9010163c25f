"""Baseline files in the seed framework's format: built from a stored run, written, read back, and judged.

`benchlab export --baseline-json`, `benchlab run --results-dir DIR`, `benchlab compare --baseline-file A --file B`,
`--operation NAME` and the Python API (`benchlab.BaselineCollector`) all come through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store, StoreUnavailable
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.stats import EndpointStats
from benchlab.metrics.store.timeline import error_counts
from benchlab.metrics.store.window import window_rows
from benchlab.runners.analysis import baseline as fmt
from benchlab.runners.analysis.compare import Comparison, Settings, compare
from benchlab.runners.analysis.series import BUCKETS_PER_E, MIN_MS
from benchlab.runners.analysis.slo import Check, check
from benchlab.runners.errors import BadInput, RunFailed
from benchlab.runners.settings import JudgeSettings

FROM_FILES = (
    "judged from baseline files: point estimates from the timeline's 2% histograms, not exact samples; "
    "one run a side, so no run-to-run noise; nothing stored"
)


def _utc(ts: datetime) -> datetime:
    """Store times as aware UTC (SQLite hands them back naive)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def operation_of(run: Run) -> str:
    """The seed's operation name of a run, with its test type: `content_generation_baseline`."""
    return f"{fmt.operation_name(run.scenario)}_{run.test_type}"


def build(store: Store, run_id: int) -> dict[str, Any]:
    """The baseline of a stored run: exactly the seed's fields, exact statistics, the 1 s timeline and errors."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"run {run_id} not found in {store.settings.url}")
    rows = endpoint_stats(store, run_id)
    total = next((r for r in rows if r.is_total), None)
    started = _utc(run.started_at)
    if run.ended_at is not None:
        duration = (_utc(run.ended_at) - started).total_seconds()
    else:
        duration = float(run.planned_duration_s or 0.0)
    rps = run.rps if run.rps is not None else (total.requests / duration if total and duration > 0 else 0.0)
    windows = window_rows(store, [run_id], window_s=1.0, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS)
    errors = [
        {"endpoint": e.name, "method": e.method, "error": e.message, "count": e.count}
        for e in error_counts(store, [run_id])
    ]
    values = {
        "operation": operation_of(run),
        "environment": run.environment,
        "version": run.app_version,
        "timestamp": started.isoformat(timespec="seconds"),
        "response_time_mean": total.mean_ms if total else 0.0,
        "response_time_median": total.p50_ms if total else 0.0,
        "response_time_p95": total.p95_ms if total else 0.0,
        "response_time_p99": total.p99_ms if total else 0.0,
        "response_time_max": total.max_ms if total else 0.0,
        "requests_per_second": round(float(rps), 3),
        "concurrent_users": run.users,
        "total_requests": total.requests if total else 0,
        "error_rate": total.error_rate if total else 0.0,
        "error_count": total.failures if total else 0,
        "test_duration": round(duration, 3),
        "raw_data": {
            "endpoints": {f"{r.method} {r.name}": _endpoint(r, duration) for r in rows if not r.is_total},
            "timeline": fmt.timeline(windows, 1.0),
            "errors": errors,
        },
    }
    return {key: values[key] for key in fmt.FIELDS}


def _endpoint(row: EndpointStats, duration: float) -> dict[str, Any]:
    return {
        "name": row.name,
        "method": row.method,
        "requests": row.requests,
        "failures": row.failures,
        "error_rate": row.error_rate,
        "requests_per_second": round(row.requests / duration, 3) if duration > 0 else 0.0,
        "response_time_mean": row.mean_ms,
        "response_time_median": row.p50_ms,
        "response_time_p95": row.p95_ms,
        "response_time_p99": row.p99_ms,
        "response_time_min": row.min_ms,
        "response_time_max": row.max_ms,
        "status_codes": dict(row.status_counts),
    }


def write(data: dict[str, Any], path: Path) -> Path:
    """Write a baseline as JSON (through a temp file, renamed when complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def path_for(results_dir: Path, data: dict[str, Any], run_id: int) -> Path:
    """`DIR/<test type>/<operation>_<test type>_<YYYYmmdd_HHMMSS>.json`; `_run<ID>` added if that name is taken."""
    operation, test_type = fmt.split_operation(str(data["operation"]))
    test_type = test_type or "load"
    name = fmt.file_name(operation, test_type, datetime.fromisoformat(str(data["timestamp"])))
    path = results_dir / test_type / name
    return path.with_name(f"{path.stem}_run{run_id}.json") if path.exists() else path


def write_run(store: Store, run_id: int, results_dir: Path) -> Path:
    """Build and write one run's baseline under `results_dir`; the path written."""
    data = build(store, run_id)
    return write(data, path_for(results_dir, data, run_id))


def write_runs(settings: StoreSettings, run_ids: Sequence[int], results_dir: Path) -> list[Path]:
    """The baseline file of each run, for `run --results-dir` and the Python API."""
    if not run_ids:
        return []
    try:
        store = Store(settings=settings).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    try:
        return [write_run(store, run_id, results_dir) for run_id in run_ids]
    finally:
        store.close()


def read(path: Path) -> dict[str, Any]:
    """A baseline file, checked against the seed's fields; BadInput naming the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise BadInput(f"{path}: not JSON: {exc}") from None
    try:
        return fmt.validate(data, str(path))
    except fmt.BaselineError as exc:
        raise BadInput(str(exc)) from None


def runs_of_operation(store: Store, operation: str, *, days: float | None = None, limit: int = 1000) -> list[Run]:
    """Completed runs of an operation, newest first.

    `operation` is a seed name such as `content_generation_baseline` (the operation and its test type) or
    `content_generation` (every test type); a run matches by its scenario or the operation named after it.
    """
    name, test_type = fmt.split_operation(operation)
    t = Run.__table__.c
    query = select(Run.__table__).where(t.status == "completed")
    if test_type is not None:
        query = query.where(t.test_type == test_type)
    if days is not None:
        query = query.where(t.started_at >= datetime.now(UTC) - timedelta(days=days))
    query = query.order_by(t.started_at.desc(), t.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        runs = [Run(**row) for row in conn.execute(query).mappings()]
    return [r for r in runs if r.scenario == operation or name in (r.scenario, fmt.operation_name(r.scenario))]


@dataclass(frozen=True, kw_only=True)
class FileVerdict:
    """A comparison of two baseline files, shaped like `judge.Verdict` for `verdicts.render`."""

    comparison: Comparison
    checks: list[Check]
    baseline_label: str
    candidate_label: str
    comparison_id: int | None = None


def judge_files(judge: JudgeSettings, baseline_path: Path, candidate_path: Path) -> FileVerdict:
    """Two baseline files judged (see `judge_baselines`); nothing is stored."""
    base, cand = read(baseline_path), read(candidate_path)
    labels = f"{base['version']} ({baseline_path.name})", f"{cand['version']} ({candidate_path.name})"
    return judge_baselines(judge, base, cand, labels=labels)


def judge_baselines(
    judge: JudgeSettings, base: dict[str, Any], cand: dict[str, Any], *, labels: tuple[str, str] | None = None
) -> FileVerdict:
    """Two baselines judged by the windowed bootstrap when both timelines have histograms, else the change only
    (inconclusive); the candidate's SLO checks on its totals."""
    sides = fmt.side(base, warmup=judge.warmup), fmt.side(cand, warmup=judge.warmup)
    if sides[0] is not None and sides[1] is not None:
        settings = Settings(replicates=judge.replicates, seed=judge.seed)
        comparison = compare(sides[0], sides[1], judge.thresholds, settings)
        comparison = replace(comparison, warnings=(*comparison.warnings, FROM_FILES))
    else:
        comparison = fmt.change_only(base, cand, judge.thresholds)
    scenario = fmt.split_operation(str(cand["operation"]))[0]
    checks = check(judge.slos, fmt.observed(cand), scenario=scenario)
    base_label, cand_label = labels or (str(base["version"]), str(cand["version"]))
    return FileVerdict(comparison=comparison, checks=checks, baseline_label=base_label, candidate_label=cand_label)
