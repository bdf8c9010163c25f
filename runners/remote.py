"""Workers on other machines: `benchlab worker`, and the `--master` flags of `benchlab run`.

A worker needs only the master's address and its own copy of the locustfile: the run id and the store come from
the master (see `runners.relay` for the messages).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchlab.runners.errors import EXIT_FAILED, EXIT_OK, BadInput
from benchlab.runners.settings import MasterSettings, RemoteWorkerSettings

DEFAULT_PORT = "5557"


def _number(kind: type, what: str, low: float) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not low <= value <= (65535 if what.endswith("port") else float("inf")):
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}")
        return value

    return convert


def add_master_flags(p: argparse.ArgumentParser) -> None:
    """`run --master` and its companions."""
    env = os.environ.get
    p.add_argument("--master", action="store_true", help="Locust's master only: the load comes from `benchlab worker`s")
    p.add_argument(
        "--expect-workers",
        type=_number(int, "expected workers", 0),
        default=env("BENCHLAB_EXPECT_WORKERS") or None,
        help="workers to wait for before the load starts; N > 0 implies --master, 0 a local run"
        " (BENCHLAB_EXPECT_WORKERS; default 1 with --master)",
    )
    p.add_argument(
        "--master-bind",
        default=env("BENCHLAB_MASTER_BIND", "127.0.0.1"),
        help="address the master listens on (BENCHLAB_MASTER_BIND; default 127.0.0.1: use 0.0.0.0 or a LAN address)",
    )
    p.add_argument(
        "--master-port",
        type=_number(int, "master port", 1),
        default=env("BENCHLAB_MASTER_PORT", DEFAULT_PORT),
        help=f"Locust's master port (BENCHLAB_MASTER_PORT; default {DEFAULT_PORT})",
    )
    p.add_argument(
        "--expect-timeout",
        type=_number(float, "expect timeout", 0.1),
        default="60",
        help="seconds to wait for the expected workers, then fail (default 60)",
    )


def master_settings(ns: argparse.Namespace) -> MasterSettings | None:
    """The `--master` settings of a run, or None for a local one."""
    expect = getattr(ns, "expect_workers", None)
    if not getattr(ns, "master", False) and not expect:
        return None
    if expect == 0:
        raise BadInput("--master needs at least one worker: --expect-workers N (BENCHLAB_EXPECT_WORKERS) with N >= 1")
    expect = 1 if expect is None else expect
    if ns.workers:
        raise BadInput("--master waits for remote workers and --workers starts local ones: use one of them")
    if ns.test_type == "complete" or getattr(ns, "repeats", 1) > 1:
        raise BadInput("remote workers serve one run and leave: run one test type at a time with --master")
    return MasterSettings(
        bind=ns.master_bind, port=ns.master_port, expect_workers=expect, connect_timeout=ns.expect_timeout
    )


def add_parser(sub: Any) -> None:
    """The `worker` command."""
    env = os.environ.get
    p = sub.add_parser("worker", help="a Locust worker for `benchlab run --master` on another machine")
    p.add_argument("-f", "--locustfile", default=env("LOCUSTFILE"), help="this machine's copy of the master's file")
    p.add_argument("--master-host", default=env("BENCHLAB_MASTER_HOST"), help="the master (BENCHLAB_MASTER_HOST)")
    p.add_argument(
        "--master-port",
        type=_number(int, "master port", 1),
        default=env("BENCHLAB_MASTER_PORT", DEFAULT_PORT),
        help=f"Locust's master port (BENCHLAB_MASTER_PORT; default {DEFAULT_PORT})",
    )
    p.add_argument("--db", default=None, help="this machine's URL of the master's Postgres (default: the master's)")
    p.add_argument("--spool-dir", default=env("BENCHLAB_SPOOL_DIR"), help="local spool (BENCHLAB_SPOOL_DIR)")
    p.add_argument("--relay", action="store_true", help="send samples through the master even to a Postgres store")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(handler=cmd_worker)


def worker_settings(ns: argparse.Namespace) -> RemoteWorkerSettings:
    """Parsed `worker` flags; BadInput names the first problem."""
    from benchlab.metrics.settings import DEFAULT_SPOOL_DIR
    from benchlab.metrics.store.database import BadStoreUrl, parse_url
    from benchlab.runners.run import resolve_locustfile

    if not ns.locustfile:
        raise BadInput("no locustfile: pass -f/--locustfile (the same file as the master's)")
    if not ns.master_host:
        raise BadInput("no master: pass --master-host or set BENCHLAB_MASTER_HOST")
    if ns.db is not None:
        try:
            backend = parse_url(ns.db).get_backend_name()
        except BadStoreUrl as exc:
            raise BadInput(str(exc)) from None
        if backend != "postgresql":
            raise BadInput("worker --db takes the master's Postgres store as this machine reaches it (postgresql://)")
    return RemoteWorkerSettings(
        locustfile=resolve_locustfile(ns.locustfile),
        master_host=ns.master_host,
        master_port=ns.master_port,
        db_url=ns.db,
        spool_dir=Path(ns.spool_dir) if ns.spool_dir else DEFAULT_SPOOL_DIR,
        relay=ns.relay,
    )


def cmd_worker(ns: argparse.Namespace) -> int:
    """`benchlab worker`: join the master, run its users, store (or relay) every sample; exit 0 once flushed."""
    import locust  # noqa: F401  - gevent monkey-patching before anything imports ssl or sockets

    from benchlab.runners.outpost import serve

    report = serve(worker_settings(ns))
    print(json.dumps(report), flush=True)
    if not report["flushed"]:
        print(
            "benchlab: worker: no final flush (the master quit, or this worker was stopped, before the run ended)",
            file=sys.stderr,
        )
    return EXIT_OK if report["flushed"] else EXIT_FAILED
