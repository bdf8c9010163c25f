"""Per-window aggregates of stored samples, grouped in the database (Postgres and SQLite), never in Python.

A window is `floor(epoch seconds / window_s)`, absolute rather than relative to a run; a latency bucket is
`floor(ln(max(response ms, min_ms)) * buckets_per_e)`, so 50 buckets per e are about 2 % wide.

Epoch seconds are computed the same way on both databases: integer microseconds / 1e6 in double precision, which
is what Postgres's `date_part('epoch', ts)` does. On SQLite `Ts` is stored as text `YYYY-MM-DD HH:MM:SS.ffffff`
(UTC, the offset dropped); `julianday()` and `strftime('%s')` round that to milliseconds, so whole seconds come
from the first 19 characters and the microseconds from the last six.

A million samples make some 400k groups. On Postgres the groups of each run and endpoint are then packed into
one bytea of fixed-size big-endian records, which numpy unpacks: parsing 400k rows of text costs more than the
aggregation itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Connection, Float, Integer, LargeBinary, Subquery, case, cast, func, literal, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import QueueSample, RequestSample, ResourceSample
from benchlab.metrics.store.stats import WindowBlock

WindowRow = tuple[int, str, str, int, int, int, int, float]
"""(run_id, name, method, window, bucket, count, failures, sum_ms)."""
ValueRow = tuple[int, str, int, float]
"""(run_id, label, window, mean value)."""
RESOURCE_COLUMNS = ("cpu_percent", "rss_bytes")
"""Columns of `resource_samples` that resource_rows averages."""
_MATH_READY = "benchlab_sqlite_math"
_POSTGRES_SETTINGS = {"work_mem": "256MB", "jit": "off", "enable_sort": "off"}
"""Per transaction: hash aggregates in memory (1M samples take about 120 MB), no JIT compile, no sort-based plans."""
_PACKED = np.dtype([("w", ">i8"), ("b", ">i4"), ("n", ">i8"), ("f", ">i8"), ("s", ">f8")])
"""One packed group: int8send(window), int4send(bucket), int8send(count), int8send(failures), float8send(sum_ms)."""


def _ln(x: float | None) -> float | None:
    return math.log(x) if x is not None and x > 0 else None


def _floor(x: float | None) -> float | None:
    return float(math.floor(x)) if x is not None else None


def register_sqlite_math(dbapi_conn: Any) -> None:
    """Define `ln` and `floor` on a sqlite3 connection (for SQLite builds without math functions)."""
    dbapi_conn.create_function("ln", 1, _ln, deterministic=True)
    dbapi_conn.create_function("floor", 1, _floor, deterministic=True)


def _ensure_sqlite_math(conn: Connection) -> None:
    """Register the Python fallbacks once per DBAPI connection when `ln(1)` fails."""
    info = conn.connection.info
    if info.get(_MATH_READY):
        return
    try:
        conn.execute(select(func.ln(literal(1.0, Float)), func.floor(literal(1.5, Float)))).all()
    except OperationalError:
        register_sqlite_math(conn.connection.dbapi_connection)
    info[_MATH_READY] = True


def epoch_seconds(store: Store, ts: ColumnElement[Any]) -> ColumnElement[Any]:
    """Seconds since 1970 (double precision, microsecond exact) of a `Ts` column."""
    if store.is_postgres:
        return func.date_part("epoch", ts, type_=Float)
    whole = cast(func.strftime("%s", func.substr(ts, 1, 19)), Integer)
    micros = cast(func.substr(ts, 21, 6), Integer)
    return (whole * 1_000_000 + micros) / literal(1e6, Float)


def _window(store: Store, ts: ColumnElement[Any], window_s: float) -> ColumnElement[int]:
    return cast(func.floor(epoch_seconds(store, ts) / literal(float(window_s), Float)), BigInteger)


def _ids(run_ids: Sequence[int]) -> list[int]:
    return [int(i) for i in run_ids]


def window_rows(
    store: Store, run_ids: Sequence[int], *, window_s: float = 1.0, buckets_per_e: int = 50, min_ms: float = 0.001
) -> list[WindowRow]:
    """Sample count, failures and summed ms per run, endpoint, window and latency bucket, in no particular order."""
    blocks = window_blocks(store, run_ids, window_s=window_s, buckets_per_e=buckets_per_e, min_ms=min_ms)
    out: list[WindowRow] = []
    for blk in blocks:
        columns = (blk.window.tolist(), blk.bucket.tolist(), blk.requests.tolist(), blk.failures.tolist())
        out.extend(zip(repeat(blk.run_id), repeat(blk.name), repeat(blk.method), *columns, blk.sum_ms.tolist()))
    return out


def window_blocks(
    store: Store, run_ids: Sequence[int], *, window_s: float = 1.0, buckets_per_e: int = 50, min_ms: float = 0.001
) -> list[WindowBlock]:
    """The same groups as `window_rows`, as numpy arrays per run and endpoint (no Python object per group)."""
    if window_s <= 0 or buckets_per_e <= 0 or min_ms <= 0:
        raise ValueError("window_s, buckets_per_e and min_ms must be positive")
    ids = _ids(run_ids)
    if not ids:
        return []
    t = RequestSample.__table__.c
    floor_ms = literal(float(min_ms), Float)
    rt = t.response_time_ms
    clamped = func.greatest(rt, floor_ms) if store.is_postgres else func.max(rt, floor_ms)  # SQLite: scalar max
    bucket = cast(func.floor(func.ln(clamped) * literal(float(buckets_per_e), Float)), Integer)
    samples = (
        select(
            t.run_id,
            t.name,
            t.method,
            _window(store, t.ts, window_s).label("w"),
            bucket.label("b"),
            case((t.success, 0), else_=1).label("failed"),
            t.response_time_ms.label("ms"),
        )
        .where(t.run_id.in_(ids))
        .subquery()
    )
    keys = (samples.c.run_id, samples.c.name, samples.c.method, samples.c.w, samples.c.b)
    groups = select(
        *keys,
        func.count().label("n"),
        cast(func.sum(samples.c.failed), BigInteger).label("f"),
        func.sum(samples.c.ms).label("s"),
    ).group_by(*keys)
    with store.engine.begin() as conn:
        if store.is_postgres:
            return _packed_rows(conn, groups.subquery())
        _ensure_sqlite_math(conn)
        result = conn.execute(groups)
        try:  # sqlite3's own tuples already hold int, str and float: no Row objects for 400k rows
            return _blocks(result.cursor.fetchall())
        finally:
            result.close()


def _blocks(rows: Sequence[WindowRow]) -> list[WindowBlock]:
    """Rows grouped into one block per run and endpoint."""
    grouped: dict[tuple[int, str, str], list[WindowRow]] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1], row[2]), []).append(row)
    out = []
    for (run_id, name, method), members in grouped.items():
        a = np.array([r[3:7] for r in members], dtype=np.int64).reshape(-1, 4)
        sums = np.array([r[7] for r in members], dtype=float)
        out.append(WindowBlock(run_id, name, method, a[:, 0], a[:, 1], a[:, 2], a[:, 3], sums))
    return out


def _packed_rows(conn: Connection, groups: Subquery) -> list[WindowBlock]:
    """Postgres: the groups of each run and endpoint as one bytea of `_PACKED` records, unpacked by numpy."""
    conn.execute(select(*(func.set_config(k, v, True) for k, v in _POSTGRES_SETTINGS.items()))).all()
    g = groups.c
    parts: list[ColumnElement[Any]] = [
        func.int8send(g.w),
        func.int4send(g.b),
        func.int8send(g.n),
        func.int8send(g.f),
        func.float8send(cast(g.s, Float)),
    ]
    record = parts[0]
    for part in parts[1:]:
        record = record.op("||", return_type=LargeBinary)(part)
    packed = func.string_agg(record, literal(b"", LargeBinary), type_=LargeBinary)
    query = select(g.run_id, g.name, g.method, packed).group_by(g.run_id, g.name, g.method)
    out: list[WindowBlock] = []
    for run_id, name, method, blob in conn.execute(query):
        a = np.frombuffer(blob, dtype=_PACKED)
        w, b, n, f, s = (a[k].astype(np.int64 if k != "s" else float) for k in ("w", "b", "n", "f", "s"))
        out.append(WindowBlock(int(run_id), name, method, w, b, n, f, s))
    return out


def _mean_rows(
    store: Store, run_ids: Sequence[int], window_s: float, label: Any, value: Any, table: Any
) -> list[ValueRow]:
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    ids = _ids(run_ids)
    if not ids:
        return []
    inner = (
        select(
            table.c.run_id,
            label.label("label"),
            _window(store, table.c.ts, window_s).label("w"),
            cast(value, Float).label("v"),
        )
        .where(table.c.run_id.in_(ids), value.is_not(None))
        .subquery()
    )
    keys = (inner.c.run_id, inner.c.label, inner.c.w)
    query = select(*keys, func.avg(inner.c.v)).group_by(*keys).order_by(*keys)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(int(r), str(lab), int(w), float(v)) for r, lab, w, v in rows]


def resource_rows(store: Store, run_ids: Sequence[int], *, window_s: float = 1.0, column: str) -> list[ValueRow]:
    """Mean of `column` (cpu_percent or rss_bytes) per run, service and window, sorted; null readings skipped."""
    if column not in RESOURCE_COLUMNS:
        raise ValueError(f"column must be one of {RESOURCE_COLUMNS}, not {column!r}")
    table = ResourceSample.__table__
    return _mean_rows(store, run_ids, window_s, table.c.service, table.c[column], table)


def queue_rows(store: Store, run_ids: Sequence[int], *, window_s: float = 1.0) -> list[ValueRow]:
    """Mean queue length per run, queue and window, sorted; null readings skipped."""
    table = QueueSample.__table__
    return _mean_rows(store, run_ids, window_s, table.c.queue, table.c.length, table)
