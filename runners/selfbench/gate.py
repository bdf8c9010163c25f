"""P8: wall time and peak RSS of `benchlab compare` (the real CLI, a child process) on two big stored runs."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Comparison, RequestSample, Run
from benchlab.metrics.store.sample import Sample
from benchlab.runners.selfbench.database import ENDPOINTS, synthetic_meta
from benchlab.runners.selfbench.report import Figure, MeasureError

SCENARIO = "selfbench-p8"
"""Scenario of both P8 runs (test type `load`)."""
BASELINE, CANDIDATE = "p8-base", "p8-cand"
"""Versions of the two P8 runs."""
SLOW = ("/api/items", "GET")
"""The endpoint the candidate serves `SLOWDOWN` times slower."""
SLOWDOWN = 1.10
_ERROR = "HTTPError: 500 Server Error: INTERNAL SERVER ERROR for url: {}"


@dataclass(frozen=True, kw_only=True)
class Child:
    """One finished child process: its wall time, peak RSS, exit code and output."""

    wall_s: float
    rss_mb: float
    """Peak resident set size in MB (10^6 bytes) of this process alone (`os.wait4` in a small wrapper)."""
    code: int
    stdout: str
    stderr: str


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements (the median is the figure; never the best)."""
    if not values:
        raise MeasureError("nothing was measured")
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def sample_batches(
    count: int,
    *,
    rps: float,
    start: float,
    seed: int = 1,
    batch: int = 50_000,
    slow: tuple[str, str] | None = None,
    slowdown: float = 1.0,
) -> Iterator[list[Sample]]:
    """`count` samples at `rps` from `start` in batches: mixed endpoints, lognormal times, ~1% failures.

    Vectorised with numpy (a million samples in about a second); `slow` takes `slowdown` times longer.
    """
    rng = np.random.default_rng(seed)
    names = [e[0] for e in ENDPOINTS]
    methods = [e[1] for e in ENDPOINTS]
    weights = np.array([e[2] for e in ENDPOINTS], dtype=float)
    is_post = np.array([m == "POST" for m in methods])
    slow_index = next((i for i, e in enumerate(ENDPOINTS) if (e[0], e[1]) == slow), None)
    for at in range(0, count, batch):
        n = min(batch, count - at)
        pick = rng.choice(len(ENDPOINTS), size=n, p=weights / weights.sum())
        ms = rng.lognormal(1.3, 0.5, n)
        if slow_index is not None:
            ms[pick == slow_index] *= slowdown
        failed = rng.random(n) < 0.01
        ts = start + (np.arange(at, at + n) + rng.random(n)) / rps
        size = np.where(failed, 265, rng.integers(5, 2049, n))
        body = rng.integers(48, 401, n)
        columns = (ts, pick, ms, size, body, is_post[pick], failed)
        yield [
            (
                t,
                names[p],
                methods[p],
                m,
                s,
                b if post else None,
                500 if f else 200,
                not f,
                _ERROR.format(names[p]) if f else None,
            )
            for t, p, m, s, b, post, f in zip(*(c.tolist() for c in columns), strict=True)
        ]


def store_run(
    store: Store, version: str, samples: int, *, seconds: float, start: float, scenario: str = SCENARIO, **shape: Any
) -> int:
    """A completed run of `samples` synthetic samples over `seconds` from `start`, written in 50k batches."""
    run_id = store.start_run(synthetic_meta(version, seconds, scenario), started_at=datetime.fromtimestamp(start, UTC))
    failures = 0
    for rows in sample_batches(samples, rps=samples / seconds, start=start, **shape):
        store.write_samples(run_id, None, rows)
        failures += sum(1 for r in rows if not r[7])
    summary = {
        "total_requests": samples,
        "total_failures": failures,
        "stored_samples": samples,
        "rps": samples / seconds,
        "error_rate": failures / samples,
    }
    store.finish_run(run_id, status="completed", summary=summary)
    return run_id


