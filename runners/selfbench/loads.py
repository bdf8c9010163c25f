"""The load runs selfbench compares: bare `locust` and `benchlab run`, each a subprocess on the same file and target."""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlab.runners.selfbench.database import per_second
from benchlab.runners.selfbench.report import MeasureError, steady_rps

LOCUSTFILE = '''"""selfbench: one FastHttpUser hitting GET / as fast as it can."""

from locust import FastHttpUser, constant, task


class SelfBenchUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")
'''
"""The Locust file both kinds of run use."""


@dataclass(frozen=True, kw_only=True)
class Load:
    """What one load run did."""

    kind: str
    """bare | benchlab."""
    requests: int
    """Requests counted (Locust's total for bare runs, Locust's count reported by benchlab otherwise)."""
    wall_s: float
    """Duration the run reports: start to last request (bare), or benchlab's `duration_s`."""
    per_second: dict[int, int]
    """Requests completed in each epoch second."""
    summary: dict[str, Any] = field(default_factory=dict)
    """benchlab's --json object (empty for bare runs)."""
    cpu_s: float = 0.0
    """User + system CPU seconds of the whole process tree (the run, its workers and writer children)."""

    @property
    def cpu_per_request(self) -> float:
        """CPU seconds per request Locust counted."""
        if not self.requests:
            raise MeasureError(f"the {self.kind} run counted no requests")
        return self.cpu_s / self.requests

    @property
    def rps(self) -> float:
        """Steady requests per second (whole seconds, first and last left out): the figure ratios use."""
        return steady_rps(self.per_second)

    def brief(self) -> dict[str, Any]:
        """The run in the JSON line."""
        extra = {"run_id": self.summary["run_id"]} if self.summary else {}
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "wall_s": round(self.wall_s, 3),
            "wall_rps": round(self.requests / self.wall_s, 1) if self.wall_s else 0.0,
            "cpu_us_per_request": round(1e6 * self.cpu_s / self.requests, 1) if self.requests else None,
            **extra,
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Child(subprocess.CompletedProcess[str]):
    """A finished command and the CPU its whole tree used (every descendant it waited for)."""

    cpu_s: float = 0.0


def run_child(argv: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Child:
    """Run a command to completion; it is terminated if this process is interrupted or it overruns `timeout`.

    CPU is the growth of RUSAGE_CHILDREN across the call, so commands must run one at a time.
    """
    before = _children_cpu()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MeasureError(f"{' '.join(argv[:4])} ... did not finish within {timeout:.0f} s") from None
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    done = Child(argv, proc.returncode, out, err)
    done.cpu_s = _children_cpu() - before
    return done


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _last_array(text: str) -> list[Any]:
    """The last JSON array printed (with `--processes`, each forked worker prints its own, empty, before the master)."""
    decoder, arrays, pos = json.JSONDecoder(), [], text.find("[")
    while pos >= 0:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise MeasureError(f"locust --json output is not JSON: {exc}") from None
        arrays.append(value)
        pos = text.find("[", end)
    return arrays[-1] if arrays else []


def parse_locust_json(text: str) -> tuple[int, float, dict[int, int]]:
    """(requests, seconds from start to last request, requests per second) from `locust --json` output."""
    entries = _last_array(text)
    if not entries:
        raise MeasureError("locust --json reported no requests")
    counts: Counter[int] = Counter()
    for entry in entries:
        counts.update({int(sec): int(n) for sec, n in entry["num_reqs_per_sec"].items()})
    requests = sum(int(e["num_requests"]) for e in entries)
    stamps = [e["last_request_timestamp"] for e in entries if e["last_request_timestamp"]]
    wall = max(stamps) - min(float(e["start_time"]) for e in entries) if stamps else 0.0
    return requests, wall, dict(counts)


def bare_locust(locustfile: Path, host: str, users: int, seconds: int, *, cwd: Path, processes: int = 1) -> Load:
    """`locust --headless --only-summary --json` (with `--processes N` when N > 1), Locust's own numbers."""
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--only-summary",
        "--json",
        "--loglevel",
        "WARNING",
        *(["--processes", str(processes)] if processes > 1 else []),
    ]
    done = run_child(argv, cwd=cwd, timeout=seconds + 120)
    if done.returncode != 0:
        raise MeasureError(f"bare locust exited {done.returncode}: {_tail(done.stderr)}")
    requests, wall, counts = parse_locust_json(done.stdout)
    return Load(kind="bare", requests=requests, wall_s=wall, per_second=counts, cpu_s=done.cpu_s)


def benchlab_run(
    locustfile: Path, host: str, users: int, seconds: int, *, workers: int, db: str, cwd: Path, pythonpath: str = ""
) -> Load:
    """`benchlab run --json -q --no-report` into `db`; per-second counts come from the stored samples.

    `pythonpath` runs another tree of benchlab (an earlier commit, laid out as installed) for before/after pairs.
    """
    argv = [
        sys.executable,
        "-m",
        "benchlab.runners.cli",
        "run",
        "-f",
        str(locustfile),
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--test-type",
        "load",
        "--workers",
        str(workers),
        "--db",
        db,
        "--spool-dir",
        str(cwd / "spool"),
        "--scenario",
        f"selfbench-u{users}-w{workers}",
        "--app-version",
        "selfbench",
        "--json",
        "-q",
        "--no-report",
    ]
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    done = run_child(argv, cwd=cwd, timeout=seconds + 300, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise MeasureError(f"benchlab run exited {done.returncode}: {_tail(done.stderr)}")
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise MeasureError(f"benchlab run --json printed no JSON last: {lines[-1][:200]}") from None
    counts = per_second(db, int(summary["run_id"]))
    return Load(
        kind="benchlab",
        requests=int(summary["total_requests"]),
        wall_s=float(summary["duration_s"]),
        per_second=counts,
        summary=summary,
        cpu_s=done.cpu_s,
    )


def exported_times(run_id: int, db: str, *, cwd: Path) -> list[float]:
    """`response_time_ms` of every sample `benchlab export` writes for a run."""
    target = cwd / f"export-{run_id}.csv"
    argv = [
        sys.executable,
        "-m",
        "benchlab.runners.cli",
        "export",
        "--run",
        str(run_id),
        "--csv",
        str(target),
        "--db",
        db,
    ]
    done = run_child(argv, cwd=cwd, timeout=600)
    if done.returncode != 0:
        raise MeasureError(f"benchlab export exited {done.returncode}: {_tail(done.stderr)}")
    try:
        with target.open(newline="", encoding="utf-8") as fh:
            return [float(row["response_time_ms"]) for row in csv.DictReader(fh)]
    finally:
        target.unlink(missing_ok=True)
