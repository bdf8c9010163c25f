"""Reading a run's raw samples for its rollups (`metrics.store.rollup`): one scan, one endpoint at a time.

On Postgres each endpoint's response times, times, codes and outcomes are packed into one bytea per minute of
the endpoint (fixed-size big-endian records that numpy unpacks), streamed, with the byte sums computed in SQL; on
SQLite rows, grouped by endpoint here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Float, LargeBinary, SmallInteger, cast, func, literal, select

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import RequestSample
from benchlab.metrics.store.window import epoch_seconds

SLICE_S = 60
"""Postgres ships the samples of one endpoint in slices this long (a multiple of `rollup.WINDOW_S`)."""
_PACKED = np.dtype([("ms", ">f8"), ("epoch", ">f8"), ("code", ">i2"), ("ok", "?")])
"""One sample as Postgres packs it: response time, epoch seconds, status code (0 for none), success."""
_POSTGRES_SETTINGS = {"work_mem": "256MB", "jit": "off", "enable_sort": "off"}
"""Per transaction, as `window`: Postgres cannot estimate the slices and would sort 10M rows; a hash of the
slices holds them in memory instead (10M samples: about 270 MB), with no JIT compile."""


@dataclass
class Group:
    """The samples of one endpoint of a run, as arrays, and the sums the database computed."""

    name: str
    method: str
    ms: np.ndarray
    epoch: np.ndarray
    code: np.ndarray
    """Status code, 0 for none."""
    ok: np.ndarray
    response_bytes: int
    request_bytes: int


def groups(store: Store, run_id: int) -> Iterator[Group]:
    """The run's samples, endpoint by endpoint (on Postgres a minute of one endpoint at a time)."""
    return _postgres_groups(store, run_id) if store.is_postgres else _sqlite_groups(store, run_id)


def _postgres_groups(store: Store, run_id: int) -> Iterator[Group]:
    """One scan: each minute of each endpoint packed into one bytea (tens of MB at most), streamed; sums in SQL."""
    t = RequestSample.__table__.c
    cat = "||"
    record = (
        func.float8send(t.response_time_ms)
        .op(cat, return_type=LargeBinary)(func.float8send(func.date_part("epoch", t.ts)))
        .op(cat, return_type=LargeBinary)(func.int2send(cast(func.coalesce(t.status_code, 0), SmallInteger)))
        .op(cat, return_type=LargeBinary)(func.boolsend(t.success))
    )
    minute = func.floor(func.date_part("epoch", t.ts) / literal(float(SLICE_S), Float))
    query = (
        select(
            t.name,
            t.method,
            func.coalesce(func.sum(t.response_length), 0),
            func.coalesce(func.sum(t.request_length), 0),
            func.string_agg(record, literal(b"", LargeBinary), type_=LargeBinary),
        )
        .where(t.run_id == run_id)
        .group_by(t.name, t.method, minute)
    )
    with store.engine.connect() as conn:
        for key, value in _POSTGRES_SETTINGS.items():
            conn.exec_driver_sql(f"SET LOCAL {key} = '{value}'")
        for name, method, rx, tx, blob in conn.execution_options(stream_results=True, yield_per=16).execute(query):
            packed = np.frombuffer(blob, dtype=_PACKED)
            del blob
            yield Group(
                name,
                method,
                packed["ms"].astype(float),
                packed["epoch"].astype(float),
                packed["code"].astype(np.int16),
                packed["ok"].copy(),
                int(rx),
                int(tx),
            )


def _sqlite_groups(store: Store, run_id: int) -> Iterator[Group]:
    t = RequestSample.__table__.c
    query = select(
        t.name,
        t.method,
        t.response_time_ms,
        epoch_seconds(store, t.ts),
        func.coalesce(t.status_code, 0),
        t.success,
        func.coalesce(t.response_length, 0),
        func.coalesce(t.request_length, 0),
    ).where(t.run_id == run_id)
    by_key: dict[tuple[str, str], list[Any]] = {}
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=50_000).execute(query):
            by_key.setdefault((row[0], row[1]), []).append(row[2:])
    for (name, method), rows in by_key.items():
        ms, epoch, code, ok, rx, tx = (np.array(col) for col in zip(*rows, strict=True))
        yield Group(
            name,
            method,
            ms.astype(float),
            epoch.astype(float),
            code.astype(np.int16),
            ok.astype(bool),
            int(rx.sum()),
            int(tx.sum()),
        )
