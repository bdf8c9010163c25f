"""Collector and spool against a real SQLite store: buffering, spooling on failure, replay, claims."""

from __future__ import annotations

import time
from pathlib import Path

from run_meta import run_meta
from sqlalchemy import text

from benchlab.metrics.collector import RequestCollector
from benchlab.metrics.settings import CollectorSettings, StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import BatchWriter, WriterProcess, replay_spool

META = run_meta(scenario="unit", app_version="1")


class _Resp:
    status_code = 201

    class request:
        body = b'{"type": "simple"}'


def _store(tmp_path: Path) -> Store:
    return Store(settings=StoreSettings(url=f"sqlite:///{tmp_path / 'db' / 's.db'}", spool_dir=tmp_path / "spool"))


def test_hook_records_every_field(tmp_path: Path) -> None:
    store = _store(tmp_path).open()
    run_id = store.start_run(META)
    writer = BatchWriter(store=store, spool=Spool(directory=tmp_path / "spool"), run_id=run_id, worker="w1")
    collector = RequestCollector(sink=writer, run_id=run_id)
    collector.on_request("POST", "/gen", 12.345678, 99, response=_Resp(), exception=None, start_time=1.7e9)
    collector.on_request("GET", "/x", 3.0, 0, response=None, exception=ConnectionError("refused"), start_time=1.7e9)
    collector.flush()
    rows = sorted(store.iter_samples(run_id), key=lambda r: r["name"])
    assert [r["name"] for r in rows] == ["/gen", "/x"]
    ok, bad = rows
    assert (ok["method"], ok["response_time_ms"], ok["response_length"], ok["request_length"]) == (
        "POST",
        12.345678,
        99,
        18,
    )
    assert (ok["status_code"], ok["success"], ok["error"], ok["worker"]) == (201, True, None, "w1")
    assert (bad["success"], bad["status_code"], bad["error"]) == (False, None, "ConnectionError: refused")


def test_failed_writes_are_spooled_and_replayed_without_loss(tmp_path: Path) -> None:
    store = _store(tmp_path).open()
    run_id = store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    settings = CollectorSettings(flush_interval=0.05, retry_interval=0.1)
    writer = BatchWriter(store=store, spool=spool, run_id=run_id, worker=None, settings=settings)
    collector = RequestCollector(sink=writer, run_id=run_id, settings=settings).start()
    for i in range(500):
        collector.on_request("GET", "/a", float(i), 1, start_time=time.time())
    time.sleep(0.3)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE request_samples RENAME TO request_samples_away"))
    for i in range(700):
        collector.on_request("GET", "/b", float(i), 1, start_time=time.time())
    time.sleep(0.4)
    assert writer.stats.spooled == 700 and spool.pending(run_id)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE request_samples_away RENAME TO request_samples"))
    stats = collector.stop()
    assert (stats.received, stats.stored, stats.spooled, stats.replayed, stats.pending) == (1200, 500, 700, 700, 0)
    assert store.count_samples(run_id) == 1200
    assert not spool.pending()


def test_claimed_files_are_invisible_and_release_restores_them(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path)
    path = spool.put(7, "w2", [(1.0, "/a", "GET", 2.5, 3, None, 200, True, None)])
    claimed = spool.claim(path)
    assert claimed is not None and spool.pending(7) == [] and spool.claim(path) is None
    assert Spool.release(claimed) == path and spool.pending(7) == [path]
    batch = Spool.load(path)
    assert (batch.run_id, batch.worker, batch.rows) == (7, "w2", [(1.0, "/a", "GET", 2.5, 3, None, 200, True, None)])


def test_spooled_events_replay_into_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path).open()
    run_id = store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    spool.put_events([(run_id, 1.7e9, "users", 5, "users=5", None)])
    spool.put(run_id, None, [(1.7e9, "/a", "GET", 1.0, 1, None, 200, True, None)])
    assert replay_spool(store, spool) == 1
    assert [e["kind"] for e in store.events(run_id)] == ["users"]
    assert store.count_samples(run_id) == 1


def test_writer_process_stores_everything_and_survives_its_own_death(tmp_path: Path) -> None:
    store = _store(tmp_path).open()
    run_id = store.start_run(META)
    sink = WriterProcess(store=store.settings, run_id=run_id, worker="w9")
    collector = RequestCollector(sink=sink, run_id=run_id, settings=CollectorSettings(flush_interval=0.05)).start()
    for i in range(3000):
        collector.on_request("GET", "/a", float(i), 1, start_time=time.time())
    collector.note("users", "users=3", 3)
    deadline = time.monotonic() + 20
    while store.count_samples(run_id) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    sink._child.kill()  # the child dies mid-run: the collector must carry on writing from this process
    for i in range(2000):
        collector.on_request("GET", "/b", float(i), 1, start_time=time.time())
    stats = collector.stop()
    assert store.count_samples(run_id) == 5000
    assert stats.received == 2000 and stats.stored == 2000
    assert {r["worker"] for r in store.iter_samples(run_id)} == {"w9"}
    assert [e["kind"] for e in store.events(run_id)] == ["users"]


def test_writer_process_reports_its_counts(tmp_path: Path) -> None:
    store = _store(tmp_path).open()
    run_id = store.start_run(META)
    sink = WriterProcess(store=store.settings, run_id=run_id, worker=None)
    sink.samples([(1.7e9, "/a", "GET", 1.0, 1, None, 200, True, None)] * 10)
    stats = sink.finish()
    assert (stats.received, stats.stored, stats.spooled, stats.pending) == (10, 10, 0, 0)
    assert sink._child.returncode == 0
