"""selfbench orchestration: options, lazily started nginx and temp database, one function per figure, the report."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import NoReturn

from benchlab.metrics.store.database import BadStoreUrl, first_line, parse_url
from benchlab.runners.selfbench import bigreport, gate, overhead, panels
from benchlab.runners.selfbench.database import copy_rates, synthetic_samples, temp_database
from benchlab.runners.selfbench.loads import LOCUSTFILE, Load, benchlab_run, exported_times
from benchlab.runners.selfbench.nginx import Nginx
from benchlab.runners.selfbench.report import Figure, MeasureError, json_line, relative_errors, table_line

FIGURES = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8")
"""Every figure --only accepts."""
_ORDER = ("P1", "P3", "P7", "P2", "P8", "P4", "P6", "P5")
"""Measuring order: the load runs first (P3 reuses P1's runs), then the store (COPY, compare, report), the sidecar."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Sizes of one selfbench invocation."""

    seconds: int
    """Length of each load run."""
    rounds: int
    """Interleaved rounds of the load runs (each layout once per round); figures are medians of per-round ratios."""
    samples: int
    """Synthetic samples written per P2 measurement."""
    sidecar_seconds: float
    """Length of the P5 sidecar measurement."""
    batch: int = 50_000
    """P2 batch size: one collector flush at ~5k rps x 0.5 s, capped at the collector's 50k."""
    users: int = 50
    """Users of the P1/P7 runs: FastHttpUser with no wait, enough to make one process CPU-bound."""
    compare_samples: int = 1_000_000
    """Samples of each of the two P8 runs."""
    compare_seconds: float = 300.0
    """Time the P8 runs' samples spread over (1M in 300 s: ~3.3k rps)."""
    compare_reps: int = 3
    """Measured `benchlab compare` invocations of P8; the median counts."""
    report_samples: int = 10_000_000
    """Samples of the P4 candidate run (10M in 300 s: ~33k rps)."""
    report_baseline: int = 1_000_000
    """Samples of the P4 baseline run (over the same time)."""
    report_seconds: float = 300.0
    """Time each P4 run's samples spread over."""
    report_reps: int = 3
    """Measured `benchlab report` (and `compare` alone) invocations of P4; the median counts."""
    panel_samples: int = 10_000_000
    """Samples of the P6 candidate run (10M in 40 min: ~4.2k rps)."""
    panel_baseline: int = 1_000_000
    """Samples of the P6 baseline run (in 10 min)."""
    panel_reps: int = 3
    """Executions of each dashboard query in P6; the median counts."""


FULL = Plan(seconds=15, rounds=5, samples=300_000, sidecar_seconds=20.0)
QUICK = Plan(
    seconds=5,
    rounds=1,
    samples=100_000,
    sidecar_seconds=5.0,
    compare_samples=100_000,
    compare_seconds=30.0,
    report_samples=1_000_000,
    report_baseline=100_000,
    report_seconds=30.0,
    panel_samples=1_000_000,
    panel_baseline=100_000,
)


@dataclass
class Bench:
    """Shared state of one invocation: the plan, a temp directory and resources started on first use."""

    plan: Plan
    tmp: Path
    stack: ExitStack
    db_url: str | None = None
    """An existing Postgres given by --db-url; a temp database is created when None."""
    p1_runs: list[Load] = field(default_factory=list)
    """benchlab runs of P1, reused by P3."""
    _host: str | None = None
    _db: str | None = None

    @property
    def locustfile(self) -> Path:
        """The temp Locust file (written on first use)."""
        path = self.tmp / "selfbench_locustfile.py"
        if not path.exists():
            path.write_text(LOCUSTFILE, encoding="utf-8")
        return path

    def host(self) -> str:
        """Base URL of the selfbench nginx, started on first use and stopped when the stack closes."""
        if self._host is None:
            nginx = Nginx(root=self.tmp / "nginx")
            self.stack.callback(nginx.stop)
            self._host = nginx.start()
        return self._host

    def db(self) -> str:
        """URL of the Postgres store: --db-url, or a temp database dropped when the stack closes."""
        if self._db is None:
            self._db = self.db_url or self.stack.enter_context(temp_database())
        return self._db

    def benchlab(self, users: int, workers: int) -> Load:
        """One `benchlab run` of the plan's length."""
        return benchlab_run(
            self.locustfile, self.host(), users, self.plan.seconds, workers=workers, db=self.db(), cwd=self.tmp
        )


def _say(message: str) -> None:
    print(f"selfbench: {message}", file=sys.stderr, flush=True)


def measure_p1(bench: Bench) -> list[Figure]:
    """P1, P1' and P7 from one set of interleaved rounds (see `overhead`); P3 reuses the Postgres runs."""
    plan = bench.plan
    setup = overhead.Setup(
        locustfile=bench.locustfile,
        host=bench.host(),
        users=plan.users,
        seconds=plan.seconds,
        postgres=bench.db(),
        tmp=bench.tmp,
    )
    rounds = overhead.run_rounds(setup, plan.rounds, _say)
    bench.p1_runs = [r["postgres/1"] for r in rounds]
    return overhead.figures(rounds, users=plan.users, seconds=plan.seconds)


def measure_p3(bench: Bench) -> list[Figure]:
    """Largest relative error of benchlab's p50/p95/p99 against numpy.percentile over the exported samples."""
    if bench.p1_runs:
        run = bench.p1_runs[len(bench.p1_runs) // 2]  # accuracy, not speed: any run will do
    else:
        _say(f"P3: benchlab run, {bench.plan.users} users, {bench.plan.seconds} s")
        run = bench.benchlab(bench.plan.users, workers=0)
    run_id = int(run.summary["run_id"])
    _say(f"P3: exporting run {run_id}")
    times = exported_times(run_id, bench.db(), cwd=bench.tmp)
    errors = relative_errors(run.summary, times)
    details = {
        "run_id": run_id,
        "samples": len(times),
        "errors": errors,
        "reported": {k: run.summary.get(k) for k in errors},
    }
    return [
        Figure(
            key="P3",
            label="max p50/p95/p99 error vs numpy",
            value=max(errors.values()),
            op="<=",
            goal=0.005,
            unit="percent",
            details=details,
        )
    ]


def measure_p2(bench: Bench) -> list[Figure]:
    """Samples per second `Store.write_samples` puts into Postgres: collector-sized batches, then one big batch."""
    plan = bench.plan
    _say(f"P2: {plan.samples:,} synthetic samples into Postgres, best of {plan.rounds} per batch size")
    rows = synthetic_samples(plan.samples)
    rates = copy_rates(bench.db(), rows, (plan.batch, len(rows)), repeats=plan.rounds, spool_dir=bench.tmp / "spool")
    figures = []
    for batch, key, label in (
        (plan.batch, "P2", f"samples/s into Postgres ({plan.batch // 1000}k batches)"),
        (len(rows), f"P2/{len(rows) // 1000}k", f"samples/s into Postgres (one {len(rows) // 1000}k batch)"),
    ):
        details = {"samples": len(rows), "batch": batch, "rates": [round(r) for r in rates[batch]]}
        figures.append(
            Figure(key=key, label=label, value=max(rates[batch]), op=">=", goal=150_000, unit="rate", details=details)
        )
    return figures


def measure_p8(bench: Bench) -> list[Figure]:
    """Wall time and peak RSS of `benchlab compare` on two stored runs; median (and min-max) of the repetitions."""
    plan = bench.plan
    return gate.measure(
        bench.db(),
        samples=plan.compare_samples,
        seconds=plan.compare_seconds,
        reps=plan.compare_reps,
        tmp=bench.tmp,
        say=_say,
    )


def measure_p4(bench: Bench) -> list[Figure]:
    """Wall time and peak RSS of `benchlab report --format html` (and of `compare` alone) on a 10M-sample run."""
    plan = bench.plan
    return bigreport.measure(
        bench.db(),
        samples=plan.report_samples,
        baseline=plan.report_baseline,
        seconds=plan.report_seconds,
        reps=plan.report_reps,
        tmp=bench.tmp,
        say=_say,
    )


def measure_p5(bench: Bench) -> list[Figure]:
    """CPU of the sidecar sampling 50 processes at 1 Hz, as a fraction of one core."""
    try:
        benchmark = importlib.import_module("benchlab.metrics.sidecar.daemon").sidecar_cpu_benchmark
    except (ImportError, AttributeError) as exc:
        raise MeasureError(f"benchlab.metrics.sidecar.daemon.sidecar_cpu_benchmark is not available: {exc}") from None
    _say(f"P5: sidecar sampling 50 processes for {bench.plan.sidecar_seconds:g} s")
    value = float(benchmark(processes=50, seconds=bench.plan.sidecar_seconds))
    return [
        Figure(
            key="P5",
            label="sidecar CPU, 50 processes at 1 Hz",
            value=value,
            op="<=",
            goal=0.01,
            unit="percent",
            details={"processes": 50, "seconds": bench.plan.sidecar_seconds},
        )
    ]


def measure_p6(bench: Bench) -> list[Figure]:
    """Every Grafana SQL query at its dashboard's defaults on a store holding a run of 10M samples: median ms."""
    plan = bench.plan
    return panels.measure(
        bench.db(),
        samples=plan.panel_samples,
        baseline=plan.panel_baseline,
        reps=plan.panel_reps,
        tmp=bench.tmp,
        say=_say,
    )


MEASURES: dict[str, Callable[[Bench], list[Figure]]] = {
    "P1": measure_p1,
    "P2": measure_p2,
    "P3": measure_p3,
    "P4": measure_p4,
    "P5": measure_p5,
    "P6": measure_p6,
    "P7": measure_p1,  # the same rounds: P7 is benchlab's scaling over Locust's, from P1's runs
    "P8": measure_p8,
}


def _figures(text: str) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(k.strip().upper() for k in text.split(",") if k.strip()))
    unknown = [k for k in keys if k not in FIGURES]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown figure {unknown[0] if unknown else text!r}; use {','.join(FIGURES)}")
    return keys


def _postgres(text: str) -> str:
    try:
        backend = parse_url(text).get_backend_name()
    except BadStoreUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if backend != "postgresql":
        raise argparse.ArgumentTypeError(f"--db-url must name a Postgres database, got {backend}")
    return text


def _rounds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rounds must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"rounds must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """--quick, --rounds, --only and --db-url."""
    parser = argparse.ArgumentParser(
        prog="python -m benchlab.runners.selfbench",
        description="Measure benchlab's own overhead; prints each figure with its goal.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument(
        "--rounds",
        type=_rounds,
        default=None,
        help="interleaved rounds of the load runs; figures are medians (default 5; quick 1)",
    )
    parser.add_argument("--only", type=_figures, default=FIGURES, help="figures to measure, e.g. P1,P3")
    parser.add_argument(
        "--db-url",
        type=_postgres,
        default=None,
        help="an existing Postgres to use instead of a temp database on 127.0.0.1:5432",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def measure(bench: Bench, keys: Sequence[str]) -> tuple[list[Figure], dict[str, str]]:
    """Measure `keys` in the fixed order; a figure that fails is reported with its reason, the others still run."""
    figures: list[Figure] = []
    missing: dict[str, str] = {}
    done: set[Callable[[Bench], list[Figure]]] = set()
    for key in (k for k in _ORDER if k in keys):
        if MEASURES[key] in done:
            continue
        done.add(MEASURES[key])
        try:
            figures += MEASURES[key](bench)
        except MeasureError as exc:
            missing[key] = str(exc)
        except Exception as exc:
            missing[key] = f"{type(exc).__name__}: {first_line(exc)}"
        if key in missing:
            _say(f"{key} not measured: {missing[key]}")
    return figures, missing


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table and the JSON line; 0 when every figure was measured (met or not), else 1."""
    opts = parse_args(argv)
    plan = QUICK if opts.quick else FULL
    plan = replace(plan, rounds=opts.rounds or plan.rounds)
    previous = signal.signal(signal.SIGTERM, _terminate)
    began, load_start = time.monotonic(), os.getloadavg()[0]
    if load_start > 0.5:
        _say(f"load average {load_start:.2f} at start: other processes share the CPU, figures will be noisy")
    try:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="benchlab-selfbench-")))
            bench = Bench(plan=plan, tmp=tmp, stack=stack, db_url=opts.db_url)
            figures, missing = measure(bench, opts.only)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for fig in figures:
        print(table_line(fig))
    for key, reason in missing.items():
        print(f"{key} not measured: {reason}")
    print(
        json_line(
            figures,
            missing,
            quick=opts.quick,
            seconds=plan.seconds,
            rounds=plan.rounds,
            cores=os.cpu_count(),
            store="given" if opts.db_url else "temp postgres",
            elapsed_s=round(time.monotonic() - began, 1),
            loadavg_1m=[round(load_start, 2), round(os.getloadavg()[0], 2)],
        )
    )
    sys.stdout.flush()
    return 1 if missing else 0
