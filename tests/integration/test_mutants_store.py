"""The write path at its edges, through `Store` (SQLAlchemy) and `Bulk` (the writer child's bare DB-API), on
Postgres (COPY) and SQLite (inserts): every value comes back exactly as written."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from run_meta import run_meta
from sqlalchemy import text

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.bulk import Bulk, sqlite_path
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.liveness import utc
from benchlab.metrics.store.sample import Sample

T0 = 1_714_996_800  # 2024-05-06 12:00:00 UTC
META = run_meta(scenario="write")
EDGES: list[Sample] = [
    (T0 + 0.000001, 'q "a,b"', "GET", 0.1 + 0.2, 0, None, 0, False, ""),
    (T0 + 0.9999996, "/x\nline, two", "POST", 1e-7, None, 0, None, True, None),
    (T0 + 1.5, "\\back\\slash", "PUT", 123456.789012345, 17, 3, 503, False, 'HTTPError: "x"\r\nmore'),
    (T0 + 3600.25, "ünïcode ✓", "DELETE", 5.0, 2**40, 1, 204, True, "NULL"),
]
"""Quotes, commas, newlines, backslashes, empty strings versus NULL, zeros, float precision, a fraction rounding up."""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'w.db'}" if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(settings=StoreSettings(url=url)).open()
    yield s
    s.close()


@pytest.fixture(params=["store", "bulk"])
def writer(request: pytest.FixtureRequest, store: Store) -> Iterator[Any]:
    """What writes: the Store itself, or a Bulk connection to the same database."""
    if request.param == "store":
        yield store
    else:
        bulk = Bulk(str(store.settings.url))
        yield bulk
        bulk.close()


def _micros(ts: datetime) -> int:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def _back(store: Store, run_id: int) -> list[tuple[object, ...]]:
    cols = ("name", "method", "response_time_ms", "response_length", "request_length", "status_code", "error")
    return [
        (_micros(r["ts"]), r["worker"], *(r[c] for c in cols), bool(r["success"])) for r in store.iter_samples(run_id)
    ]


@pytest.mark.parametrize("worker", [None, "w-1", 'odd "worker", ü', ""])
def test_every_value_comes_back_exactly(store: Store, writer: Any, worker: str | None) -> None:
    run_id = store.start_run(META)
    writer.write_samples(run_id, worker, EDGES)
    want = [
        (T0 * 1_000_000 + 1, worker, *EDGES[0][1:7], "", False),
        (T0 * 1_000_000 + 999_999, worker, *EDGES[1][1:7], None, True),  # .9999996 stays in its second
        ((T0 + 1) * 1_000_000 + 500_000, worker, *EDGES[2][1:7], EDGES[2][8], False),
        ((T0 + 3600) * 1_000_000 + 250_000, worker, *EDGES[3][1:7], "NULL", True),
    ]
    assert _back(store, run_id) == want


def test_large_batches_are_written_whole_and_nothing_for_none(store: Store, writer: Any) -> None:
    run_id = store.start_run(META)
    writer.write_samples(run_id, "w", [])
    assert store.count_samples(run_id) == 0
    batch = [(T0 + i / 1000, f"/e{i % 7}", "GET", float(i), i, None, 200, i % 3 != 0, None) for i in range(12_345)]
    writer.write_samples(run_id, "w", batch)
    back = _back(store, run_id)
    assert len(back) == 12_345 and sorted(r[4] for r in back) == [float(i) for i in range(12_345)]  # type: ignore[type-var]
    assert sum(1 for r in back if not r[-1]) == len(range(0, 12_345, 3))
    assert {r[2] for r in back} == {f"/e{k}" for k in range(7)}


def test_events_come_back_as_the_store_writes_them(store: Store, writer: Any) -> None:
    run_id = store.start_run(META)
    writer.add_events([])
    writer.add_events(
        [
            (run_id, T0 + 0.25, "users", 5, "users=5", {"k": [1, "ü"]}),
            (run_id, T0 + 1.999999, "stop", None, None, None),
        ]
    )
    got = [(_micros(e["ts"]), e["kind"], e["user_count"], e["message"], e["data"]) for e in store.events(run_id)]
    assert got == [
        (T0 * 1_000_000 + 250_000, "users", 5, "users=5", {"k": [1, "ü"]}),
        (T0 * 1_000_000 + 1_999_999, "stop", None, None, None),
    ]
    with pytest.raises(Exception):  # noqa: B017 - sqlite3 and psycopg2 raise their own IntegrityError
        writer.add_events([(run_id + 1000, T0, "users", 1, None, None)])  # no such run: refused on both stores


def _set_heartbeat(store: Store, run_id: int, when: datetime, status: str = "running") -> None:
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET heartbeat_at = :t, status = :s WHERE id = :i"), {"t": when, "s": status, "i": run_id}
        )


def _heartbeat(store: Store, run_id: int) -> datetime:
    run = store.get_run(run_id)
    assert run is not None and run.heartbeat_at is not None
    return utc(run.heartbeat_at)


def test_bulk_heartbeat_marks_running_runs_only(store: Store) -> None:
    running, done = store.start_run(META), store.start_run(META)
    old = datetime.now(UTC) - timedelta(hours=2)
    _set_heartbeat(store, running, old)
    _set_heartbeat(store, done, old, status="completed")
    bulk = Bulk(str(store.settings.url))
    assert bulk.heartbeat(running) and bulk.heartbeat(done)
    assert abs(_heartbeat(store, running) - datetime.now(UTC)) < timedelta(minutes=1)
    assert _heartbeat(store, done) < old + timedelta(seconds=1)
    bulk.close()
    bulk.close()  # closing twice is fine


def test_bulk_reconnects_after_a_refused_write(store: Store) -> None:
    run_id = store.start_run(META)
    bulk = Bulk(str(store.settings.url))
    good: list[Sample] = [(T0, "/ok", "GET", 1.0, None, None, 200, True, None)] * 3
    bulk.write_samples(run_id, None, good)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE request_samples RENAME TO request_samples_away"))
    with pytest.raises(Exception, match="request_samples"):
        bulk.write_samples(run_id, None, good)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE request_samples_away RENAME TO request_samples"))
    bulk.write_samples(run_id, None, good)
    assert store.count_samples(run_id) == 6
    bulk.close()
    bulk.write_samples(run_id, None, good)  # a closed Bulk connects again
    assert store.count_samples(run_id) == 9
    bulk.close()


def test_bulk_on_a_new_sqlite_file_makes_its_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "b.db"
    bulk = Bulk(f"sqlite:///{path}")
    assert not bulk.heartbeat(1)  # no tables yet: refused, and said so by False
    bulk.close()
    assert path.exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///results/b.db", "results/b.db"),
        ("sqlite:////abs/b.db", "/abs/b.db"),
        ("sqlite+pysqlite:///x.db?timeout=5", "x.db"),
        ("sqlite:///x.db?a=1?b=2", "x.db"),
        ("sqlite:///dir/a.db?uri=file://x", "dir/a.db"),
        ("postgresql://u@h/d", None),
        ("postgresql+psycopg2://u@h/d", None),
    ],
)
def test_sqlite_path(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


def test_bulk_names_itself_to_postgres_and_takes_driver_urls(pg_url: str) -> None:
    store = Store(settings=StoreSettings(url=pg_url)).open()
    run_id = store.start_run(META)
    bulk = Bulk(pg_url.replace("postgresql://", "postgresql+psycopg2://"))
    bulk.write_samples(run_id, None, EDGES[:1])
    assert store.count_samples(run_id) == 1
    store.close()  # only the Bulk connection is left
    dbname = pg_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(pg_url)
    with admin.cursor() as cur:
        cur.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
        )
        names = [r[0] for r in cur.fetchall()]
    admin.close()
    assert names == ["benchlab"]
    bulk.close()


def test_bulk_times_keep_their_instant_whatever_the_server_time_zone(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(settings=StoreSettings(url=pg_url)).open()
    run_id = store.start_run(META)
    monkeypatch.setenv("PGTZ", "America/New_York")  # the session time zone of the Bulk connection
    bulk = Bulk(pg_url)
    bulk.add_events([(run_id, T0 + 0.5, "users", 1, None, None)])
    _set_heartbeat(store, run_id, datetime.now(UTC) - timedelta(hours=3))
    assert bulk.heartbeat(run_id)
    bulk.close()
    assert [_micros(e["ts"]) for e in store.events(run_id)] == [T0 * 1_000_000 + 500_000]
    assert abs(_heartbeat(store, run_id) - datetime.now(UTC)) < timedelta(minutes=1)
    store.close()


def test_copy_strips_nul_which_postgres_text_cannot_hold(pg_url: str) -> None:
    store = Store(settings=StoreSettings(url=pg_url)).open()
    run_id = store.start_run(META)
    store.write_samples(run_id, "w\x00x", [(T0, "/a\x00b", "GET", 1.0, None, None, 200, True, "e\x00rr")])
    (row,) = store.iter_samples(run_id)
    assert (row["worker"], row["name"], row["error"]) == ("wx", "/ab", "err")
    store.close()


def test_a_refused_copy_raises_and_the_next_write_works(pg_url: str) -> None:
    store = Store(settings=StoreSettings(url=pg_url)).open()
    run_id = store.start_run(META)
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = '/refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;"
            "CREATE TRIGGER refuse BEFORE INSERT ON request_samples FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    conn.close()
    good: list[Sample] = [(T0, "/ok", "GET", 1.0, None, None, 200, True, None)] * 3
    bad = [*good, (T0, "/refused", "GET", 1.0, None, None, 200, True, None)]
    bulk = Bulk(pg_url)
    for writer in (store, bulk):
        with pytest.raises(Exception, match="refused by the test"):
            writer.write_samples(run_id, None, bad)
    assert store.count_samples(run_id) == 0  # the whole batch or nothing
    for _ in range(3):  # every connection still works
        store.write_samples(run_id, None, good)
        bulk.write_samples(run_id, None, good)
    assert store.count_samples(run_id) == 18
    bulk.close()
    store.close()


def test_stored_times_do_not_depend_on_the_machine_time_zone(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = store.start_run(META)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        store.write_samples(run_id, None, EDGES[:1])
        bulk = Bulk(str(store.settings.url))
        bulk.write_samples(run_id, "b", EDGES[:1])
        bulk.close()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [r[0] for r in _back(store, run_id)] == [T0 * 1_000_000 + 1] * 2
