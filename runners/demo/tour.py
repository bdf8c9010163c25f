"""`benchlab demo`: start the demo target at 1.0 and 1.1, run the same short baseline against each, compare."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from benchlab.metrics.settings import RunMeta
from benchlab.metrics.store.database import Store, StoreUnavailable
from benchlab.metrics.store.stats import EndpointStats
from benchlab.runners.errors import EXIT_OK, RunFailed
from benchlab.runners.report.table import table
from benchlab.runners.run import RunResult, free_port, resolve_locustfile, run_once
from benchlab.runners.settings import DemoSettings, RunSpec, ShapeSettings
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
    finally:
        store.close()
    print(changes(results[0].rows, results[1].rows, settings.versions))
    print(f"stored in {settings.store.url} as runs {results[0].totals.run_id} and {results[1].totals.run_id}")
    return EXIT_OK


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


def changes(base: list[EndpointStats], cand: list[EndpointStats], versions: tuple[str, str]) -> str:
    """Relative change of median, p95 and rps per endpoint, candidate against baseline."""
    old = {(r.name, r.method): r for r in base}
    lines = [
        f"change {versions[1]} vs {versions[0]} (positive latency change = slower)",
        f"{'Method':<7} {'Name':<46} {'median':>9} {'p95':>9} {'requests':>9}",
    ]
    for row in cand:
        prev = old.get((row.name, row.method))
        if prev is None:
            continue
        lines.append(
            f"{row.method or '':<7} {row.name or 'Aggregated':<46} {_pct(prev.p50_ms, row.p50_ms):>9}"
            f" {_pct(prev.p95_ms, row.p95_ms):>9} {_pct(prev.requests, row.requests):>9}"
        )
    return "\n".join(lines)


def _pct(before: float, after: float) -> str:
    return f"{100 * (after - before) / before:+.1f}%" if before else "n/a"
