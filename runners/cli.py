"""The `benchlab` command: every flag and env var is parsed here, once, into typed settings."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from benchlab.metrics.settings import StoreSettings
    from benchlab.runners.settings import DemoSettings, ShapeSettings

from benchlab.runners import remote
from benchlab.runners.analyses import add_analyze, add_trend
from benchlab.runners.ci import add_parser as add_ci
from benchlab.runners.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, RunFailed
from benchlab.runners.launch import cmd_calibrate, cmd_demo, cmd_run
from benchlab.runners.prune import add_parser as add_prune
from benchlab.runners.seed import seed_argv
from benchlab.runners.services import add_services
from benchlab.runners.verdicts import add_compare, add_judge_flags, judge_settings

TEST_TYPES = ("baseline", "load", "stress", "spike", "soak", "complete")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(message)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _positive(kind: Callable[[str], Any], what: str, zero_ok: bool = False) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"{what} must be {'>= 0' if zero_ok else '> 0'}, got {text!r}")
        return value

    return convert


def _host(text: str) -> str:
    if not text:
        return ""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad host URL {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"bad host URL {text!r}: expected http(s)://host[:port]")
    return text.rstrip("/")


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"bad tag {text!r}: expected key=value")
    return key, value


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=_env("BENCHLAB_DB_URL"), help="metrics store URL (BENCHLAB_DB_URL)")
    p.add_argument("--spool-dir", default=_env("BENCHLAB_SPOOL_DIR"), help="spool directory (BENCHLAB_SPOOL_DIR)")


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a Locust file against a target and store every sample")
    _run_flags(p, version_flags=("--app-version",))
    p.add_argument(
        "--results-dir", type=Path, default=None, help="write each run's baseline JSON under DIR/<test type>/"
    )
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("calibrate", help="N A/A runs of one version: the noise floor of every metric, stored")
    _run_flags(p, version_flags=("--version", "--app-version"))
    p.add_argument("--runs", dest="repeats", type=_positive(int, "runs"), default="5", help="A/A repeats (default 5)")
    p.set_defaults(handler=cmd_calibrate)


def _run_flags(p: argparse.ArgumentParser, *, version_flags: tuple[str, ...]) -> None:
    """The flags of `run`, shared by `calibrate`."""
    p.add_argument(
        "-f",
        "--locustfile",
        "--test-script",
        dest="locustfile",
        default=_env("LOCUSTFILE"),
        help="Locust file; a bare name is looked up in load_tests/",
    )
    p.add_argument("--user-class", action="append", default=[], help="user class to run (repeatable)")
    p.add_argument("--host", type=_host, default=_env("TARGET_HOST"), help="target base URL (TARGET_HOST)")
    p.add_argument("-u", "--users", type=_positive(int, "users"), default=_env("USERS", "10"))
    p.add_argument("-r", "--spawn-rate", type=_positive(float, "spawn rate"), default=_env("SPAWN_RATE", "1"))
    p.add_argument(
        "-t", "--run-time", "--duration", default=_env("RUN_TIME"), help="30s, 5m, 1h30m, or seconds (RUN_TIME; 5m)"
    )
    p.add_argument(*version_flags, dest="app_version", default=_env("APP_VERSION", "dev"), help="version (APP_VERSION)")
    p.add_argument(
        "--test-type",
        choices=TEST_TYPES,
        default=_env("TEST_TYPE"),
        help="load shape (TEST_TYPE; default: the locustfile's own LoadTestShape if it has one, else load)",
    )
    p.add_argument("--scenario", default=_env("BENCHLAB_SCENARIO"), help="scenario name (default: file + classes)")
    p.add_argument("--environment", default=_env("BENCHLAB_ENVIRONMENT", "local"))
    p.add_argument("--tag", type=_tag, action="append", default=[], help="key=value label (repeatable)")
    p.add_argument(
        "--workers",
        type=_positive(int, "workers", zero_ok=True),
        default=_env("BENCHLAB_WORKERS", "0"),
        help="0: one in-process runner; N: a Locust master plus N local workers",
    )
    _shape_flags(p)
    _output_flags(p)
    remote.add_master_flags(p)
    add_judge_flags(p, for_run=True)
    _db(p)


def _shape_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the test types' shapes and of the run's SLO."""
    p.add_argument("--stress-steps", type=_positive(int, "stress steps"), default="5")
    p.add_argument("--slo-p95-ms", type=_positive(float, "SLO p95"), default=_env("BENCHLAB_SLO_P95_MS", "1000"))
    p.add_argument("--slo-error-rate", type=_positive(float, "SLO error rate", zero_ok=True), default="0.05")
    p.add_argument("--spike-factor", type=_positive(float, "spike factor"), default="5")


