"""Aggregations for reports: errors grouped by message, queue backlog age per window, a scenario's run history.

Like `window`, everything here is grouped in the database; nothing is read sample by sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import QueueSample, RequestSample, Run
from benchlab.metrics.store.window import ValueRow, _mean_rows


@dataclass(frozen=True, kw_only=True)
class ErrorCount:
    """Failed requests of one endpoint with one error message (or status code when there is no message)."""

    name: str
    method: str
    message: str
    count: int


@dataclass(frozen=True, kw_only=True)
class HistoryRow:
    """One completed run of a scenario, with its summary columns."""

    run_id: int
    app_version: str
    test_type: str
    started_at: datetime
    p95_ms: float | None
    rps: float | None
    error_rate: float | None


def error_counts(store: Store, run_ids: Sequence[int], *, limit: int = 50) -> list[ErrorCount]:
    """Failures grouped by endpoint and error text, most frequent first (at most `limit` groups)."""
    ids = [int(i) for i in run_ids]
    if not ids:
        return []
    t = RequestSample.__table__.c
    keys = (t.name, t.method, t.error, t.status_code)
    n = func.count().label("n")
    query = (
        select(*keys, n)
        .where(t.run_id.in_(ids), t.success.is_(False))
        .group_by(*keys)
        .order_by(n.desc(), t.name, t.method)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for name, method, error, status, count in rows:
        message = error if error else f"HTTP {status}" if status else "no response"
        out.append(ErrorCount(name=name, method=method, message=str(message), count=int(count)))
    return out


def backlog_rows(store: Store, run_ids: Sequence[int], *, window_s: float = 1.0) -> list[ValueRow]:
    """Mean backlog age (seconds) of the oldest queued job per run, queue and window, sorted."""
    table = QueueSample.__table__
    return _mean_rows(store, run_ids, window_s, table.c.queue, table.c.backlog_age_seconds, table)


def history(
    store: Store,
    *,
    scenario: str,
    test_type: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[HistoryRow]:
    """The newest `limit` completed runs of a scenario (optionally of one test type, since a time), oldest first."""
    t = Run.__table__.c
    query = select(t.id, t.app_version, t.test_type, t.started_at, t.p95_ms, t.rps, t.error_rate).where(
        t.status == "completed", t.scenario == scenario
    )
    if test_type is not None:
        query = query.where(t.test_type == test_type)
    if since is not None:
        query = query.where(t.started_at >= since)
    query = query.order_by(t.started_at.desc(), t.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        HistoryRow(
            run_id=int(r[0]),
            app_version=str(r[1]),
            test_type=str(r[2]),
            started_at=r[3],
            p95_ms=r[4],
            rps=r[5],
            error_rate=r[6],
        )
        for r in reversed(rows)
    ]


def latest_of_type(store: Store, *, scenario: str, test_type: str) -> Run | None:
    """The newest completed run of a scenario and test type (the last stress run, say), or None."""
    t = Run.__table__.c
    query = (
        select(Run.__table__)
        .where(t.status == "completed", t.scenario == scenario, t.test_type == test_type)
        .order_by(t.started_at.desc(), t.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return Run(**row) if row else None
