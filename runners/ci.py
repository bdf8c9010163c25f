"""`benchlab ci`: the whole CI job in one env-driven command (the seed suite's `runners/ci_runner.py`).

Runs the test types against TARGET_HOST (the baseline version first, against BASELINE_HOST, where it has no
completed run; without BASELINE_HOST that is bad input before anything runs), judges each run against the
baseline, reruns both versions interleaved before a regression is believed (`--confirm N`), writes the HTML,
Markdown and JUnit reports and the job summary, and posts significant findings to a webhook. One exit code.
This module holds the command's settings and parser; `runners.job` is the job itself."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchlab.runners import job
from benchlab.runners.errors import BadInput
from benchlab.runners.settings import RunSpec

DEFAULT_REPORT_DIR = "results/reports"


@dataclass(frozen=True, kw_only=True)
class CiSettings:
    """`benchlab ci`, parsed once: the run of `benchlab run` plus what the CI job adds."""

    spec: RunSpec
    """The candidate's runs (its `judge` holds the baseline version, thresholds, SLOs and the gate)."""
    baseline_host: str | None = None
    """Where the baseline version is served (BASELINE_HOST): its missing runs and the confirmation runs."""
    confirm: int = 0
    """Runs of each version added, interleaved, before a regression is believed (BENCHLAB_CONFIRM)."""
    notify_url: str | None = None
    """Slack-compatible webhook (NOTIFY_WEBHOOK_URL); a secret, never printed."""
    report_dir: Path = Path(DEFAULT_REPORT_DIR)
    """Reports and summary.md (BENCHLAB_REPORT_DIR)."""
    reports: bool = True
    """Write the HTML, Markdown and JUnit reports (not with --no-report; summary.md is always written)."""


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def add_parser(sub: Any, run_flags: Callable[..., None], positive: Any, host: Callable[[str], str]) -> None:
    """The `ci` sub-command: every flag of `run`, plus the baseline host, --confirm and the webhook."""
    p = sub.add_parser("ci", help="the CI job: runs, baseline comparison, confirmation, reports, summary, webhook")
    run_flags(p, version_flags=("--app-version",))
    p.add_argument(
        "--baseline-host",
        type=host,
        default=os.environ.get("BASELINE_HOST") or None,
        help="target serving the baseline version: its missing runs and --confirm runs (BASELINE_HOST)",
    )
    p.add_argument(
        "--confirm",
        type=positive(int, "confirm", zero_ok=True),
        default=os.environ.get("BENCHLAB_CONFIRM") or "0",
        metavar="N",
        help="on a regression, N more runs of each version, interleaved, judged pooled (BENCHLAB_CONFIRM)",
    )
    p.add_argument(
        "--notify-url",
        default=os.environ.get("NOTIFY_WEBHOOK_URL") or None,
        help="post significant findings to this Slack-compatible webhook (NOTIFY_WEBHOOK_URL)",
    )
    p.set_defaults(
        handler=cmd_ci,
        thresholds=_env_path("BENCHLAB_THRESHOLDS"),
        slo=_env_path("BENCHLAB_SLO"),
        report_dir=Path(os.environ.get("BENCHLAB_REPORT_DIR") or DEFAULT_REPORT_DIR),
    )


def ci_settings(ns: argparse.Namespace) -> CiSettings:
    """CiSettings from parsed flags; BadInput naming the first problem (before anything runs)."""
    from benchlab.runners.cli import build_run_spec

    if ns.test_type == "all":
        ns.test_type = "complete"
    spec = build_run_spec(ns)
    if ns.notify_url:
        parts = urlsplit(ns.notify_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput("bad webhook URL (NOTIFY_WEBHOOK_URL / --notify-url): expected http(s)://host/...")
    if ns.report_dir.exists() and not ns.report_dir.is_dir():
        raise BadInput(f"cannot write reports to {ns.report_dir}: not a directory")
    assert spec.judge is not None
    if ns.confirm and spec.judge.baseline_version and not ns.baseline_host:
        raise BadInput("--confirm (BENCHLAB_CONFIRM) reruns the baseline: pass --baseline-host (BASELINE_HOST)")
    return CiSettings(
        spec=spec,
        baseline_host=ns.baseline_host or None,
        confirm=ns.confirm,
        notify_url=ns.notify_url,
        report_dir=ns.report_dir,
        reports=not ns.no_report,
    )


def cmd_ci(ns: argparse.Namespace) -> int:
    """`benchlab ci`: plan, run, judge, confirm, report, summarise, notify; one exit code."""
    import locust  # noqa: F401  - gevent monkey-patching before anything imports ssl or sockets

    return job.perform(ci_settings(ns))
