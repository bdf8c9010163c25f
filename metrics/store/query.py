"""Exact per-endpoint statistics of a run, computed over the stored samples.

Postgres aggregates in SQL with `percentile_cont`; SQLite streams the response times into numpy, whose
default (linear) percentile is the same interpolation as `percentile_cont`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Float, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import array

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import RequestSample, Run
from benchlab.metrics.store.stats import QUANTILES, TOTAL, EndpointStats


def endpoint_stats(
    store: Store, run_id: int | Sequence[int], *, between: Mapping[int, tuple[float, float]] | None = None
) -> list[EndpointStats]:
    """Per-endpoint rows sorted by name and method, then the total row last; empty when nothing was stored.

    Several run ids pool their samples: counts, means and exact percentiles over the union. `between` limits
    each run to the samples with from <= epoch seconds of ts < to (its steady state, say).
    """
    ids = [int(run_id)] if isinstance(run_id, int) else [int(i) for i in run_id]
    if not ids:
        return []
    where = _where(ids, between)
    rows = _postgres_stats(store, where) if store.is_postgres else _numpy_stats(store, where)
    codes = _status_counts(store, where)
    for row in rows:
        row.status_counts = codes.get((row.name, row.method), {})
    return sorted(rows, key=lambda r: (r.is_total, r.name, r.method))


def _where(ids: list[int], between: Mapping[int, tuple[float, float]] | None) -> ColumnElement[bool]:
    """Samples of the runs, each limited to its time range where one is given."""
    t = RequestSample.__table__.c
    if not between:
        return t.run_id.in_(ids)
    parts = []
    for run_id in ids:
        if run_id in between:
            start, stop = (datetime.fromtimestamp(x, UTC) for x in between[run_id])
            parts.append(and_(t.run_id == run_id, t.ts >= start, t.ts < stop))
        else:
            parts.append(t.run_id == run_id)
    return or_(*parts)


def _postgres_stats(store: Store, where: ColumnElement[bool]) -> list[EndpointStats]:
    t = RequestSample.__table__.c
    rt = t.response_time_ms
    pct = func.percentile_cont(array([literal(q, Float) for q in QUANTILES])).within_group(rt)
    grouping = func.grouping(t.name, t.method)
    query = (
        select(
            grouping,
            t.name,
            t.method,
            func.count(),
            func.sum(case((t.success, 0), else_=1)),
            func.avg(rt),
            pct,
            func.min(rt),
            func.max(rt),
            func.coalesce(func.sum(t.response_length), 0),
            func.coalesce(func.sum(t.request_length), 0),
            func.extract("epoch", func.min(t.ts)),
            func.extract("epoch", func.max(t.ts)),
        )
        .where(where)
        .group_by(func.grouping_sets(tuple_(t.name, t.method), tuple_()))
    )
    with store.engine.connect() as conn:
        result = conn.execute(query).all()
    out = []
    for g, name, method, n, fails, mean, (p50, p95, p99), lo, hi, rbytes, qbytes, first, last in result:
        key = TOTAL if g else (name, method)
        out.append(
            EndpointStats(
                key[0],
                key[1],
                int(n),
                int(fails),
                float(mean),
                float(p50),
                float(p95),
                float(p99),
                float(lo),
                float(hi),
                int(rbytes),
                int(qbytes),
                float(first),
                float(last),
            )
        )
    return out


def _numpy_stats(store: Store, where: ColumnElement[bool]) -> list[EndpointStats]:
    t = RequestSample.__table__.c
    query = select(t.name, t.method, t.response_time_ms, t.success, t.response_length, t.request_length, t.ts).where(
        where
    )
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=50_000).execute(query):
            groups[(row[0], row[1])].append(row[2:])
    if not groups:
        return []
    out = [_numpy_row(key, rows) for key, rows in groups.items()]
    out.append(_numpy_row(TOTAL, [r for rows in groups.values() for r in rows]))
    return out


def _numpy_row(key: tuple[str, str], rows: list[Any]) -> EndpointStats:
    rt = np.fromiter((r[0] for r in rows), dtype=float, count=len(rows))
    p50, p95, p99 = np.percentile(rt, [q * 100 for q in QUANTILES])
    stamps = [r[4].timestamp() if r[4].tzinfo else r[4].replace(tzinfo=UTC).timestamp() for r in rows]
    return EndpointStats(
        key[0],
        key[1],
        len(rows),
        sum(1 for r in rows if not r[1]),
        float(rt.mean()),
        float(p50),
        float(p95),
        float(p99),
        float(rt.min()),
        float(rt.max()),
        sum(r[2] or 0 for r in rows),
        sum(r[3] or 0 for r in rows),
        min(stamps),
        max(stamps),
    )


def _status_counts(store: Store, where: ColumnElement[bool]) -> dict[tuple[str, str], dict[str, int]]:
    t = RequestSample.__table__.c
    query = select(t.name, t.method, t.status_code, func.count()).where(where).group_by(t.name, t.method, t.status_code)
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    with store.engine.connect() as conn:
        for name, method, code, n in conn.execute(query):
            label = "none" if code is None or code == 0 else str(code)
            for key in ((name, method), TOTAL):
                out[key][label] = out[key].get(label, 0) + int(n)
    return out


# ---------------------------------------------------------------------------------------------- run selection


def _runs(store: Store, query: Any) -> list[Run]:
    with store.engine.connect() as conn:
        return [Run(**row) for row in conn.execute(query).mappings()]


def latest_runs(
    store: Store, *, version: str, scenario: str | None = None, test_type: str | None = None, limit: int = 1
) -> list[Run]:
    """The newest `limit` completed runs of a version (optionally of one scenario and test type), newest first."""
    t = Run.__table__.c
    query = select(Run.__table__).where(t.status == "completed", t.app_version == version)
    if scenario is not None:
        query = query.where(t.scenario == scenario)
    if test_type is not None:
        query = query.where(t.test_type == test_type)
    return _runs(store, query.order_by(t.started_at.desc(), t.id.desc()).limit(limit))


def versions(store: Store, *, scenario: str | None = None, test_type: str | None = None) -> list[str]:
    """App versions that have completed runs (optionally of one scenario and test type), sorted."""
    t = Run.__table__.c
    query = select(t.app_version).where(t.status == "completed").distinct()
    if scenario is not None:
        query = query.where(t.scenario == scenario)
    if test_type is not None:
        query = query.where(t.test_type == test_type)
    with store.engine.connect() as conn:
        return sorted(str(v) for v in conn.execute(query).scalars())


def runs_by_id(store: Store, ids: Sequence[int]) -> list[Run]:
    """The runs with these ids, in the given order; ids that do not exist are left out."""
    wanted = [int(i) for i in ids]
    if not wanted:
        return []
    found = {run.id: run for run in _runs(store, select(Run.__table__).where(Run.__table__.c.id.in_(wanted)))}
    return [found[i] for i in wanted if i in found]
