"""Runs over time: what trends and per-run analyses read (completed runs in a time window, events by kind)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Run, RunEvent


def runs_since(store: Store, *, scenario: str, since: datetime, test_type: str | None = None) -> list[Run]:
    """Completed runs of a scenario (and test type) started at or after `since`, oldest first."""
    t = Run.__table__.c
    query = select(Run.__table__).where(t.status == "completed", t.scenario == scenario, t.started_at >= since)
    if test_type is not None:
        query = query.where(t.test_type == test_type)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.started_at, t.id)).mappings().all()
    return [Run(**row) for row in rows]


def latest_test_type(store: Store, *, scenario: str) -> str | None:
    """Test type of the newest completed run of a scenario, or None when it has none."""
    t = Run.__table__.c
    query = (
        select(t.test_type)
        .where(t.status == "completed", t.scenario == scenario)
        .order_by(t.started_at.desc(), t.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        value = conn.execute(query).scalar()
    return str(value) if value is not None else None


def scenarios(store: Store) -> list[str]:
    """Scenarios that have completed runs, sorted."""
    t = Run.__table__.c
    query = select(t.scenario).where(t.status == "completed").distinct()
    with store.engine.connect() as conn:
        return sorted(str(v) for v in conn.execute(query).scalars())


def events_of(store: Store, run_id: int, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """A run's events of some kinds, in time order, with `ts` as epoch seconds."""
    t = RunEvent.__table__.c
    query = select(t.ts, t.kind, t.user_count, t.message).where(t.run_id == run_id, t.kind.in_(kinds))
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.ts, t.id)).mappings().all()
    return [{**row, "ts": _epoch(row["ts"])} for row in rows]


def _epoch(ts: datetime) -> float:
    """Epoch seconds of a stored timestamp (SQLite returns it naive, in UTC)."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
