"""Exact per-endpoint statistics of a run, computed over the stored samples.

Postgres aggregates in SQL with `percentile_cont`; SQLite streams the response times into numpy, whose
default (linear) percentile is the same interpolation as `percentile_cont`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC
from typing import Any

import numpy as np
from sqlalchemy import Float, case, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import array

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import RequestSample
from benchlab.metrics.store.stats import QUANTILES, TOTAL, EndpointStats


def endpoint_stats(store: Store, run_id: int) -> list[EndpointStats]:
    """Per-endpoint rows sorted by name and method, then the total row last; empty when nothing was stored."""
    rows = _postgres_stats(store, run_id) if store.is_postgres else _numpy_stats(store, run_id)
    codes = _status_counts(store, run_id)
    for row in rows:
        row.status_counts = codes.get((row.name, row.method), {})
    return sorted(rows, key=lambda r: (r.is_total, r.name, r.method))


def _postgres_stats(store: Store, run_id: int) -> list[EndpointStats]:
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
        .where(t.run_id == run_id)
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


def _numpy_stats(store: Store, run_id: int) -> list[EndpointStats]:
    t = RequestSample.__table__.c
    query = select(t.name, t.method, t.response_time_ms, t.success, t.response_length, t.request_length, t.ts).where(
        t.run_id == run_id
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


def _status_counts(store: Store, run_id: int) -> dict[tuple[str, str], dict[str, int]]:
    t = RequestSample.__table__.c
    query = (
        select(t.name, t.method, t.status_code, func.count())
        .where(t.run_id == run_id)
        .group_by(t.name, t.method, t.status_code)
    )
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    with store.engine.connect() as conn:
        for name, method, code, n in conn.execute(query):
            label = "none" if code is None or code == 0 else str(code)
            for key in ((name, method), TOTAL):
                out[key][label] = out[key].get(label, 0) + int(n)
    return out
