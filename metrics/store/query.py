"""Exact per-endpoint statistics of a run, computed over the stored samples.

numpy's default (linear) percentile, the same interpolation as Postgres's `percentile_cont`, over every
sample: Postgres ships each endpoint's samples packed into one bytea in a single scan; SQLite streams them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Float,
    LargeBinary,
    Select,
    SmallInteger,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)

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
    rows = _postgres_stats(store, where) if store.is_postgres else _sqlite_stats(store, where)
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


_SAMPLE = np.dtype([("ms", ">f8"), ("code", ">i2")])
"""One sample as Postgres packs it for `_postgres_stats`: response time and status code (10 bytes)."""


def _sums(epoch: Callable[[Any], Any], *extra: Any) -> Select[Any]:
    """Per endpoint: name, method, failures, bytes received and sent, first and last epoch (by `epoch`), `extra`."""
    t = RequestSample.__table__.c
    return select(
        t.name,
        t.method,
        func.sum(case((t.success, 0), else_=1)),
        func.coalesce(func.sum(t.response_length), 0),
        func.coalesce(func.sum(t.request_length), 0),
        epoch(func.min(t.ts)),
        epoch(func.max(t.ts)),
        *extra,
    )


def _postgres_stats(store: Store, where: ColumnElement[bool]) -> list[EndpointStats]:
    """One scan: sums in SQL, and each endpoint's response times and codes packed into one bytea for numpy.

    A single pass replaces `percentile_cont`'s sorts (and a second pass for the status codes); numpy's linear
    percentile is the same interpolation, so the figures are identical.
    """
    t = RequestSample.__table__.c
    record = func.float8send(t.response_time_ms).op("||", return_type=LargeBinary)(
        func.int2send(cast(func.coalesce(t.status_code, 0), SmallInteger))
    )
    packed = func.string_agg(record, literal(b"", LargeBinary), type_=LargeBinary)
    query = _sums(lambda ts: func.date_part("epoch", ts), packed).where(where).group_by(t.name, t.method)
    groups: list[tuple[tuple[str, str], tuple[int, int, int, float, float], np.ndarray]] = []
    with store.engine.connect() as conn:
        for name, method, fails, rx, tx, first, last, blob in conn.execute(query):
            sums = (int(fails), int(rx), int(tx), float(first), float(last))
            groups.append(((name, method), sums, np.frombuffer(blob, dtype=_SAMPLE)))
            del blob
    if not groups:
        return []
    out = [_packed_row(key, [(sums, a)]) for key, sums, a in groups]
    out.append(_packed_row(TOTAL, [(sums, a) for _, sums, a in groups]))
    return out


def _packed_row(
    key: tuple[str, str], parts: list[tuple[tuple[int, int, int, float, float], np.ndarray]]
) -> EndpointStats:
    """Aggregates of one or more packed groups (only their response times are concatenated)."""
    rt = np.concatenate([a["ms"] for _, a in parts]).astype(float)
    p50, p95, p99 = np.percentile(rt, [q * 100 for q in QUANTILES])
    codes: dict[str, int] = defaultdict(int)
    for _, a in parts:
        for c, n in zip(*np.unique(a["code"], return_counts=True), strict=True):
            codes["none" if c == 0 else str(int(c))] += int(n)
    row = EndpointStats(
        key[0],
        key[1],
        int(rt.size),
        sum(s[0] for s, _ in parts),
        float(rt.mean()),
        float(p50),
        float(p95),
        float(p99),
        float(rt.min()),
        float(rt.max()),
        sum(s[1] for s, _ in parts),
        sum(s[2] for s, _ in parts),
        min(s[3] for s, _ in parts),
        max(s[4] for s, _ in parts),
    )
    row.status_counts = dict(codes)
    return row


def _sqlite_stats(store: Store, where: ColumnElement[bool]) -> list[EndpointStats]:
    """Sums in SQL; each endpoint's response times and codes streamed into numpy (the same rows as Postgres's)."""
    t = RequestSample.__table__.c
    sums_query = _sums(_sqlite_epoch).where(where).group_by(t.name, t.method)
    values: dict[tuple[str, str], tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
    with store.engine.connect() as conn:
        sums = {
            (r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]), float(r[5]), float(r[6])) for r in conn.execute(sums_query)
        }
        rows = conn.execution_options(yield_per=100_000).execute(
            select(t.name, t.method, t.response_time_ms, func.coalesce(t.status_code, 0)).where(where)
        )
        for name, method, ms, code in rows:
            times, codes = values[(name, method)]
            times.append(ms)
            codes.append(code)
    if not sums:
        return []
    groups = []
    for key, (times, codes) in values.items():
        packed = np.empty(len(times), dtype=_SAMPLE)
        packed["ms"], packed["code"] = times, codes
        groups.append((key, sums[key], packed))
    out = [_packed_row(key, [(part, a)]) for key, part, a in groups]
    out.append(_packed_row(TOTAL, [(part, a) for _, part, a in groups]))
    return out


def _sqlite_epoch(ts: Any) -> Any:
    """Epoch seconds of a stored SQLite timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), to the microsecond."""
    return cast(func.strftime("%s", ts), Float) + cast(func.substr(ts, 20), Float)


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


def running_runs(store: Store, run_id: int | None = None) -> list[Run]:
    """Runs still `running` in the store (of one id, when given), oldest first; some may be dead (see `liveness`)."""
    t = Run.__table__.c
    query = select(Run.__table__).where(t.status == "running")
    if run_id is not None:
        query = query.where(t.id == run_id)
    return _runs(store, query.order_by(t.id))
