"""Handlers of the smaller `benchlab` commands: runs, export, replay, target."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

from benchlab.metrics.store.database import Store, StoreUnavailable, parse_url
from benchlab.metrics.store.liveness import status_of
from benchlab.metrics.store.sample import COLUMNS
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import replay_spool
from benchlab.runners.errors import EXIT_FAILED, EXIT_OK, BadInput, RunFailed
from benchlab.runners.prune import require_samples
from benchlab.runners.settings import TargetSettings

EXPORT_COLUMNS = ("run_id", *COLUMNS, "worker")


def add_store_commands(sub: Any, db: Any, positive: Any) -> None:
    """`runs`, `export` and `replay`: the commands that read or write stored runs and the spool directly."""
    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=positive(int, "limit"), default="50")
    db(p)
    p.set_defaults(handler=cmd_runs)
    p = sub.add_parser("export", help="write a run's raw samples as CSV")
    p.add_argument("--run", type=positive(int, "run id"), required=True)
    p.add_argument("--csv", type=Path, default=None, help="raw samples to this CSV file")
    p.add_argument(
        "--baseline-json",
        type=Path,
        nargs="?",
        const=Path(),
        default=None,
        metavar="FILE",
        help="the seed's baseline JSON to FILE ('-': stdout; no FILE: DIR/<test type>/<operation>_<type>_<time>.json)",
    )
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="DIR of --baseline-json without FILE")
    db(p)
    p.set_defaults(handler=cmd_export)
    p = sub.add_parser("replay", help="write spooled samples to the store")
    p.add_argument("--run", type=positive(int, "run id"), default=None, help="only this run's spool")
    db(p)
    p.set_defaults(handler=cmd_replay)


def open_store(ns: argparse.Namespace, *, must_exist: bool = True) -> Store:
    """The store named by --db / BENCHLAB_DB_URL; BadInput for a bad URL or a SQLite file that is not there."""
    from benchlab.runners.cli import store_settings

    settings = store_settings(ns)
    parsed = parse_url(settings.url)
    if must_exist and parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database)).exists():
        raise BadInput(f"no metrics store at {settings.url}: nothing has been run yet")
    try:
        return Store(settings=settings).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None


def cmd_runs(ns: argparse.Namespace) -> int:
    """`benchlab runs`: most recent runs first; a `running` run whose runner died shows as `interrupted`."""
    store = open_store(ns)
    try:
        runs = store.list_runs(ns.limit)
        live = {r.id: (status_of(r), store.count_samples(r.id)) for r in runs if r.status == "running"}
    finally:
        store.close()
    keys = (
        "id",
        "started_at",
        "status",
        "test_type",
        "scenario",
        "app_version",
        "environment",
        "users",
        "total_requests",
        "stored_samples",
        "rps",
        "p95_ms",
        "error_rate",
        "suite_id",
    )
    rows = [{k: _plain(getattr(r, k)) for k in keys} for r in runs]
    for row in rows:
        if row["id"] in live:  # not finished: its samples so far
            row["status"], row["stored_samples"] = live[row["id"]]
    if ns.json:
        print(json.dumps(rows))
        return EXIT_OK
    header = ("ID", "Started (UTC)", "Status", "Type", "Scenario", "Version", "Reqs", "RPS", "p95 ms")
    lines = [header] + [
        (
            str(r["id"]),
            str(r["started_at"])[:19],
            r["status"],
            r["test_type"],
            r["scenario"],
            r["app_version"],
            str(r["total_requests"] or r["stored_samples"] or 0),
            f"{r['rps'] or 0:.1f}",
            f"{r['p95_ms'] or 0:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_export(ns: argparse.Namespace) -> int:
    """`benchlab export --run ID --csv FILE | --baseline-json [FILE]`: raw samples, or the seed's baseline JSON."""
    if ns.csv is None and ns.baseline_json is None:
        raise BadInput("nothing to export: pass --csv FILE or --baseline-json [FILE]")
    store = open_store(ns)
    run = store.get_run(ns.run)
    if run is None:
        store.close()
        raise BadInput(f"run {ns.run} not found in {store.settings.url}")
    try:
        require_samples(store, [run], "export")
    except BadInput:
        store.close()
        raise
    if ns.baseline_json is not None:
        _export_baseline(store, ns.run, ns.baseline_json, ns.results_dir)
    if ns.csv is None:
        store.close()
        return EXIT_OK
    target: Path = ns.csv
    if not target.parent.is_dir():
        raise BadInput(f"cannot write {target}: directory {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(EXPORT_COLUMNS)
            for row in store.iter_samples(ns.run):
                writer.writerow([_plain(row[c]) for c in EXPORT_COLUMNS])
                count += 1
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
        store.close()
    print(f"exported {count} samples of run {ns.run} to {target}")
    return EXIT_OK


def _export_baseline(store: Store, run_id: int, target: Path, results_dir: Path) -> None:
    """The run's baseline JSON to a file, to stdout for `-`, or in the results layout under a folder (`results_dir`
    when no FILE was given)."""
    from benchlab.runners import baseline

    try:
        if str(target) == "-":
            print(json.dumps(baseline.build(store, run_id), indent=2))
            return
        if target == Path() or target.is_dir():
            path = baseline.write_run(store, run_id, results_dir if target == Path() else target)
        else:
            if not target.parent.is_dir():
                raise BadInput(f"cannot write {target}: directory {target.parent} does not exist")
            path = baseline.write(baseline.build(store, run_id), target)
    except BaseException:
        store.close()
        raise
    print(f"exported the baseline of run {run_id} to {path}")


def cmd_replay(ns: argparse.Namespace) -> int:
    """`benchlab replay`: write spooled batches to the store, then close interrupted runs; exit 1 while any remain."""
    from benchlab.metrics.store.rollup import refresh
    from benchlab.runners.recovery import close_interrupted

    store = open_store(ns, must_exist=False)
    spool = Spool(directory=store.settings.spool_dir)
    try:
        touched = {int(p.name[3:].split("-", 1)[0]) for p in spool.pending(ns.run)}  # run<id>-...jsonl
        done = replay_spool(store, spool, run_id=ns.run)
        left = spool.pending(ns.run)
        refresh(store, touched)  # finished runs that got samples: their rollups again
        closed = close_interrupted(store, spool, ns.run)
    finally:
        store.close()
    print(f"replayed {done} samples; {len(left)} spooled files left in {spool.directory}")
    for totals in closed:
        print(f"run {totals.run_id} interrupted: closed with {totals.stored_samples} stored samples")
    return EXIT_FAILED if left else EXIT_OK


def cmd_target(ns: argparse.Namespace) -> int:
    """`benchlab target`: serve the demo target until SIGTERM/SIGINT."""
    from benchlab.runners.demo.profile import resolve_profile
    from benchlab.runners.demo.server import serve

    settings = TargetSettings(
        version=ns.version,
        profile=ns.profile,
        bind=ns.bind,
        port=ns.port,
        redis_url=ns.redis_url,
        queue_prefix=ns.queue_prefix,
        slowdown=ns.slowdown,
        leak_kb=ns.leak_kb,
        delay_ms=ns.delay_ms,
        token_ttl=ns.token_ttl,
    )
    try:
        resolve_profile(settings)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return serve(settings)


def cmd_sidecar(ns: argparse.Namespace) -> int:
    """`benchlab sidecar`: runs until SIGTERM/SIGINT."""
    from benchlab.metrics.sidecar.daemon import SidecarSettings, run_sidecar
    from benchlab.metrics.sidecar.spec import parse_run_id, probe_from_flag, target_from_flag

    try:
        targets = tuple(
            target_from_flag(kind, value, service=ns.service)
            for kind in ("pid", "process", "port", "cgroup")
            for value in getattr(ns, kind)
        )
        probes = (
            tuple(probe_from_flag("redis", v, url=ns.redis_url) for v in ns.redis_list)
            + tuple(probe_from_flag("rabbitmq", v, url=ns.rabbitmq_url) for v in ns.rabbitmq_queue)
            + tuple(probe_from_flag("scrape", v) for v in ns.scrape)
        )
        settings = SidecarSettings(
            targets=targets,
            probes=probes,
            interval=ns.interval,
            metrics_port=ns.metrics_port,
            metrics_addr=ns.metrics_addr,
            run_id=parse_run_id(ns.run_id),
            config=ns.config,
        )
        store = None if ns.no_store else open_store(ns, must_exist=False)
        return run_sidecar(settings, store)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
