"""`benchlab run` end to end: real Locust, real HTTP to the demo target, real Postgres and SQLite."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import benchlab, started_run, wait_for
from run_meta import run_meta
from target_fixture import Target
from tcpproxy import TcpProxy

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store


def _run_args(locustfile: Path, target: Target, db: str, *extra: str) -> list[str]:
    return [
        "run",
        "-f",
        str(locustfile),
        "--host",
        target.url,
        "-u",
        "8",
        "-r",
        "8",
        "--test-type",
        "baseline",
        "--db",
        db,
        "--json",
        "-q",
        *extra,
    ]


def _store(url: str) -> Store:
    return Store(settings=StoreSettings(url=url))


def test_sqlite_run_stores_every_sample_with_exact_percentiles(
    locustfile: Path, demo_target: Target, sqlite_url: str, tmp_path: Path
) -> None:
    res = benchlab(
        *_run_args(locustfile, demo_target, sqlite_url, "-t", "5s", "--app-version", "1.0", "--tag", "ci=yes"),
        cwd=tmp_path,
    )
    assert res.code == 0, res.stderr
    s = res.summary
    assert s["status"] == "completed"
    assert s["total_requests"] > 100
    assert s["stored_samples"] == s["total_requests"]
    assert s["failures"] == 0
    assert {e["name"] for e in s["endpoints"]} == {"/health", "/api/v1/content/generate"}
    run = _store(sqlite_url).get_run(s["run_id"])
    assert run is not None and run.status == "completed" and run.app_version == "1.0"
    assert run.tags == {"ci": "yes"} and run.scenario == "simple_test" and run.stored_samples == s["stored_samples"]
    out = tmp_path / "samples.csv"
    exp = benchlab("export", "--run", str(s["run_id"]), "--csv", str(out), "--db", sqlite_url)
    assert exp.code == 0, exp.stderr
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert "response_time_ms" in rows[0] and len(rows) == s["stored_samples"]
    times = np.array([float(r["response_time_ms"]) for r in rows])
    for q, key in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
        assert s[key] == pytest.approx(float(np.percentile(times, q)), rel=1e-9)
    assert s["max_ms"] == pytest.approx(times.max())


def test_postgres_run_and_listing(locustfile: Path, demo_target: Target, pg_url: str) -> None:
    res = benchlab(*_run_args(locustfile, demo_target, pg_url, "-t", "4s", "--scenario", "smoke"))
    assert res.code == 0, res.stderr
    s = res.summary
    assert s["stored_samples"] == s["total_requests"] > 50
    listed = benchlab("runs", "--json", "--db", pg_url)
    assert listed.code == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert runs[0]["id"] == s["run_id"] and runs[0]["scenario"] == "smoke" and runs[0]["status"] == "completed"
    events = _store(pg_url).events(s["run_id"])
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "stop" and "users" in kinds


def test_workers_land_under_one_run_id(locustfile: Path, demo_target: Target, pg_url: str) -> None:
    res = benchlab(*_run_args(locustfile, demo_target, pg_url, "-t", "5s", "--workers", "2"))
    assert res.code == 0, res.stderr
    s = res.summary
    assert s["stored_samples"] == s["total_requests"] > 50
    workers = {row["worker"] for row in _store(pg_url).iter_samples(s["run_id"])}
    assert workers == {"w1", "w2"}


def test_postgres_outage_loses_no_sample(locustfile: Path, demo_target: Target, pg_url: str, tmp_path: Path) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    db = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    args = _run_args(locustfile, demo_target, db, "-t", "20s", "--spool-dir", str(tmp_path / "spool"))
    try:
        with started_run(args, _store(pg_url)) as (proc, run_id):
            proxy.cut()
            wait_for("a spooled batch", lambda: bool(list((tmp_path / "spool").glob(f"run{run_id}-*.jsonl"))), 60, proc)
            proxy.restore()
            out, err = proc.communicate(timeout=120)
    finally:
        proxy.close()
    assert proc.returncode == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["status"] == "completed" and s["run_id"] == run_id
    assert s["spooled_samples"] > 0, "the outage should have forced samples into the spool"
    assert s["replayed_samples"] == s["spooled_samples"] and s["pending_samples"] == 0
    assert _store(pg_url).count_samples(s["run_id"]) == s["total_requests"] == s["stored_samples"]
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_sigterm_aborts_and_keeps_every_sample(locustfile: Path, demo_target: Target, sqlite_url: str) -> None:
    args = _run_args(locustfile, demo_target, sqlite_url, "-t", "60s")
    # The handler is installed before Locust starts: once samples are stored, SIGTERM reaches it.
    with started_run(args, _store(sqlite_url)) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["status"] == "aborted"
    assert s["stored_samples"] == s["total_requests"] > 0
    run = _store(sqlite_url).get_run(s["run_id"])
    assert run is not None and run.status == "aborted" and run.ended_at is not None


BAD_FILE = "from locust import HttpUser\nclass X(HttpUser)\n    pass\n"


@pytest.mark.parametrize(
    ("case", "extra", "needle"),
    [
        ("missing file", ["-f", "nope.py"], "locustfile not found"),
        ("syntax error", ["-f", "{bad}"], "syntax error at line 2"),
        ("no host", ["--host", ""], "no target host"),
        ("malformed url", ["--host", "127.0.0.1:8000"], "bad host URL"),
        ("bad port", ["--host", "http://127.0.0.1:99999"], "bad host URL"),
        ("bad users", ["-u", "-3"], "users must be"),
        ("bad run time", ["-t", "soon"], "bad run time"),
        ("bad test type", ["--test-type", "chaos"], "invalid choice"),
        ("bad tag", ["--tag", "novalue"], "bad tag"),
        ("tag without a key", ["--tag", "=v"], "bad tag '=v'"),
        ("bad db url", ["--db", "mysql://x@y/z"], "bad DB URL"),
        ("unparseable db url", ["--db", "::::"], "bad DB URL"),
        ("unknown user class", ["--user-class", "Nobody"], "user class 'Nobody'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, extra: list[str], needle: str, locustfile: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text(BAD_FILE)
    db = tmp_path / "never" / "bench.db"
    args = ["run", "-f", str(locustfile), "--host", "http://127.0.0.1:9", "-t", "2s", "--db", f"sqlite:///{db}"]
    extra = [str(bad) if x == "{bad}" else x for x in extra]
    res = benchlab(*args, *extra, cwd=tmp_path, env={"TARGET_HOST": ""})
    assert res.code == 2, (case, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], (case, res.stderr)
    assert not db.parent.exists() and not (tmp_path / "results").exists()


def test_bad_env_value_exits_2(locustfile: Path, tmp_path: Path) -> None:
    res = benchlab(
        "run",
        "-f",
        str(locustfile),
        "--host",
        "http://127.0.0.1:9",
        "-t",
        "2s",
        cwd=tmp_path,
        env={"TEST_TYPE": "chaos"},
    )
    assert res.code == 2 and "bad test type 'chaos' (TEST_TYPE)" in res.stderr
    assert not (tmp_path / "results").exists()


def test_unreachable_target_exits_1(locustfile: Path, sqlite_url: str, tmp_path: Path) -> None:
    res = benchlab(
        "run", "-f", str(locustfile), "--host", "http://127.0.0.1:9", "-t", "2s", "--db", sqlite_url, cwd=tmp_path
    )
    assert res.code == 1
    assert "unreachable" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_unreachable_db_at_start_exits_1(locustfile: Path, demo_target: Target) -> None:
    res = benchlab(
        "run",
        "-f",
        str(locustfile),
        "--host",
        demo_target.url,
        "-t",
        "2s",
        "--db",
        "postgresql://postgres@127.0.0.1:9/nothing",
    )
    assert res.code == 1
    assert "unreachable" in res.stderr


def test_env_vars_are_the_fallback(locustfile: Path, demo_target: Target, sqlite_url: str, tmp_path: Path) -> None:
    env = {
        "TARGET_HOST": demo_target.url,
        "USERS": "3",
        "SPAWN_RATE": "3",
        "RUN_TIME": "3s",
        "APP_VERSION": "9.9",
        "TEST_TYPE": "baseline",
        "BENCHLAB_DB_URL": sqlite_url,
    }
    res = benchlab("run", "-f", str(locustfile), "--json", "-q", cwd=tmp_path, env={**os.environ, **env})
    assert res.code == 0, res.stderr
    run = _store(sqlite_url).get_run(res.summary["run_id"])
    assert run is not None
    assert (run.app_version, run.users, run.test_type, run.planned_duration_s) == ("9.9", 3, "baseline", 3.0)


def test_progress_line_goes_to_stderr_unless_quiet(locustfile: Path, demo_target: Target, sqlite_url: str) -> None:
    loud = benchlab(
        "run",
        "-f",
        str(locustfile),
        "--host",
        demo_target.url,
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "7s",
        "--test-type",
        "baseline",
        "--db",
        sqlite_url,
    )
    assert loud.code == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if line.startswith("[0:0")]
    assert lines and "/0:07] users 3" in lines[-1] and "p95(10s)" in lines[-1] and "failures 0" in lines[-1]
    quiet = benchlab(
        "run",
        "-f",
        str(locustfile),
        "--host",
        demo_target.url,
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "6s",
        "--test-type",
        "baseline",
        "--db",
        sqlite_url,
        "-q",
    )
    assert quiet.code == 0 and "p95(10s)" not in quiet.stderr


def test_replay_command_writes_leftover_spool(sqlite_url: str, tmp_path: Path) -> None:
    from benchlab.metrics.store.spool import Spool

    store = Store(settings=StoreSettings(url=sqlite_url)).open()
    meta = run_meta(scenario="r", app_version="1", environment="t", host="http://x", locustfile="f")
    run_id = store.start_run(meta)
    spool = Spool(directory=tmp_path / "spool")
    for n in range(3):
        spool.put(run_id, "w1", [(1.7e9 + i, f"/p{n}", "GET", 1.5, 1, None, 200, True, None) for i in range(100)])
    res = benchlab("replay", "--db", sqlite_url, "--spool-dir", str(tmp_path / "spool"))
    assert res.code == 0, res.stderr
    assert "replayed 300 samples; 0 spooled files left" in res.stdout
    assert store.count_samples(run_id) == 300 and not spool.pending()
    again = benchlab("replay", "--db", sqlite_url, "--spool-dir", str(tmp_path / "spool"))
    assert again.code == 0 and "replayed 0 samples" in again.stdout


EVENTS_LOCUSTFILE = """
import os
from locust import FastHttpUser, constant, events, task


@events.init.add_listener
def on_init(environment, runner, **kw):
    with open(os.environ["BENCHLAB_TEST_MARKS"], "a") as fh:
        fh.write(f"init {type(runner).__name__}\\n")


@events.test_start.add_listener
def on_start(environment, **kw):
    with open(os.environ["BENCHLAB_TEST_MARKS"], "a") as fh:
        fh.write("test_start\\n")


class Web(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def health(self):
        self.client.get("/health")
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_locustfile_event_listeners_fire(workers: str, demo_target: Target, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "with_events.py"
    path.write_text(EVENTS_LOCUSTFILE)
    marks = tmp_path / "marks.txt"
    res = benchlab(
        "run",
        "-f",
        str(path),
        "--host",
        demo_target.url,
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--test-type",
        "baseline",
        "--workers",
        workers,
        "--db",
        sqlite_url,
        "-q",
        "--json",
        env={"BENCHLAB_TEST_MARKS": str(marks)},
    )
    assert res.code == 0, res.stderr
    lines = marks.read_text().splitlines()
    expected = {"0": {"init LocalRunner"}, "1": {"init MasterRunner", "init WorkerRunner"}}[workers]
    assert expected <= set(lines) and "test_start" in lines, lines
