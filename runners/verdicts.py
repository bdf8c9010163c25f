"""`benchlab compare`, the gate after `benchlab run`, and their flags (parsed here into `JudgeSettings`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlab.runners.errors import EXIT_OK, BadInput, RunFailed, gate_exit
from benchlab.runners.settings import JudgeSettings, RunSpec

TRUE = ("1", "true", "yes", "on")


def _flag_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE


def add_judge_flags(p: argparse.ArgumentParser, *, for_run: bool) -> None:
    """Flags shared by `compare` and `run`: baseline, thresholds, SLOs and the gate."""
    p.add_argument("--baseline-version", default=os.environ.get("BASELINE_VERSION") or None, help="(BASELINE_VERSION)")
    p.add_argument("--thresholds", type=Path, default=None, help="regression thresholds JSON (// comments allowed)")
    p.add_argument("--slo", type=Path, default=None, help="success criteria JSON (default: the seed's table)")
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        default=_flag_env("FAIL_ON_REGRESSION"),
        help="exit 3 on a regression or an SLO breach (FAIL_ON_REGRESSION=true)",
    )
    p.add_argument("--fail-on-inconclusive", action="store_true", help="inconclusive gating metrics fail too")
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--window", type=float, default=1.0, help="window length in seconds (default 1)")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of each run left out as warm-up (default 0.1)")
    p.add_argument("--no-save", action="store_true", help="do not store the comparison")
    dest = "baseline_runs_n" if for_run else "runs"
    p.add_argument(
        "--baseline-runs" if for_run else "--runs",
        dest=dest,
        type=int,
        default=1,
        help="latest completed runs pooled per version (default 1)",
    )


def judge_settings(ns: argparse.Namespace, **picked: Any) -> JudgeSettings:
    """JudgeSettings from parsed flags; BadInput naming a bad file, key or value."""
    from benchlab.runners.analysis.slo import DEFAULT_SLOS, SLOError, parse_slos
    from benchlab.runners.analysis.threshold import ThresholdError, Thresholds, parse_thresholds

    if ns.replicates < 100:
        raise BadInput(f"--replicates must be >= 100, got {ns.replicates}")
    if ns.window <= 0:
        raise BadInput(f"--window must be > 0, got {ns.window}")
    if not 0 <= ns.warmup < 0.9:
        raise BadInput(f"--warmup must be a fraction in [0, 0.9), got {ns.warmup}")
    try:
        thresholds = parse_thresholds(_read(ns.thresholds), ns.thresholds.name) if ns.thresholds else Thresholds()
        slos = parse_slos(_read(ns.slo), ns.slo.name) if ns.slo else DEFAULT_SLOS
    except (ThresholdError, SLOError) as exc:
        raise BadInput(str(exc)) from None
    return JudgeSettings(
        baseline_version=ns.baseline_version,
        thresholds=thresholds,
        slos=slos,
        window_s=ns.window,
        warmup=ns.warmup,
        replicates=ns.replicates,
        save=not ns.no_save,
        fail_on_regression=ns.fail_on_regression,
        fail_on_inconclusive=ns.fail_on_inconclusive,
        **picked,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def add_compare(sub: Any, db: Any, positive: Any) -> None:
    """The `compare` sub-command."""
    p = sub.add_parser("compare", help="judge a version against a baseline: intervals, verdicts, the gate")
    p.add_argument("--version", default=None, help="candidate version (its latest completed runs)")
    p.add_argument("--run", type=positive(int, "run id"), action="append", default=[], help="candidate run id")
    p.add_argument("--baseline-run", type=positive(int, "run id"), action="append", default=[], help="baseline run id")
    p.add_argument("--scenario", default=None)
    p.add_argument("--test-type", default=None)
    p.add_argument("--operation", default=None, help="seed operation: its latest run against the one before it")
    p.add_argument("--baseline-file", type=Path, default=None, help="baseline JSON file (seed format) as the baseline")
    p.add_argument("--file", type=Path, default=None, help="baseline JSON file (seed format) as the candidate")
    p.add_argument("--json", action="store_true", help="print the verdicts as one JSON object")
    p.add_argument("--format", choices=("table", "markdown"), default="table")
    add_judge_flags(p, for_run=False)
    db(p)
    p.set_defaults(handler=cmd_compare)


def selected(ns: argparse.Namespace) -> JudgeSettings:
    """JudgeSettings of `compare` and `report`: their run-selection flags plus the judging flags."""
    return judge_settings(
        ns,
        version=ns.version,
        candidate_runs=tuple(ns.run),
        baseline_runs=tuple(ns.baseline_run),
        scenario=ns.scenario,
        test_type=ns.test_type,
        runs=ns.runs,
    )


def cmd_compare(ns: argparse.Namespace) -> int:
    """`benchlab compare`: select, judge, print, store; exit 3 when the gate is on and anything failed."""
    from benchlab.runners.commands import open_store
    from benchlab.runners.judge import judge_runs, select

    if ns.runs < 1:
        raise BadInput(f"--runs must be >= 1, got {ns.runs}")
    if ns.file or ns.baseline_file:
        return _compare_files(ns)
    if ns.operation:
        return _compare_operation(ns)
    if not (ns.run or ns.version):
        raise BadInput("nothing to compare: pass --version V or --run ID")
    if not (ns.baseline_run or ns.baseline_version):
        raise BadInput("no baseline: pass --baseline-version B (BASELINE_VERSION) or --baseline-run ID")
    judge = selected(ns)
    store = open_store(ns)
    try:
        verdict = judge_runs(store, judge, select(store, judge))
    finally:
        store.close()
    return render(verdict, judge, as_json=ns.json, fmt=ns.format)


def _compare_files(ns: argparse.Namespace) -> int:
    """`compare --baseline-file A.json --file B.json`: two baseline files, judged without the store."""
    from benchlab.runners.baseline import judge_files

    if not (ns.file and ns.baseline_file):
        raise BadInput("comparing files takes both --baseline-file A.json and --file B.json")
    judge = judge_settings(ns)
    return render(judge_files(judge, ns.baseline_file, ns.file), judge, as_json=ns.json, fmt=ns.format)


def _compare_operation(ns: argparse.Namespace) -> int:
    """`compare --operation NAME` (the seed's `--type compare`): the latest run against the one before it."""
    from benchlab.runners.baseline import runs_of_operation
    from benchlab.runners.commands import open_store
    from benchlab.runners.judge import judge_runs, select

    store = open_store(ns)
    try:
        runs = runs_of_operation(store, ns.operation)
        latest = runs[0] if runs else None
        before = [r for r in runs[1:] if latest and (r.scenario, r.test_type) == (latest.scenario, latest.test_type)]
        if latest is None or not before:
            raise BadInput(f"operation {ns.operation!r} has {len(runs)} completed run(s) to compare; it needs two")
        judge = judge_settings(ns, candidate_runs=(latest.id,), baseline_runs=(before[0].id,))
        verdict = judge_runs(store, judge, select(store, judge))
    finally:
        store.close()
    return render(verdict, judge, as_json=ns.json, fmt=ns.format)


def render(verdict: Any, judge: JudgeSettings, *, as_json: bool, fmt: str = "table") -> int:
    """Print a verdict and its SLO checks; failures go to stderr; returns the exit code of the gate."""
    from benchlab.runners.analysis.gate import evaluate
    from benchlab.runners.report import verdict as report

    gate = evaluate(verdict.comparison, verdict.checks, fail_on_inconclusive=judge.fail_on_inconclusive)
    base, cand = verdict.baseline_label, verdict.candidate_label
    if as_json:
        print(
            json.dumps(
                report.as_json(
                    verdict.comparison,
                    verdict.checks,
                    baseline=base,
                    candidate=cand,
                    comparison_id=verdict.comparison_id,
                )
                | {"gate_failed": gate.failed}
            )
        )
    else:
        if verdict.comparison is not None:
            render_fn = report.markdown if fmt == "markdown" else report.table
            print(render_fn(verdict.comparison, base, cand))
        for line in report.slo_lines(verdict.checks):
            print(line)
    for line in gate.failures:
        print(f"benchlab: {line}", file=sys.stderr)
    sys.stdout.flush()
    return gate_exit(gate.failed, enabled=judge.fail_on_regression)


def check_baseline(spec: RunSpec) -> None:
    """Before a gated run starts: its baseline version must have completed runs (BadInput lists the versions)."""
    from benchlab.metrics.store.database import Store, StoreUnavailable
    from benchlab.metrics.store.query import versions

    judge = spec.judge
    if judge is None or judge.baseline_version is None:
        return
    try:
        store = Store(settings=spec.store).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    try:
        known = versions(store, scenario=spec.meta.scenario)
    finally:
        store.close()
    if judge.baseline_version not in known:
        listed = ", ".join(known) if known else "none"
        raise BadInput(
            f"unknown baseline version {judge.baseline_version!r} for scenario {spec.meta.scenario}; "
            f"versions with completed runs: {listed}"
        )


def judge_after_run(spec: RunSpec, run_ids: list[int]) -> int:
    """SLO checks of each finished run, and its comparison with the baseline version; the gate's exit code."""
    from benchlab.metrics.store.database import Store
    from benchlab.runners.judge import judge_runs, select

    if spec.judge is None or not run_ids:
        return EXIT_OK
    code = EXIT_OK
    store = Store(settings=spec.store).open()
    try:
        for run_id in run_ids:
            judge = replace(spec.judge, candidate_runs=(run_id,), scenario=None, test_type=None)
            verdict = judge_runs(store, judge, select(store, judge))
            code = max(code, render(verdict, judge, as_json=False))
    finally:
        store.close()
    return code
