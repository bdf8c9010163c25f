"""`benchlab demo`: start the demo target at 1.0 and 1.1, run the same short baseline against each, judge 1.1."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from benchlab.metrics.settings import RunMeta
from benchlab.metrics.store.database import Store, StoreUnavailable
from benchlab.runners.analysis.verdict import REGRESSION
from benchlab.runners.errors import EXIT_OK, RunFailed
from benchlab.runners.judge import Verdict, judge_runs, select
from benchlab.runners.report import verdict as report
from benchlab.runners.report.table import table
from benchlab.runners.reporting import comparison_report
from benchlab.runners.run import RunResult, free_port, resolve_locustfile, run_once
from benchlab.runners.settings import DemoSettings, JudgeSettings, RunSpec, ShapeSettings
from benchlab.runners.swarm import load_users


def run_demo(settings: DemoSettings) -> int:
    """Both runs and the comparison; every process started here is stopped before returning."""
    path = resolve_locustfile(str(settings.locustfile))
    users = load_users(path, ())
    try:
        store = Store(settings=settings.store).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    results: list[RunResult] = []
    try:
        for version in settings.versions:
            with _target(version) as host:
                spec = _spec(settings, path, host, version)
                print(f"== {spec.meta.scenario} against demo target {version} ({host}) ==", flush=True)
                results.append(run_once(spec, users, store))
                print(table(results[-1].rows, results[-1].totals), flush=True)
                if results[-1].exit_code != EXIT_OK:
                    return results[-1].exit_code
        verdict = _verdict(store, results[0].totals.run_id, results[1].totals.run_id)
        report_path = comparison_report(store, results[0].totals.run_id, results[1].totals.run_id)
    finally:
        store.close()
    comparison = verdict.comparison
    if comparison is None:
        raise RunFailed("the demo's comparison has no baseline")
    print(report.table(comparison, *settings.versions, gating_only=True))
    regressed = sorted({r.endpoint for r in comparison.results if r.verdict == REGRESSION and r.gating and r.endpoint})
    print(f"regressed endpoints: {', '.join(regressed) if regressed else 'none'}")
    ids = f"{results[0].totals.run_id} and {results[1].totals.run_id}"
    print(f"stored in {settings.store.url} as runs {ids}; report: {report_path}")
    return EXIT_OK


def _verdict(store: Store, baseline_run: int, candidate_run: int) -> Verdict:
    """The verdict of the candidate run against the baseline run, with default thresholds and SLOs."""
    judge = JudgeSettings(baseline_runs=(baseline_run,), candidate_runs=(candidate_run,))
    return judge_runs(store, judge, select(store, judge))


def _spec(settings: DemoSettings, path: Path, host: str, version: str) -> RunSpec:
    meta = RunMeta(
        scenario=f"demo:{path.stem}",
        test_type="baseline",
        app_version=version,
        environment="demo",
        host=host,
        locustfile=str(path),
        user_classes=(),
        users=settings.users,
        spawn_rate=float(settings.users),
        planned_duration_s=settings.run_time,
        workers=0,
        tags={"demo": "true"},
    )
    shape = ShapeSettings(
        test_type="baseline", users=settings.users, spawn_rate=float(settings.users), run_time=settings.run_time
    )
    spec = RunSpec(meta=meta, locustfile=path, store=settings.store, shape=shape)
    return replace(spec, output=replace(spec.output, quiet=settings.quiet))


class _target:
    """`benchlab target --version V` on a free port, as a child process, for the duration of a block."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchlab.runners.cli", "target", "--version", self.version, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        host = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(host + "/health", timeout=1):
                    return host
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RunFailed(f"demo target {self.version} did not start")

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
