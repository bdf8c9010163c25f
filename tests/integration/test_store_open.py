"""Several processes open one new Postgres store at once (a run and its sidecar do): the tables are created once."""

from __future__ import annotations

import multiprocessing
from typing import Any

from sqlalchemy import inspect

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Base


def _open(url: str, barrier: Any) -> None:
    store = Store(settings=StoreSettings(url=url))
    barrier.wait(60)  # every process connects first, then all create the tables at the same moment
    store.open().close()


def test_concurrent_opens_of_a_new_postgres_store_all_succeed(pg_url: str) -> None:
    # Without the advisory lock, two CREATE TABLEs of one name collide in pg_type ("duplicate key value").
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_open, args=(pg_url, barrier)) for _ in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    store = Store(settings=StoreSettings(url=pg_url))
    try:
        assert set(Base.metadata.tables) <= set(inspect(store.engine).get_table_names())
    finally:
        store.close()