def _output_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the pre-flight check, the runner's /metrics, the monitored processes and the output."""
    p.add_argument("--no-health-check", action="store_true", help="skip the pre-flight check of the target")
    p.add_argument("--health-path", default="/health", help="health check path (falls back to GET /)")
    p.add_argument(
        "--metrics-port",
        type=_positive(int, "metrics port"),
        default=_env("BENCHLAB_METRICS_PORT"),
        help="serve the runner's Prometheus /metrics on this port during the run",
    )
    p.add_argument("--metrics-bind", default="127.0.0.1", help="address of the runner's /metrics")
    p.add_argument(
        "--monitor-pid",
        type=_positive(int, "pid"),
        action="append",
        default=[],
        help="sample this process with the sidecar during the run (repeatable)",
    )
    p.add_argument(
        "--monitor-process",
        action="append",
        default=[],
        metavar="REGEX",
        help="sample processes matching REGEX (name or cmdline) during the run (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress line")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report to --report-dir")
    p.add_argument("--report-dir", type=Path, default=Path("results/reports"), help="(default results/reports)")


def build_run_spec(ns: argparse.Namespace) -> Any:
    """Turn parsed `run` flags into a RunSpec; raises BadInput naming the first problem."""
    from benchlab.metrics.settings import RunMeta
    from benchlab.runners.run import resolve_locustfile
    from benchlab.runners.settings import OutputSettings, RunSpec

    test_type = ns.test_type or "load"  # not given: a locustfile's own shape may drive the run (runners.run)
    if test_type not in TEST_TYPES:  # argparse checks choices on flags only, not on env defaults
        raise BadInput(f"bad test type {ns.test_type!r} (TEST_TYPE): expected one of {', '.join(TEST_TYPES)}")
    if not ns.locustfile:
        raise BadInput("no locustfile: pass -f/--locustfile")
    # No --host is fine when the user classes set their own or make no HTTP requests (checked once loaded).
    run_time = _run_time(ns.run_time or "5m")
    store = store_settings(ns)
    locustfile = resolve_locustfile(ns.locustfile)
    classes = tuple(ns.user_class)
    scenario = ns.scenario or (locustfile.stem + (":" + "+".join(classes) if classes else ""))
    master = remote.master_settings(ns)
    meta = RunMeta(
        scenario=scenario,
        test_type=test_type,
        app_version=ns.app_version,
        environment=ns.environment,
        host=ns.host or "",
        locustfile=str(locustfile),
        user_classes=classes,
        users=ns.users,
        spawn_rate=ns.spawn_rate,
        planned_duration_s=run_time,
        workers=master.expect_workers if master else ns.workers,
        tags=dict(ns.tag),
        git_commit=_git_commit(locustfile),
    )
    return RunSpec(
        meta=meta,
        locustfile=locustfile,
        store=store,
        shape=_shape_settings(ns, test_type, run_time),
        output=OutputSettings(
            json=ns.json,
            quiet=ns.quiet,
            verbose=ns.verbose,
            report_dir=None if ns.no_report else ns.report_dir,
            results_dir=getattr(ns, "results_dir", None),
        ),
        health_check=not ns.no_health_check,
        health_path=ns.health_path,
        metrics_port=ns.metrics_port,
        metrics_bind=ns.metrics_bind,
        monitor=tuple(f"pid:{pid}" for pid in ns.monitor_pid) + tuple(f"process:{rx}" for rx in ns.monitor_process),
        judge=judge_settings(ns, runs=ns.baseline_runs_n),
        master=master,
    )


