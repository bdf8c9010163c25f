"""The spool's files, their order and claims, the replay and BatchWriter's accounting, on a real SQLite store."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from run_meta import run_meta
from sqlalchemy import text

from benchlab.metrics.settings import CollectorSettings, StoreSettings
from benchlab.metrics.store.bulk import first_line
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.liveness import utc
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import BatchWriter, replay_spool

META = run_meta(scenario="spool")
ROW: Sample = (1.7e9 + 0.25, '/q?x="1",y', "POST", 12.5, None, 7, None, False, "Err: ünïcode\nline 2")


def rows(n: int, name: str = "/a") -> list[Sample]:
    return [(1.7e9 + i / 1000, name, "GET", 1.0 + i, 10, None, 200, True, None) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(settings=StoreSettings(url=f"sqlite:///{tmp_path / 'db' / 's.db'}")).open()
    yield s
    s.close()


@contextmanager
def refused(store: Store, table: str = "request_samples") -> Iterator[None]:
    """The store refuses writes to `table` (renamed away) until the block ends."""
    with store.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def touch(directory: Path, *names: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / n for n in names]
    for p in paths:
        p.write_text(json.dumps({"run_id": 1, "worker": None}) + "\n")
    return paths


# -- files --------------------------------------------------------------------------------------------------------


def test_spool_files_name_run_label_pid_time_and_sequence_and_hold_json_lines(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path / "a" / "b")
    first = spool.put(3, "w-1", [ROW, ROW])
    second = spool.put(3, None, rows(1))
    third = spool.put_events([(3, 1.7e9, "users", 5, "users=5", {"k": 1}), (3, 1.7e9 + 1, "stop", None, None, None)])
    pid = os.getpid()
    assert re.fullmatch(rf"run3-w-1-{pid}-\d+-1\.jsonl", first.name)
    assert re.fullmatch(rf"run3-main-{pid}-\d+-2\.jsonl", second.name)
    assert re.fullmatch(rf"run3-events-{pid}-\d+-3\.jsonl", third.name)
    assert sorted(p.name for p in spool.directory.iterdir()) == sorted(p.name for p in (first, second, third))
    lines = first.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"run_id": 3, "worker": "w-1"} and len(lines) == 3
    assert json.loads(lines[1]) == list(ROW)
    head = json.loads(third.read_text(encoding="utf-8").splitlines()[0])
    assert head["run_id"] == 3 and head["worker"] is None and len(head["events"]) == 2


def test_load_gives_back_what_was_put(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path)
    path = spool.put(9, "w2", [ROW, *rows(2)])
    batch = Spool.load(path)
    assert (batch.path, batch.run_id, batch.worker, batch.rows, batch.events) == (path, 9, "w2", [ROW, *rows(2)], [])
    events = [(9, 1.7e9, "users", 5, "users=5", {"k": [1, 2]}), (9, 1.7e9 + 0.5, "stop", None, None, None)]
    back = Spool.load(spool.put_events(events))
    assert (back.run_id, back.worker, back.rows, back.events) == (9, None, [], events)
    assert Spool.load(spool.put(9, None, [])).worker is None
    odd = tmp_path / "run9-x-1-1-1.jsonl"
    odd.write_text('{"run_id": "9", "worker": "w"}\n\n' + json.dumps(list(ROW)) + "\n  \n", encoding="utf-8")
    assert Spool.load(odd).rows == [ROW] and Spool.load(odd).run_id == 9


def test_pending_is_oldest_first_by_time_then_sequence_and_per_run(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    a, b, c, e, other = touch(
        d,
        "run1-w-5-1000-10.jsonl",
        "run1-w-5-999-20.jsonl",
        "run1-a-b-5-1000-9.jsonl",
        "run1-w-5-1000-11.jsonl",
        "run12-w-5-1-1.jsonl",
    )
    touch(d, ".claimed-5-run1-w-5-1-1.jsonl")
    (d / ".run1-w-5-1-3.tmp").write_text("{}")
    spool = Spool(directory=d)
    assert spool.pending(1) == [b, c, a, e]
    assert spool.pending() == [other, b, c, a, e]
    assert spool.pending(2) == [] and spool.pending(12) == [other]
    assert Spool(directory=tmp_path / "missing").pending() == []


def test_claim_hides_a_file_and_release_brings_it_back(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path)
    path = spool.put(4, "host-1:22", rows(3))
    claimed = spool.claim(path)
    assert claimed is not None and claimed.parent == tmp_path
    assert claimed.name == f".claimed-{os.getpid()}-{path.name}" and not path.exists()
    assert spool.pending() == [] and spool.claim(path) is None
    assert Spool.release(claimed) == path and path.exists() and not claimed.exists()
    assert Spool.load(path).rows == rows(3)


# -- replay -------------------------------------------------------------------------------------------------------


def test_replay_writes_every_file_in_order_then_deletes_it(store: Store, tmp_path: Path) -> None:
    run_a, run_b = store.start_run(META), store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    spool.put(run_a, "w1", rows(3, "/first"))
    spool.put_events([(run_a, 1.7e9, "users", 2, "users=2", None)])
    spool.put(run_b, None, rows(2))
    spool.put(run_a, None, [ROW])
    assert replay_spool(store, spool, run_id=run_a) == 4
    assert store.count_samples(run_a) == 4 and store.count_samples(run_b) == 0
    assert [e["kind"] for e in store.events(run_a)] == ["users"]
    back = {r["name"]: r for r in store.iter_samples(run_a)}
    assert back["/first"]["worker"] == "w1" and back[ROW[1]]["worker"] is None
    assert (back[ROW[1]]["error"], back[ROW[1]]["success"], back[ROW[1]]["status_code"]) == (ROW[8], False, None)
    assert [Spool.load(p).run_id for p in spool.pending()] == [run_b]
    assert replay_spool(store, spool) == 2 and spool.pending() == []
    assert sorted(p.name for p in spool.directory.iterdir()) == []
    assert replay_spool(store, spool) == 0


def test_replay_stops_at_the_first_failure_and_gives_the_file_back(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    files = [spool.put(run_id, "w", rows(n)) for n in (2, 3)]
    with refused(store), caplog.at_level(logging.WARNING, logger="benchlab.metrics.store.writer"):
        assert replay_spool(store, spool, run_id) == 0
    assert spool.pending(run_id) == files and sorted(spool.directory.iterdir()) == sorted(files)
    assert caplog.messages == [f"replay of {files[0].name} failed: no such table: request_samples"]
    assert replay_spool(store, spool, run_id) == 5 and store.count_samples(run_id) == 5


class _Raced(Spool):
    """A spool whose first listed file another process claims between listing and claiming."""

    def pending(self, run_id: int | None = None) -> list[Path]:
        return [self.directory / "run1-gone-1-1-1.jsonl", *super().pending(run_id)]


def test_replay_skips_a_file_another_process_claimed(store: Store, tmp_path: Path) -> None:
    run_id = store.start_run(META)
    spool = _Raced(directory=tmp_path / "spool")
    spool.put(run_id, None, rows(4))
    assert replay_spool(store, spool, run_id) == 4 and store.count_samples(run_id) == 4


# -- BatchWriter --------------------------------------------------------------------------------------------------


def test_batch_writer_counts_spools_while_refused_and_says_so_once(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, other = store.start_run(META), store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    theirs = spool.put(other, None, rows(2))  # another run's batch: never this writer's business
    writer = BatchWriter(store=store, spool=spool, run_id=run_id, worker="w7")
    with caplog.at_level(logging.WARNING, logger="benchlab.metrics.store.writer"):
        writer.samples(rows(4))
        with refused(store):
            writer.samples(rows(5))
            assert caplog.messages == ["store write failed, spooling samples: no such table: request_samples"]
            writer.samples(rows(6))
            writer.tick()  # no replay while the store refuses
        assert [(Spool.load(p).worker, len(Spool.load(p).rows)) for p in spool.pending(run_id)] == [
            ("w7", 5),
            ("w7", 6),
        ]
        assert len(caplog.messages) == 1
        writer.samples(rows(1))
        writer.samples(rows(1))
        assert caplog.messages[1:] == ["store reachable again; replaying spooled samples"]
    s = writer.stats
    assert (s.received, s.stored, s.spooled, s.replayed) == (17, 6, 11, 0)
    writer.tick()
    assert writer.stats.replayed == 11 and store.count_samples(run_id) == 17
    assert spool.pending() == [theirs] and store.count_samples(other) == 0
    assert writer.finish().pending == 0 and spool.pending() == [theirs]


def test_tick_replays_once_per_retry_interval(store: Store, tmp_path: Path) -> None:
    run_id = store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    slow = BatchWriter(
        store=store, spool=spool, run_id=run_id, worker=None, settings=CollectorSettings(retry_interval=3600.0)
    )
    spool.put(run_id, None, rows(2))
    slow.tick()
    spool.put(run_id, None, rows(3))
    slow.tick()
    assert slow.stats.replayed == 2 and len(spool.pending(run_id)) == 1
    eager = BatchWriter(
        store=store, spool=spool, run_id=run_id, worker=None, settings=CollectorSettings(retry_interval=0)
    )
    eager.tick()
    spool.put(run_id, None, rows(1))
    eager.tick()
    assert eager.stats.replayed == 4 and spool.pending() == []


def _heartbeat(store: Store, run_id: int) -> datetime:
    run = store.get_run(run_id)
    assert run is not None and run.heartbeat_at is not None
    return utc(run.heartbeat_at)


def test_tick_beats_the_heartbeat_while_the_store_takes_writes(store: Store, tmp_path: Path) -> None:
    run_id = store.start_run(META)
    old = datetime.now(UTC) - timedelta(hours=1)

    def age() -> None:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE runs SET heartbeat_at = :t WHERE id = :i"), {"t": old, "i": run_id})

    writer = BatchWriter(store=store, spool=Spool(directory=tmp_path), run_id=run_id, worker=None)
    with refused(store):
        writer.samples(rows(1))
    age()
    writer.tick()
    assert _heartbeat(store, run_id) < old + timedelta(minutes=1)  # failing: no beat
    writer.samples(rows(1))
    writer.tick()
    assert _heartbeat(store, run_id) > datetime.now(UTC) - timedelta(minutes=1)
    age()
    writer.tick()
    assert _heartbeat(store, run_id) < old + timedelta(minutes=1)  # beaten less than HEARTBEAT_S ago


def test_events_are_kept_while_refused_and_spooled_at_the_end(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, other = store.start_run(META), store.start_run(META)
    spool = Spool(directory=tmp_path / "spool")
    theirs = spool.put(other, None, rows(3))
    writer = BatchWriter(store=store, spool=spool, run_id=run_id, worker=None)
    writer.events([])
    with caplog.at_level(logging.WARNING, logger="benchlab.metrics.store.writer"):
        with refused(store, "run_events"):
            writer.events([(run_id, 1.7e9, "users", 1, "users=1", None)])
            writer.events([(run_id, 1.7e9 + 1, "users", 2, "users=2", None)])
        assert caplog.messages == ["store write of run events failed, keeping them: no such table: run_events"] * 2
        writer.events([])
        assert [e["user_count"] for e in store.events(run_id)] == [1, 2]
        writer.events([(run_id, 1.7e9 + 2, "users", 3, "users=3", None)])
        caplog.clear()
        with refused(store, "run_events"), refused(store):
            writer.samples(rows(2))
            writer.events([(run_id, 1.7e9 + 3, "stop", None, "done", None)])
            stats = writer.finish()
        assert caplog.messages[0] == "store write failed, spooling samples: no such table: request_samples"
        assert caplog.messages[-1] == "store unreachable at the end: 1 run events spooled"
        assert not any("run events failed" in m for m in caplog.messages)  # samples failing: said already
    assert (stats.received, stats.stored, stats.spooled, stats.replayed, stats.pending) == (2, 0, 2, 0, 2)
    pending = [Spool.load(p) for p in spool.pending(run_id)]
    assert [len(b.rows) for b in pending] == [2, 0] and [e[2] for e in pending[1].events] == ["stop"]
    assert [e["user_count"] for e in store.events(run_id)] == [1, 2, 3]
    again = BatchWriter(store=store, spool=spool, run_id=run_id, worker=None).finish()
    assert (again.replayed, again.pending) == (2, 0) and [e["kind"] for e in store.events(run_id)][-1] == "stop"
    assert spool.pending() == [theirs] and store.count_samples(other) == 0


def test_first_line_of_a_store_error() -> None:
    class Wrapped(Exception):
        orig = ValueError("  driver says no\nDETAIL: more  ")

    assert first_line(Wrapped("outer")) == "driver says no"
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(KeyError()) == "KeyError" and first_line(ValueError("   ")) == "ValueError"
