"""The spool and its replay: in-run replay once the store is back, worker labels, pending samples and exit codes.

An outage here is the store refusing sample writes (a trigger on `request_samples`, switched by a row in a
table) while everything else keeps working: it starts and ends exactly when the test says, under any load.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import REPO, benchlab, run_in_progress, wait_for
from run_meta import run_meta
from target_fixture import Target

from benchlab.metrics.settings import CollectorSettings, RunMeta, StoreSettings
from benchlab.metrics.store.bulk import Bulk
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import BatchWriter, WriterProcess, replay_spool
from benchlab.metrics.store.writer import Target as StoreTarget

REFUSE_SQL = """
CREATE TABLE benchlab_test_outage (since timestamptz DEFAULT now());
CREATE FUNCTION benchlab_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM benchlab_test_outage) THEN
        RAISE EXCEPTION 'benchlab test outage: request_samples refused';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER benchlab_test_refuse BEFORE INSERT ON request_samples
    FOR EACH STATEMENT EXECUTE FUNCTION benchlab_test_refuse();
"""


class Outage:
    """Switches the store's refusal of sample writes on and off (Postgres)."""

    def __init__(self, url: str) -> None:
        Store(settings=StoreSettings(url=url)).open().close()
        self._dsn = url
        self._sql(REFUSE_SQL)

    def _sql(self, sql: str) -> None:
        conn = psycopg2.connect(self._dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def start(self) -> None:
        self._sql("INSERT INTO benchlab_test_outage DEFAULT VALUES")

    def end(self) -> None:
        self._sql("DELETE FROM benchlab_test_outage")


def _meta(workers: int = 0) -> RunMeta:
    return run_meta(
        scenario="replay", app_version="1", environment="t", host="http://x", locustfile="f", workers=workers
    )


def _batch(n: int, start: float, name: str = "/p") -> list[Sample]:
    return [(start + i * 1e-3, name, "GET", 1.5 + i, 10, None, 200, True, None) for i in range(n)]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replay.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_replay_keeps_worker_labels_and_only_the_run_asked_for(store_url: str, tmp_path: Path) -> None:
    store = Store(settings=StoreSettings(url=store_url)).open()
    run_a, run_b = store.start_run(_meta(2)), store.start_run(_meta(2))
    spool = Spool(directory=tmp_path / "spool")
    spool.put(run_a, "w1", _batch(30, 1.7e9))
    spool.put(run_a, "w2", _batch(20, 1.7e9 + 1))
    spool.put(run_a, None, _batch(10, 1.7e9 + 2))
    spool.put(run_b, "w2", _batch(7, 1.7e9 + 3))
    assert replay_spool(store, spool, run_id=run_a) == 60
    workers = Counter(row["worker"] for row in store.iter_samples(run_a))
    assert workers == Counter({"w1": 30, "w2": 20, None: 10})
    assert store.count_samples(run_b) == 0 and len(spool.pending()) == 1
    res = benchlab("replay", "--run", str(run_b), "--db", store_url, "--spool-dir", str(tmp_path / "spool"))
    assert res.code == 0, res.stderr
    assert "replayed 7 samples; 0 spooled files left" in res.stdout
    assert [row["worker"] for row in store.iter_samples(run_b)] == ["w2"] * 7
    store.close()


class LostAcknowledgement:
    """A store whose first sample write commits and then fails, as when the connection drops during COMMIT."""

    def __init__(self, store: StoreTarget) -> None:
        self.store = store
        self.lost = 0

    def write_samples(self, run_id: int, worker: str | None, rows: list[Sample], batch: str | None = None) -> None:
        self.store.write_samples(run_id, worker, rows, batch)
        if not self.lost:
            self.lost += 1
            raise ConnectionError("server closed the connection unexpectedly")

    def add_events(self, rows: list[Any]) -> None:
        self.store.add_events(rows)

    def heartbeat(self, run_id: int) -> bool:
        return self.store.heartbeat(run_id)


@pytest.mark.parametrize("via", ["store", "bulk"])
def test_a_batch_stored_before_its_commit_failed_is_not_stored_again(store_url: str, via: str, tmp_path: Path) -> None:
    """The failed write is spooled and replayed; its batch id, committed with the rows, makes the replay a no-op."""
    store = Store(settings=StoreSettings(url=store_url)).open()
    run_id = store.start_run(_meta())
    target = LostAcknowledgement(store if via == "store" else Bulk(store_url))
    spool = Spool(directory=tmp_path / "spool")
    writer = BatchWriter(store=target, spool=spool, run_id=run_id, worker="w1")
    writer.samples(_batch(25, 1.7e9))
    writer.samples(_batch(4, 1.7e9 + 1))
    stats = writer.finish()
    assert target.lost == 1
    assert (stats.received, stats.stored, stats.spooled, stats.replayed, stats.pending) == (29, 4, 25, 25, 0)
    assert store.count_samples(run_id) == 29, "the batch whose acknowledgement was lost is stored once"
    assert not spool.pending()
    store.close()


def test_a_batch_resent_after_the_writer_child_died_is_stored_once(store_url: str, tmp_path: Path) -> None:
    """The fallback resends what the child never confirmed, with the id the collector gave it in the message."""
    store = Store(settings=StoreSettings(url=store_url)).open()
    run_id = store.start_run(_meta())
    message = ("samples", ("b-1", _batch(12, 1.7e9)))
    for target in (Bulk(store_url), store):  # the child stored it, then the collector's fallback resends it
        writer = BatchWriter(store=target, spool=Spool(directory=tmp_path / "spool"), run_id=run_id, worker=None)
        WriterProcess._deliver(writer, message)
        assert writer.finish().stored == 12
    assert store.count_samples(run_id) == 12
    store.close()


def test_batch_writer_replays_once_the_store_is_back_not_only_at_the_end(pg_url: str, tmp_path: Path) -> None:
    outage = Outage(pg_url)
    store = Store(settings=StoreSettings(url=pg_url)).open()
    run_id = store.start_run(_meta())
    spool = Spool(directory=tmp_path / "spool")
    writer = BatchWriter(
        store=store, spool=spool, run_id=run_id, worker="w3", settings=CollectorSettings(retry_interval=0.0)
    )
    writer.samples(_batch(5, 1.7e9))
    outage.start()
    writer.samples(_batch(40, 1.7e9 + 1))
    writer.tick()  # the store still refuses: nothing to replay yet
    assert (writer.stats.stored, writer.stats.spooled, writer.stats.replayed) == (5, 40, 0)
    assert len(spool.pending(run_id)) == 1
    outage.end()
    writer.samples(_batch(3, 1.7e9 + 2))
    writer.tick()
    assert writer.stats.replayed == 40 and not spool.pending(run_id), "replayed on the first tick after recovery"
    assert store.count_samples(run_id) == 48
    stats = writer.finish()
    assert (stats.received, stats.stored, stats.spooled, stats.replayed, stats.pending) == (48, 8, 40, 40, 0)
    assert {row["worker"] for row in store.iter_samples(run_id)} == {"w3"}
    store.close()


def test_run_replays_in_run_keeps_worker_labels_and_sigint_exits_130(
    locustfile: Path, demo_target: Target, pg_url: str, tmp_path: Path
) -> None:
    """Outage mid-run: samples spool, then go in while the run is still going; SIGINT then aborts with 130."""
    outage = Outage(pg_url)
    store = Store(settings=StoreSettings(url=pg_url))
    spool = Spool(directory=tmp_path / "spool")
    args = ["run", "-f", str(locustfile), "--host", demo_target.url, "-u", "4", "-r", "4", "-t", "90s",
            "--test-type", "baseline", "--workers", "1", "--db", pg_url, "--spool-dir", str(spool.directory),
            "--json", "-q"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchlab.runners.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for("the run row and its first stored samples", lambda: run_in_progress(store) is not None, 90, proc)
        run_id = run_in_progress(store)
        assert run_id is not None
        outage.start()
        wait_for("a spooled batch", lambda: bool(spool.pending(run_id)), 60, proc)
        outage.end()
        wait_for("the spool to be replayed during the run", lambda: not spool.pending(run_id), 60, proc)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["run_id"] == run_id and s["status"] == "aborted"
    assert s["spooled_samples"] > 0 and s["replayed_samples"] == s["spooled_samples"] and s["pending_samples"] == 0
    assert s["stored_samples"] == s["total_requests"] == store.count_samples(run_id)
    assert Counter(row["worker"] for row in store.iter_samples(run_id)) == Counter({"w1": s["total_requests"]})
    run = store.get_run(run_id)
    assert run is not None and run.status == "aborted" and run.ended_at is not None
    store.close()


def test_samples_pending_at_the_end_exit_1_and_replay_exits_1_while_files_remain(
    locustfile: Path, demo_target: Target, pg_url: str, tmp_path: Path
) -> None:
    outage = Outage(pg_url)
    outage.start()
    spool_dir = str(tmp_path / "spool")
    res = benchlab(
        "run", "-f", str(locustfile), "--host", demo_target.url, "-u", "3", "-r", "3", "-t", "2s", "--test-type",
        "baseline", "--db", pg_url, "--spool-dir", spool_dir, "--json", "-q",
    )  # fmt: skip
    assert res.code == 1, res.stderr
    s = res.summary
    assert s["stored_samples"] == 0 and s["replayed_samples"] == 0
    assert s["pending_samples"] == s["spooled_samples"] == s["total_requests"] > 0
    files = len(Spool(directory=Path(spool_dir)).pending(s["run_id"]))
    assert files > 0
    still = benchlab("replay", "--run", str(s["run_id"]), "--db", pg_url, "--spool-dir", spool_dir)
    assert still.code == 1 and f"replayed 0 samples; {files} spooled files left" in still.stdout, still
    other = benchlab("replay", "--run", str(s["run_id"] + 1), "--db", pg_url, "--spool-dir", spool_dir)
    assert other.code == 0 and "replayed 0 samples; 0 spooled files left" in other.stdout, other
    outage.end()
    done = benchlab("replay", "--run", str(s["run_id"]), "--db", pg_url, "--spool-dir", spool_dir)
    assert done.code == 0 and f"replayed {s['total_requests']} samples; 0 spooled files left" in done.stdout, done
    assert Store(settings=StoreSettings(url=pg_url)).count_samples(s["run_id"]) == s["total_requests"]
