"""`benchlab calibrate`: N A/A runs of one version, and the run-to-run spread of every metric, stored."""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchlab.metrics.store.database import Store, StoreUnavailable
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import runs_by_id
from benchlab.metrics.store.verdict import save_noise_floors
from benchlab.runners.analysis.noise import Floor, floors
from benchlab.runners.errors import EXIT_OK, BadInput, RunFailed
from benchlab.runners.judge import evidence
from benchlab.runners.report.table import table
from benchlab.runners.run import run_once
from benchlab.runners.settings import RunSpec
from benchlab.runners.swarm import load_users


def calibrate(spec: RunSpec, repeats: int) -> tuple[list[Run], list[Floor]]:
    """Run the spec `repeats` times, then measure and store each metric's spread across the runs."""
    users = load_users(spec.locustfile, spec.meta.user_classes)
    try:
        store = Store(settings=spec.store).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    try:
        ids = []
        for i in range(repeats):
            result = run_once(
                replace(spec, meta=replace(spec.meta, tags=spec.meta.tags | {"calibration": str(i + 1)})), users, store
            )
            print(table(result.rows, result.totals), flush=True)
            if result.exit_code != EXIT_OK:
                raise RunFailed(f"calibration run {i + 1} of {repeats} did not complete ({result.totals.status})")
            ids.append(result.totals.run_id)
        runs = runs_by_id(store, ids)
        found = floors([_metrics(store, run, spec) for run in runs])
        save_noise_floors(store, [_row(f, runs, spec) for f in found])
    finally:
        store.close()
    return runs, found


def _metrics(store: Store, run: Run, spec: RunSpec) -> dict[tuple[str, str], dict[str, float]]:
    window_s = spec.judge.window_s if spec.judge else 1.0
    side = evidence(store, [run], window_s, spec.judge.warmup if spec.judge else 0.1)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, values in side.exact.items():
        series = side.runs[0].latency.get(key) if side.runs else None
        rps = series.requests / (series.windows * window_s) if series is not None and series.windows else float("nan")
        out[key] = dict(values) | {"rps": rps}
    return out


def _row(f: Floor, runs: list[Run], spec: RunSpec) -> dict[str, object]:
    return {
        "app_version": spec.meta.app_version,
        "scenario": spec.meta.scenario,
        "test_type": spec.meta.test_type,
        "endpoint": f.endpoint,
        "http_method": f.method,
        "metric": f.metric,
        "subject": None,
        "change_kind": f.change_kind,
        "runs": f.runs,
        "run_ids": [r.id for r in runs],
        "mean_value": f.mean_value,
        "spread": f.spread,
    }


def report(found: list[Floor], version: str) -> str:
    """The floors as a table: one line per endpoint and metric."""
    lines = [f"noise floor of {version}: run-to-run spread (1 sd) over {found[0].runs if found else 0} A/A runs"]
    lines.append(f"{'Endpoint':<40} {'Metric':<11} {'Mean':>10} {'Spread':>9}")
    for f in found:
        where = f"{f.method} {f.endpoint}".strip() or "Aggregated"
        spread = f"{f.spread:.2%}" if f.change_kind == "relative" else f"±{f.spread:.4f}"
        lines.append(f"{where:<40} {f.metric:<11} {f.mean_value:>10.4g} {spread:>9}")
    return "\n".join(lines)


def cmd_calibrate(ns: argparse.Namespace) -> int:
    """`benchlab calibrate --version B --runs N ...` with the flags of `run`."""
    from benchlab.runners.cli import build_run_spec

    if ns.repeats < 2:
        raise BadInput(f"--runs must be >= 2 for a spread (3 or more recommended), got {ns.repeats}")
    if ns.test_type == "complete":
        raise BadInput("calibrate one test type at a time, not complete")
    spec = build_run_spec(ns)
    _, found = calibrate(spec, ns.repeats)
    print(report(found, spec.meta.app_version))
    return EXIT_OK
