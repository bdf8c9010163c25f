"""A run whose benchlab process is SIGKILLed: shown `interrupted`, closed by `benchlab replay`, never a baseline."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from conftest import benchlab, started_run
from run_meta import run_meta
from sqlalchemy import CheckConstraint, MetaData, Table, create_engine, inspect, text, update
from sqlalchemy.exc import IntegrityError
from target_fixture import Target

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import WriterConfig
from benchlab.runners.analysis.summary import Totals, run_columns
from benchlab.runners.recovery import close_interrupted

META = run_meta(
    scenario="crash", app_version="crash-0", environment="t", host="http://x", locustfile="f", planned_duration_s=60.0
)
NEW_COLUMNS = ("runner_host", "runner_pid", "runner_started_at", "heartbeat_at")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'crash.db'}"
    return str(request.getfixturevalue("pg_url"))


def _store(url: str) -> Store:
    return Store(settings=StoreSettings(url=url))


def _sigkill_mid_run(url: str, locustfile: Path, target: Target, tmp_path: Path) -> int:
    """Start a real `benchlab run`, SIGKILL it once samples are stored, wait for its writer child to drain."""
    args = ["run", "-f", str(locustfile), "--host", target.url, "-u", "4", "-r", "4", "-t", "60s"]
    args += ["--app-version", "crash-1", "--db", url, "--spool-dir", str(tmp_path / "spool"), "-q"]
    store = _store(url)
    try:
        with started_run(args, store, cwd=tmp_path, stdout=subprocess.DEVNULL) as (proc, run_id):
            children = psutil.Process(proc.pid).children(recursive=True)
            assert children, "the writer child should be running"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            _, alive = psutil.wait_procs(children, timeout=60)
            assert not alive, "the writer child finishes once its collector is gone"
    finally:
        store.close()
    assert proc.returncode == -signal.SIGKILL
    return run_id


def test_a_killed_run_shows_interrupted_is_closed_by_replay_and_is_never_a_baseline(
    store_url: str, locustfile: Path, demo_target: Target, tmp_path: Path
) -> None:
    run_id = _sigkill_mid_run(store_url, locustfile, demo_target, tmp_path)
    store = _store(store_url)
    stored = store.count_samples(run_id)
    assert stored > 0 and store.running_run_id() is None
    run = store.get_run(run_id)
    assert run is not None and run.status == "running" and run.runner_pid is not None and run.heartbeat_at is not None

    listed = benchlab("runs", "--json", "--db", store_url)
    assert listed.code == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["id"] == run_id)
    assert (row["status"], row["stored_samples"]) == ("interrupted", stored)
    table = benchlab("runs", "--db", store_url).stdout.splitlines()
    line = next(x for x in table if x.startswith(f"{run_id} "))
    assert "interrupted" in line.split() and str(stored) in line.split()

    later = store.start_run(replace(META, scenario=run.scenario, test_type=run.test_type, app_version="crash-2"))
    store.finish_run(later, status="completed", summary={})
    compare = ("compare", "--version", "crash-2", "--baseline-version", "crash-1", "--db", store_url, "--no-save")
    res = benchlab(*compare)
    assert res.code == 2 and "no completed run of version 'crash-1'" in res.stderr, res.stderr

    res = benchlab("replay", "--db", store_url, "--spool-dir", str(tmp_path / "spool"))
    assert res.code == 0, res.stderr
    assert f"run {run_id} interrupted: closed with {stored} stored samples" in res.stdout
    rows = endpoint_stats(store, run_id)
    total = next(r for r in rows if r.is_total)
    run = store.get_run(run_id)
    assert run is not None and run.status == "interrupted"
    assert run.stored_samples == run.total_requests == stored and run.total_failures == total.failures
    assert run.ended_at is not None
    ended = run.ended_at.replace(tzinfo=UTC) if run.ended_at.tzinfo is None else run.ended_at
    assert ended.timestamp() == pytest.approx(total.last_ts, abs=1e-6)
    started = run.started_at.replace(tzinfo=UTC) if run.started_at.tzinfo is None else run.started_at
    totals = Totals(run_id, "interrupted", (ended - started).total_seconds(), stored, total.failures, stored, 0, 0, 0)
    assert run.rps == pytest.approx(run_columns(rows, totals)["rps"]) and run.rps > 0, "the end-of-run summary"
    assert (run.p50_ms, run.p95_ms, run.p99_ms, run.max_ms) == (total.p50_ms, total.p95_ms, total.p99_ms, total.max_ms)
    assert run.spooled_samples is None and run.replayed_samples is None, "only the dead process knew them"
    stops = [e for e in store.events(run_id) if e["kind"] == "stop"]
    assert len(stops) == 1 and stops[0]["message"].startswith("interrupted")

    again = benchlab("replay", "--db", store_url, "--spool-dir", str(tmp_path / "spool"))
    assert again.code == 0 and "interrupted" not in again.stdout, again.stdout
    res = benchlab(*compare)
    assert res.code == 2 and "no completed run of version 'crash-1'" in res.stderr, res.stderr
    store.close()


def test_compare_refuses_an_interrupted_run_named_by_id(store_url: str) -> None:
    store = _store(store_url).open()
    done, dead, gone = store.start_run(META), store.start_run(META), store.start_run(META)
    store.finish_run(done, status="completed", summary={})
    store.finish_run(dead, status="interrupted", summary={})
    with store.engine.begin() as conn:  # still `running`, but its runner is gone
        conn.execute(update(Run).where(Run.id == gone).values(runner_pid=_dead_pid()))
    store.close()
    for candidate, baseline in ((done, dead), (dead, done), (done, gone)):
        res = benchlab("compare", "--run", str(candidate), "--baseline-run", str(baseline), "--db", store_url)
        bad = dead if dead in (candidate, baseline) else gone
        assert res.code == 2 and f"run {bad} was interrupted" in res.stderr, res.stderr


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_replay_writes_a_dead_runs_spool_before_closing_it(store_url: str, tmp_path: Path) -> None:
    store = _store(store_url).open()
    dead, alive = store.start_run(META), store.start_run(META)
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == dead).values(runner_pid=_dead_pid()))
    t0 = datetime.now(UTC).timestamp()
    batch = [(t0 + i * 0.01, "/a", "GET", 2.0 + i, 5, None, 200, i % 10 != 0, None) for i in range(50)]
    store.write_samples(dead, None, batch[:30])
    spool = Spool(directory=tmp_path / "spool")
    spool.put(dead, None, batch[30:])
    assert close_interrupted(store, spool) == [], "not while its spool is pending"
    res = benchlab("replay", "--db", store_url, "--spool-dir", str(tmp_path / "spool"))
    assert res.code == 0, res.stderr
    assert f"run {dead} interrupted: closed with 50 stored samples" in res.stdout
    run, live = store.get_run(dead), store.get_run(alive)
    assert run is not None and (run.status, run.total_requests, run.total_failures) == ("interrupted", 50, 5)
    assert live is not None and live.status == "running", "this process owns it and is alive"
    assert store.running_run_id() == alive
    store.close()


def test_an_old_store_gains_the_runner_columns_and_the_interrupted_status(store_url: str) -> None:
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    old = MetaData()
    columns = [c._copy() for c in Run.__table__.columns if c.name not in NEW_COLUMNS]
    check = CheckConstraint("status IN ('running', 'completed', 'aborted', 'failed')", name="runs_status_check")
    Table("runs", old, *columns, check)
    if engine.dialect.name == "sqlite":
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    old.create_all(engine)
    engine.dispose()
    store = _store(store_url).open()
    first = store.start_run(META)
    store.open()  # a second open finds nothing to do
    assert set(NEW_COLUMNS) <= {c["name"] for c in inspect(store.engine).get_columns("runs")}
    assert store.finish_run(first, status="interrupted", summary={})
    run = store.get_run(first)
    assert run is not None and run.status == "interrupted" and run.runner_pid == os.getpid()
    with store.engine.begin() as conn, pytest.raises(IntegrityError, match=r"runs_status_check|CHECK constraint"):
        conn.execute(text("UPDATE runs SET status = 'lost'"))
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    store.close()


@pytest.mark.parametrize("batches", [5, 0])
def test_a_writer_child_stores_every_batch_handed_over_before_its_collector_died(tmp_path: Path, batches: int) -> None:
    """The child keeps reading after its ack pipe breaks (a SIGKILLed collector), and exits 0 without a reader."""
    url = f"sqlite:///{tmp_path / 'child.db'}"
    store = _store(url).open()
    run_id = store.start_run(META)
    config = WriterConfig(url, str(tmp_path / "spool"), run_id, None, 2.0)
    handed = tmp_path / "pipe.bin"
    with handed.open("wb") as fh:
        for k in range(batches):
            rows = [(1.7e9 + k + i * 1e-4, "/a", "GET", 1.0, 1, None, 200, True, None) for i in range(2000)]
            data = pickle.dumps(("samples", (f"batch-{k}", rows)))  # as WriterProcess.samples sends it
            fh.write(struct.pack("!I", len(data)) + data)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the collector is gone: every ack fails
    with handed.open("rb") as stdin:
        child = subprocess.run(
            [sys.executable, "-m", "benchlab.metrics.store.writer", json.dumps(asdict(config))],
            stdin=stdin,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    os.close(write_end)
    assert child.returncode == 0, child.stderr
    assert store.count_samples(run_id) == 2000 * batches
    assert "Traceback" not in child.stderr, child.stderr
    store.close()
