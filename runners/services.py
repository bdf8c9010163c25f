"""Parsers of the long-running service commands: `benchlab target` (the demo target) and `benchlab sidecar`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlab.runners import commands


def add_services(sub: Any, db: Callable[[Any], None], positive: Any, env: Callable[..., str | None]) -> None:
    """The `target` and `sidecar` sub-commands (their flags; the handlers are in `runners.commands`)."""
    p = sub.add_parser("target", help="serve the demo target service")
    p.add_argument("--version", default=env("APP_VERSION", "1.0"), help="version the target reports")
    p.add_argument("--profile", default=None, help="behaviour profile: 1.0, 1.1, leaky (default: by version)")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=positive(int, "port"), default="8000")
    p.add_argument("--redis-url", default=env("REDIS_URL"), help="Redis job queue (REDIS_URL); else in-process")
    p.add_argument("--queue-prefix", default="benchlab:demo:")
    p.add_argument("--slowdown", type=positive(float, "slowdown"), default=None)
    p.add_argument("--leak-kb", type=positive(float, "leak", zero_ok=True), default=None)
    p.add_argument("--delay-ms", type=positive(float, "delay", zero_ok=True), default=None, help="added wait on /api/")
    p.add_argument("--token-ttl", type=positive(float, "token TTL"), default="30")
    p.set_defaults(handler=commands.cmd_target)
    p = sub.add_parser("sidecar", help="sample the target's processes and queues into the store and /metrics")
    for kind in ("pid", "process", "port", "cgroup"):
        p.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar="[SERVICE=]VALUE",
            help=f"watch processes by {kind} (repeatable)",
        )
    p.add_argument("--service", default=None, help="service label of the targets named without one")
    p.add_argument("--config", type=Path, default=None, help="TOML/JSON file of targets and probes")
    p.add_argument("--redis-url", default=env("REDIS_URL"), help="Redis of the --redis-list probes")
    p.add_argument("--redis-list", action="append", default=[], metavar="[LABEL=]KEY")
    p.add_argument("--rabbitmq-url", default=env("RABBITMQ_URL"), help="AMQP URL of the --rabbitmq-queue probes")
    p.add_argument("--rabbitmq-queue", action="append", default=[], metavar="[LABEL=]QUEUE")
    p.add_argument(
        "--scrape",
        action="append",
        default=[],
        metavar="[LABEL=]URL",
        help="a target's Prometheus /metrics: processing time, errors, consume rate",
    )
    p.add_argument("--interval", type=positive(float, "interval"), default=env("BENCHLAB_SIDECAR_INTERVAL", "1"))
    p.add_argument("--metrics-port", type=positive(int, "metrics port"), default=None)
    p.add_argument("--metrics-addr", default="127.0.0.1")
    p.add_argument("--run-id", default="auto", help="auto (the run in progress), none, or a run id")
    p.add_argument("--no-store", action="store_true", help="serve /metrics only, store nothing")
    p.add_argument("-v", "--verbose", action="store_true")
    db(p)
    p.set_defaults(handler=commands.cmd_sidecar)
