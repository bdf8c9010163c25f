"""Retention: `benchlab prune` deletes the raw request samples of old runs and keeps what summarises them.

A pruned run keeps its row (summary columns), events, sidecar readings and rollups (`metrics.store.rollup`:
exact per-endpoint statistics, 10 s windows, outcomes, latency histogram), so Grafana, `benchlab runs` and
`benchlab trend` still show it; `run_rollups.pruned_at` marks it, and what needs its raw samples (`compare`,
`report`, `analyze`, `export`) says so in one line instead of showing nothing. Sidecar readings taken outside
any run and older than the cutoff go too. `benchlab rollup` writes the rollups of finished runs that have none
(stored by a benchlab without rollups), which the dashboards need.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import QueueSample, RequestSample, ResourceSample, Run, RunRollup
from benchlab.runners.errors import EXIT_OK, BadInput

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, kw_only=True)
class PruneSettings:
    """What `benchlab prune` was asked to do."""

    older_than: timedelta
    keep_versions: tuple[str, ...]
    dry_run: bool


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `2w`, `30m`, `45s`: a positive whole number and a unit."""
    match = _AGE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"bad age {text!r}: a whole number > 0 and a unit s, m, h, d or w (90d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def add_parser(sub: Any, db: Callable[[argparse.ArgumentParser], None]) -> None:
    """`benchlab prune` and `benchlab rollup`."""
    p = sub.add_parser("prune", help="delete old runs' raw samples; keep their rollups and summaries")
    p.add_argument(
        "--older-than", type=parse_age, required=True, metavar="AGE", help="prune runs started longer ago: 90d, 12h, 2w"
    )
    p.add_argument(
        "--keep-versions", nargs="+", action="extend", default=[], metavar="V", help="never prune these versions"
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be pruned; delete nothing")
    db(p)
    p.set_defaults(handler=cmd_prune)
    p = sub.add_parser("rollup", help="write the rollups of finished runs that have none (or rewrite --run's)")
    p.add_argument("--run", type=int, nargs="+", action="extend", default=[], metavar="ID", help="only these runs")
    db(p)
    p.set_defaults(handler=cmd_rollup)


def require_samples(store: Store, runs: Sequence[Run], what: str) -> None:
    """BadInput naming the first of `runs` whose raw samples were pruned: `what` (a command) reads them."""
    from benchlab.metrics.store.rollup import pruned  # numpy: imported when used, not with the CLI

    gone = pruned(store, [r.id for r in runs])
    for run in runs:
        if run.id in gone:
            raise BadInput(
                f"run {run.id} ({run.app_version}, started {_day(run.started_at)}): raw samples pruned "
                f"{_day(gone[run.id])} by benchlab prune, and {what} reads them; its summary and rollups remain"
            )


def _label(run: Run) -> str:
    return f"run {run.id} ({run.app_version}, {run.scenario} {run.test_type}, {_day(run.started_at)})"


def _day(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).strftime("%Y-%m-%d %H:%M UTC")


def prunable(store: Store, settings: PruneSettings, now: datetime) -> list[Run]:
    """Finished runs started before the cutoff, of versions not kept, whose samples are still there; oldest first."""
    from benchlab.metrics.store.rollup import pruned

    t = Run.__table__.c
    query = select(Run.__table__).where(t.status != "running", t.started_at < now - settings.older_than)
    if settings.keep_versions:
        query = query.where(t.app_version.not_in(settings.keep_versions))
    with store.engine.connect() as conn:
        runs = [Run(**row) for row in conn.execute(query.order_by(t.started_at, t.id)).mappings()]
    gone = pruned(store, [r.id for r in runs])
    return [r for r in runs if r.id not in gone]


def prune_run(store: Store, run: Run) -> int:
    """Roll the run up if it has no rollups, then delete its samples and mark it, in one transaction."""
    from benchlab.metrics.store.rollup import rolled_up, write_rollup

    if run.id not in rolled_up(store, [run.id]):
        write_rollup(store, run.id)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        deleted = conn.execute(delete(RequestSample).where(RequestSample.run_id == run.id)).rowcount
        conn.execute(update(RunRollup).where(RunRollup.run_id == run.id).values(pruned_at=now, pruned_samples=deleted))
    return int(deleted)


def _counts(store: Store, run_ids: list[int], before: datetime) -> tuple[int, int]:
    """Request samples of these runs, and sidecar readings outside any run taken before `before`."""
    samples = select(func.count()).select_from(RequestSample).where(RequestSample.run_id.in_(run_ids))
    with store.engine.connect() as conn:
        total = int(conn.execute(samples).scalar_one()) if run_ids else 0
        readings = sum(
            int(conn.execute(select(func.count()).where(m.run_id.is_(None), m.ts < before)).scalar_one())
            for m in (ResourceSample, QueueSample)
        )
    return total, readings


def _prune_readings(store: Store, before: datetime) -> int:
    deleted = 0
    with store.engine.begin() as conn:
        for model in (ResourceSample, QueueSample):
            deleted += conn.execute(delete(model).where(model.run_id.is_(None), model.ts < before)).rowcount
    return deleted


def prune(store: Store, settings: PruneSettings, *, now: datetime, say: Callable[[str], None]) -> int:
    """Prune (or with dry_run list) the runs and readings; the number of runs."""
    before = now - settings.older_than
    runs = prunable(store, settings, now)
    verb = "would prune" if settings.dry_run else "pruned"
    if settings.dry_run:
        samples, readings = _counts(store, [r.id for r in runs], before)
        for run in runs:
            say(f"would prune {_label(run)}")
    else:
        samples = 0
        for run in runs:
            n = prune_run(store, run)
            samples += n
            say(f"pruned {_label(run)}: {n:,} samples")
        readings = _prune_readings(store, before)
    kept = f"; versions kept: {', '.join(settings.keep_versions)}" if settings.keep_versions else ""
    say(
        f"{verb} {len(runs)} runs started before {_day(before)}: {samples:,} request samples, {readings:,} sidecar "
        f"readings outside runs; run summaries and rollups kept{kept}"
    )
    return len(runs)


def cmd_prune(ns: argparse.Namespace) -> int:
    """`benchlab prune --older-than AGE [--keep-versions V ...] [--dry-run]`."""
    from benchlab.runners.commands import open_store

    settings = PruneSettings(older_than=ns.older_than, keep_versions=tuple(ns.keep_versions), dry_run=ns.dry_run)
    store = open_store(ns)
    try:
        prune(store, settings, now=datetime.now(UTC), say=print)
    finally:
        store.close()
    return EXIT_OK


def cmd_rollup(ns: argparse.Namespace) -> int:
    """`benchlab rollup [--run ID ...]`: the rollups of finished runs without any, or rewritten for those named."""
    from benchlab.metrics.store.rollup import pruned, rolled_up, write_rollup
    from benchlab.runners.commands import open_store

    store = open_store(ns)
    try:
        t = Run.__table__.c
        query = select(t.id).where(t.status != "running").order_by(t.id)
        with store.engine.connect() as conn:
            finished = [int(i) for i in conn.execute(query.where(t.id.in_(ns.run)) if ns.run else query).scalars()]
        missing = sorted(set(ns.run) - set(finished))
        if missing:
            raise BadInput(f"run {', '.join(map(str, missing))} not found or still running in {store.settings.url}")
        todo = finished if ns.run else [i for i in finished if i not in rolled_up(store, finished)]
        gone = pruned(store, todo)
        for run_id in todo:
            if run_id in gone:
                print(f"run {run_id}: raw samples pruned; its rollups are kept as they are")
            else:
                print(f"run {run_id}: {write_rollup(store, run_id):,} samples rolled up")
        print(f"rolled up {len(todo) - len(gone)} runs")
    finally:
        store.close()
    return EXIT_OK