def store_pair(
    url: str,
    samples: int,
    *,
    seconds: float,
    spool_dir: Path,
    scenario: str = SCENARIO,
    versions: tuple[str, str] = (BASELINE, CANDIDATE),
    candidate_samples: int | None = None,
) -> tuple[int, int]:
    """The baseline and the candidate run (ids), back to back and ending a minute ago; analyzed as autovacuum would.

    The candidate has `candidate_samples` (default `samples`) over the same `seconds`, `SLOW` slowed by `SLOWDOWN`.
    """
    store = Store(settings=StoreSettings(url=url, spool_dir=spool_dir)).open()
    base_version, cand_version = versions
    try:
        began = time.time() - 2 * seconds - 90
        base = store_run(store, base_version, samples, seconds=seconds, start=began, scenario=scenario, seed=1)
        cand = store_run(
            store,
            cand_version,
            samples if candidate_samples is None else candidate_samples,
            seconds=seconds,
            start=began + seconds + 30,
            scenario=scenario,
            seed=2,
            slow=SLOW,
            slowdown=SLOWDOWN,
        )
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE request_samples")
        return base, cand
    finally:
        store.close()


def drop_pair(url: str, *, spool_dir: Path, scenario: str = SCENARIO) -> None:
    """Delete the runs of `scenario` (P8's by default), their samples and the comparisons stored for them."""
    store = Store(settings=StoreSettings(url=url, spool_dir=spool_dir))
    ours = select(Run.id).where(Run.scenario == scenario)
    try:
        with store.engine.begin() as conn:
            conn.execute(delete(Comparison).where(Comparison.scenario == scenario))
            conn.execute(delete(RequestSample).where(RequestSample.run_id.in_(ours)))
            conn.execute(delete(Run).where(Run.scenario == scenario))
    finally:
        store.close()


def judge_argv(
    command: str,
    db: str,
    *extra: str,
    scenario: str = SCENARIO,
    versions: tuple[str, str] = (BASELINE, CANDIDATE),
) -> list[str]:
    """`benchlab <command>` of the candidate version against the baseline version, as the console script runs it."""
    base, cand = versions
    selection = ["--version", cand, "--baseline-version", base, "--scenario", scenario, "--test-type", "load"]
    return [sys.executable, "-m", "benchlab.runners.cli", command, *selection, *extra, "--db", db]


def compare_argv(db: str) -> list[str]:
    """`benchlab compare --json` of the P8 candidate against its baseline, as the console script runs it."""
    return judge_argv("compare", db, "--json")


def child_env() -> dict[str, str]:
    """This environment without what would change a judging child's exit code or make it write a CI summary."""
    drop = ("FAIL_ON_REGRESSION", "BASELINE_VERSION", "GITHUB_STEP_SUMMARY")
    return {k: v for k, v in os.environ.items() if k not in drop}


_WRAPPER = """
import json, os, subprocess, sys, time
began = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - began
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    json.dump({"wall_s": wall, "maxrss_kb": usage.ru_maxrss, "code": code}, fh)
sys.exit(code if code >= 0 else 128 - code)
"""
"""Runs argv as its own child and writes that child's wall time, peak RSS and exit code to a file.

A child's ru_maxrss starts at the RSS of the process that forked it (Linux copies the parent's page counts,
and exec keeps the high-water mark), so the measured command must be forked by a small process, not by
selfbench with its numpy arrays: this wrapper is some 10 MB, below anything `benchlab compare` peaks at.
"""