def _run_time(text: str) -> float:
    """Seconds of a Locust timespan (30s, 5m, 1h30m, or plain seconds); raises BadInput if bad or not > 0."""
    from locust.util.timespan import parse_timespan

    try:
        run_time = float(parse_timespan(text))
    except (ValueError, TypeError):
        raise BadInput(f"bad run time {text!r}: use Locust syntax such as 30s, 5m, 1h30m") from None
    if run_time <= 0:
        raise BadInput(f"bad run time {text!r}: must be > 0")
    return run_time


def _shape_settings(ns: argparse.Namespace, test_type: str, run_time: float) -> ShapeSettings:
    """The run's shape settings, validated (a `complete` suite's test types are validated as each shape is built)."""
    from benchlab.runners.settings import ShapeSettings

    shape = ShapeSettings(
        test_type=test_type,
        users=ns.users,
        spawn_rate=ns.spawn_rate,
        run_time=run_time,
        stress_steps=ns.stress_steps,
        slo_p95_ms=ns.slo_p95_ms,
        slo_error_rate=ns.slo_error_rate,
        spike_factor=ns.spike_factor,
        test_type_given=bool(ns.test_type),
        run_time_given=bool(ns.run_time),
    )
    if test_type != "complete":
        from benchlab.runners.shape import validate

        try:
            validate(shape)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    return shape


def _git_commit(path: Path) -> str | None:
    """Commit of the locustfile's repository, or BENCHLAB_GIT_COMMIT where there is no git (containers)."""
    if commit := _env("BENCHLAB_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "-C", str(path.resolve().parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def demo_settings(ns: argparse.Namespace) -> DemoSettings:
    """`benchlab demo`'s flags as DemoSettings; raises BadInput naming the first problem."""
    from benchlab.runners.settings import DemoSettings

    run_time = _run_time(ns.run_time)
    store = store_settings(ns)
    return DemoSettings(store=store, locustfile=Path(ns.locustfile), users=ns.users, run_time=run_time, quiet=ns.quiet)


def store_settings(ns: argparse.Namespace) -> StoreSettings:
    """The one place --db/BENCHLAB_DB_URL and --spool-dir/BENCHLAB_SPOOL_DIR become store settings."""
    from benchlab.metrics.settings import DEFAULT_DB_URL, DEFAULT_SPOOL_DIR, StoreSettings
    from benchlab.metrics.store.database import BadStoreUrl, parse_url

    url = ns.db or DEFAULT_DB_URL
    try:
        parse_url(url)
    except BadStoreUrl as exc:
        raise BadInput(str(exc)) from None
    return StoreSettings(url=url, spool_dir=Path(ns.spool_dir) if ns.spool_dir else DEFAULT_SPOOL_DIR)


def _add_other(sub: Any) -> None:
    from benchlab.runners import commands
    from benchlab.runners.reporting import add_report

    commands.add_store_commands(sub, _db, _positive)
    add_services(sub, _db, _positive, _env)
    add_compare(sub, _db, _positive)
    add_trend(sub, _db, _positive)
    add_analyze(sub, _db, _positive)
    add_report(sub, _db, _positive)
    add_prune(sub, _db)
    p = sub.add_parser("demo", help="demo target 1.0 vs 1.1: two short runs and the change (SQLite)")
    p.add_argument("--users", type=_positive(int, "users"), default="50")
    p.add_argument("--run-time", default="30s", help="length of each run (Locust syntax)")
    p.add_argument("-f", "--locustfile", default="content_generation_test.py")
    p.add_argument("-q", "--quiet", action="store_true")
    _db(p)
    p.set_defaults(handler=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; the Python API parses its options with it too."""
    parser = _Parser(prog="benchlab", description="Benchmark lab: Locust runs measured release against release.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_other(sub)
    remote.add_parser(sub)
    add_ci(sub, _run_flags, _positive, _host)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `benchlab` console script."""
    parser = build_parser()
    try:
        ns = parser.parse_args(seed_argv(list(sys.argv[1:] if argv is None else argv)))
        logging.basicConfig(
            level=logging.DEBUG if getattr(ns, "verbose", False) else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return int(ns.handler(ns))
    except BadInput as exc:
        print(f"benchlab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailed as exc:
        print(f"benchlab: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
