"""Postgres side of selfbench: a temp database, synthetic samples, COPY throughput and per-second counts."""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from psycopg2 import sql
from sqlalchemy import delete, text

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.database import Store, first_line, make_engine
from benchlab.metrics.store.model import RequestSample, Run
from benchlab.metrics.store.sample import Sample
from benchlab.runners.selfbench.report import MeasureError

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
"""Where the temp database is created (trust auth, as in the lab)."""
ENDPOINTS = (
    ("/", "GET", 60),
    ("/api/items", "GET", 20),
    ("/api/items/[id]", "GET", 12),
    ("/api/orders", "POST", 6),
    ("/login", "POST", 2),
)
"""(name, method, weight) of the synthetic samples' endpoints."""
_PER_SECOND_SQL = text(
    "SELECT floor(extract(epoch FROM ts) + response_time_ms / 1000.0)::bigint AS second, count(*)"
    " FROM request_samples WHERE run_id = :run_id GROUP BY 1"
)
_PER_SECOND_SQLITE = text(
    "SELECT CAST((julianday(ts) - 2440587.5) * 86400.0 + response_time_ms / 1000.0 AS INTEGER) AS second, count(*)"
    " FROM request_samples WHERE run_id = :run_id GROUP BY 1"
)


@contextmanager
def temp_database(admin_dsn: str = ADMIN_DSN) -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, and drop it (forcibly) afterwards."""
    name = f"benchlab_selfbench_{os.getpid()}_{secrets.token_hex(3)}"
    _admin(admin_dsn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(admin_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(dsn: str, statement: sql.Composed) -> None:
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        raise MeasureError(f"Postgres unreachable ({dsn}): {first_line(exc)}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def synthetic_samples(count: int, *, rps: float = 5000.0, seed: int = 1, start: float | None = None) -> list[Sample]:
    """`count` samples shaped like a FastHttpUser run at `rps`: mixed endpoints, lognormal times, ~1% failures."""
    rng = random.Random(seed)
    t0 = time.time() - count / rps if start is None else start
    picks = rng.choices(ENDPOINTS, weights=[e[2] for e in ENDPOINTS], k=count)
    out: list[Sample] = []
    for i, (name, method, _) in enumerate(picks):
        ms = rng.lognormvariate(1.3, 0.5)
        failed = rng.random() < 0.01
        status = 500 if failed else 200
        error = f"HTTPError: 500 Server Error: INTERNAL SERVER ERROR for url: {name}" if failed else None
        body = rng.randint(48, 400) if method == "POST" else None
        size = rng.randint(5, 2048) if not failed else 265
        out.append((t0 + (i + rng.random()) / rps, name, method, ms, size, body, status, not failed, error))
    return out


def copy_rates(
    url: str, rows: list[Sample], batches: Sequence[int], *, repeats: int = 1, spool_dir: Path
) -> dict[int, list[float]]:
    """Samples per second that `Store.write_samples` stores into a started run, per batch size, `repeats` times each.

    The sizes alternate; every pass writes all `rows` into a run of its own; those runs are deleted at the end.
    """
    store = Store(settings=StoreSettings(url=url, spool_dir=spool_dir)).open()
    meta = RunMeta(
        scenario="selfbench-copy",
        test_type="load",
        app_version="selfbench",
        environment="selfbench",
        host="http://127.0.0.1",
        locustfile="-",
        user_classes=(),
        users=0,
        spawn_rate=1.0,
        planned_duration_s=None,
        workers=0,
    )
    run_ids: list[int] = []
    try:
        rates: dict[int, list[float]] = {batch: [] for batch in batches}
        for batch in (b for _ in range(repeats) for b in batches):
            run_ids.append(store.start_run(meta))
            rates[batch].append(len(rows) / _timed_writes(store, run_ids[-1], rows, batch))
            stored = store.count_samples(run_ids[-1])
            if stored != len(rows):
                raise MeasureError(f"COPY stored {stored} of {len(rows)} samples")
        return rates
    finally:
        with store.engine.begin() as conn:
            conn.execute(delete(RequestSample).where(RequestSample.run_id.in_(run_ids)))
            conn.execute(delete(Run).where(Run.id.in_(run_ids)))
        store.close()


def _timed_writes(store: Store, run_id: int, rows: list[Sample], batch: int) -> float:
    """Seconds spent inside `write_samples` writing `rows` in batches of `batch`."""
    spent = 0.0
    for at in range(0, len(rows), batch):
        chunk = rows[at : at + batch]
        began = time.perf_counter()
        store.write_samples(run_id, None, chunk)
        spent += time.perf_counter() - began
    return spent


def per_second(url: str, run_id: int) -> dict[int, int]:
    """Stored samples of a run counted by the second they completed in (Locust's own bucketing)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sql = _PER_SECOND_SQLITE if engine.dialect.name == "sqlite" else _PER_SECOND_SQL
            return {int(s): int(n) for s, n in conn.execute(sql, {"run_id": run_id})}
    finally:
        engine.dispose()


def synthetic_meta(version: str, seconds: float, scenario: str) -> RunMeta:
    """The run row of a synthetic selfbench run (100 users on 127.0.0.1, no locustfile)."""
    return RunMeta(
        scenario=scenario,
        test_type="load",
        app_version=version,
        environment="selfbench",
        host="http://127.0.0.1",
        locustfile="-",
        user_classes=(),
        users=100,
        spawn_rate=100.0,
        planned_duration_s=seconds,
        workers=0,
    )