def timed_child(argv: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Child:
    """Run `argv` under a small wrapper: wall time from spawn to exit, and the peak RSS of that process alone."""
    with tempfile.TemporaryDirectory(prefix="benchlab-p8-") as tmp:
        usage_file, out_file, err_file = (Path(tmp) / name for name in ("usage.json", "out.txt", "err.txt"))
        with out_file.open("w") as out, err_file.open("w") as err:
            wrapper = [sys.executable, "-c", _WRAPPER, str(usage_file), *argv]
            proc = subprocess.Popen(wrapper, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise MeasureError(f"{' '.join(argv[2:5])} ... did not finish within {timeout:.0f} s") from None
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        try:
            usage = json.loads(usage_file.read_text())
        except (OSError, ValueError):
            raise MeasureError(f"the timing wrapper exited {proc.returncode} without a measurement") from None
        return Child(
            wall_s=float(usage["wall_s"]),
            rss_mb=int(usage["maxrss_kb"]) * 1024 / 1e6,
            code=int(usage["code"]),
            stdout=out_file.read_text(),
            stderr=err_file.read_text(),
        )


def failure(child: Child, what: str) -> MeasureError:
    """Why a measured child failed: its exit code and the last line of its stderr."""
    tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
    return MeasureError(f"{what} exited {child.code}: {tail}")


def compare_once(db: str, *, cwd: Path, argv: list[str] | None = None) -> tuple[Child, dict[str, Any]]:
    """One measured `benchlab compare --json` (`argv`, P8's by default); its verdict. MeasureError when it fails."""
    child = timed_child(argv or compare_argv(db), cwd=cwd, timeout=600, env=child_env())
    lines = child.stdout.strip().splitlines()
    if child.code != 0 or not lines:
        raise failure(child, "benchlab compare")
    try:
        return child, json.loads(lines[-1])
    except json.JSONDecodeError:
        raise MeasureError(f"benchlab compare --json printed no JSON last: {lines[-1][:200]}") from None


def slow_verdicts(verdict: dict[str, Any]) -> dict[str, str]:
    """Verdict per latency metric of the slowed endpoint (to show the comparison saw the 10%)."""
    return {
        str(r["metric"]): str(r["verdict"])
        for r in verdict.get("results", [])
        if (r.get("endpoint"), r.get("method")) == SLOW and str(r.get("metric", "")).endswith("_ms")
    }


def measure(db: str, *, samples: int, seconds: float, reps: int, tmp: Path, say: Callable[[str], None]) -> list[Figure]:
    """Wall time and peak RSS of `benchlab compare` on two stored runs; median (and min-max) of the repetitions."""
    say(f"P8: storing 2 runs of {samples:,} synthetic samples in Postgres")
    spool = tmp / "spool"
    children: list[Child] = []
    verdict: dict[str, Any] = {}
    try:
        began = time.monotonic()
        store_pair(db, samples, seconds=seconds, spool_dir=spool)
        stored_s = time.monotonic() - began
        for i in range(reps):
            say(f"P8 repetition {i + 1}/{reps}: benchlab compare")
            child, verdict = compare_once(db, cwd=tmp)
            children.append(child)
    finally:
        drop_pair(db, spool_dir=spool)
    times = spread([c.wall_s for c in children])
    rss = spread([c.rss_mb for c in children])
    details = {
        "samples_per_run": samples,
        "seconds_per_run": seconds,
        "store_s": round(stored_s, 1),
        "overall": verdict.get("overall"),
        "slowed": {"endpoint": " ".join(SLOW), "change": SLOWDOWN - 1, **slow_verdicts(verdict)},
        "wall_s": [round(c.wall_s, 3) for c in children],
        "rss_mb": [round(c.rss_mb, 1) for c in children],
    }
    label = f"compare on 2 x {samples / 1e6:g}M samples"
    return [
        Figure(
            key="P8",
            label=f"{label}: wall time",
            value=times["median"],
            op="<=",
            goal=3.0,
            unit="seconds",
            details={**details, "min": times["min"], "max": times["max"]},
        ),
        Figure(
            key="P8/rss",
            label=f"{label}: peak RSS",
            value=rss["median"],
            op="<=",
            goal=300.0,
            unit="MB",
            details={"min": rss["min"], "max": rss["max"], "rss_mb": details["rss_mb"]},
        ),
    ]
