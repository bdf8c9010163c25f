"""P4: wall time and peak RSS of `benchlab report --format html` (compare plus the page) on a 10M-sample run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlab.runners.selfbench import gate
from benchlab.runners.selfbench.gate import Child, spread, timed_child
from benchlab.runners.selfbench.report import Figure, MeasureError

SCENARIO = "selfbench-p4"
"""Scenario of both P4 runs (test type `load`)."""
VERSIONS = ("p4-base", "p4-cand")
"""Baseline and candidate version of the P4 runs."""
GOAL_S = 20.0
"""Wall time goal of the report (and, for comparison, of `compare` alone)."""
GOAL_MB = 2**30 / 1e6
"""Peak RSS goal of the report: 1 GiB in MB (10^6 bytes)."""
TIMEOUT_S = 600.0
"""Longest a measured child may take."""


def report_argv(db: str, out: Path) -> list[str]:
    """`benchlab report --format html` of the P4 candidate against its baseline, written into `out`."""
    return gate.judge_argv("report", db, "--format", "html", "--out", str(out), scenario=SCENARIO, versions=VERSIONS)


def compare_argv(db: str) -> list[str]:
    """`benchlab compare --json --no-save` of the P4 candidate against its baseline."""
    return gate.judge_argv("compare", db, "--json", "--no-save", scenario=SCENARIO, versions=VERSIONS)


def printed_page(stdout: str, cwd: Path) -> Path:
    """The HTML path `benchlab report` printed (its last `.html` line), relative paths taken from `cwd`."""
    pages = [line.strip() for line in stdout.splitlines() if line.strip().endswith(".html")]
    if not pages:
        raise MeasureError("benchlab report printed no .html path")
    return cwd / pages[-1]


def report_once(db: str, *, cwd: Path, out: Path) -> tuple[Child, float]:
    """One measured `benchlab report`; the size of the HTML page it wrote, in MB. MeasureError when it fails."""
    child = timed_child(report_argv(db, out), cwd=cwd, timeout=TIMEOUT_S, env=gate.child_env())
    if child.code != 0:
        raise gate.failure(child, "benchlab report")
    page = printed_page(child.stdout, cwd)
    if not page.is_file():
        raise MeasureError(f"benchlab report printed {page}, which does not exist")
    return child, page.stat().st_size / 1e6


def _repetitions(
    db: str, *, reps: int, tmp: Path, say: Callable[[str], None]
) -> tuple[list[Child], list[float], list[Child], dict[str, Any]]:
    """`reps` alternations of the report and `compare` alone: their children, page sizes and the last verdict."""
    reports: list[Child] = []
    pages: list[float] = []
    compares: list[Child] = []
    verdict: dict[str, Any] = {}
    for i in range(reps):
        child, mb = report_once(db, cwd=tmp, out=tmp / f"p4-report-{i}")
        reports.append(child)
        pages.append(mb)
        say(f"P4 repetition {i + 1}/{reps}: report {child.wall_s:.1f} s, {child.rss_mb:,.0f} MB RSS, page {mb:.2f} MB")
        child, verdict = gate.compare_once(db, cwd=tmp, argv=compare_argv(db))
        compares.append(child)
        say(f"P4 repetition {i + 1}/{reps}: compare alone {child.wall_s:.1f} s, {child.rss_mb:,.0f} MB RSS")
    return reports, pages, compares, verdict


def measure(
    db: str, *, samples: int, baseline: int, seconds: float, reps: int, tmp: Path, say: Callable[[str], None]
) -> list[Figure]:
    """The report's wall time and peak RSS, and `compare` alone, on a `samples` run against a `baseline` one."""
    say(f"P4: storing runs of {baseline:,} and {samples:,} synthetic samples in Postgres")
    spool = tmp / "spool"
    try:
        began = time.monotonic()
        gate.store_pair(
            db,
            baseline,
            seconds=seconds,
            spool_dir=spool,
            scenario=SCENARIO,
            versions=VERSIONS,
            candidate_samples=samples,
        )
        stored_s = time.monotonic() - began
        reports, pages, compares, verdict = _repetitions(db, reps=reps, tmp=tmp, say=say)
    finally:
        gate.drop_pair(db, spool_dir=spool, scenario=SCENARIO)
    details = {
        "samples": {"baseline": baseline, "candidate": samples},
        "seconds_per_run": seconds,
        "store_s": round(stored_s, 1),
        "overall": verdict.get("overall"),
    }
    return figures(reports, pages, compares, label=f"on {baseline / 1e6:g}M + {samples / 1e6:g}M samples", **details)


def figures(
    reports: list[Child], pages: list[float], compares: list[Child], *, label: str, **details: Any
) -> list[Figure]:
    """P4 (report wall time), P4/rss (its peak RSS) and P4/cmp (compare alone): medians, min-max, page size."""
    times, rss, page = spread([c.wall_s for c in reports]), spread([c.rss_mb for c in reports]), spread(pages)
    alone, alone_rss = spread([c.wall_s for c in compares]), spread([c.rss_mb for c in compares])
    return [
        Figure(
            key="P4",
            label=f"report html {label}: wall time",
            value=times["median"],
            op="<=",
            goal=GOAL_S,
            unit="seconds",
            details={
                **details,
                "min": times["min"],
                "max": times["max"],
                "wall_s": [round(c.wall_s, 3) for c in reports],
                "html_mb": round(page["median"], 2),
                "html_mb_each": [round(mb, 2) for mb in pages],
            },
        ),
        Figure(
            key="P4/rss",
            label=f"report html {label}: peak RSS",
            value=rss["median"],
            op="<=",
            goal=GOAL_MB,
            unit="MB",
            details={"min": rss["min"], "max": rss["max"], "rss_mb": [round(c.rss_mb, 1) for c in reports]},
        ),
        Figure(
            key="P4/cmp",
            label=f"compare alone {label}: wall time",
            value=alone["median"],
            op="<=",
            goal=GOAL_S,
            unit="seconds",
            details={
                "min": alone["min"],
                "max": alone["max"],
                "wall_s": [round(c.wall_s, 3) for c in compares],
                "rss_mb": {"median": alone_rss["median"], "min": alone_rss["min"], "max": alone_rss["max"]},
            },
        ),
    ]
