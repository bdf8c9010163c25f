"""When a `running` run counts as interrupted: its runner's pid on this host, its heartbeat on another."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from benchlab.metrics.store.liveness import (
    STALE_AFTER_S,
    WORKERS_GRACE_S,
    is_interrupted,
    owner_columns,
    status_of,
)
from benchlab.metrics.store.model import Run

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOST = socket.gethostname()


def _run(**values: Any) -> Run:
    base: dict[str, Any] = {
        "id": 1,
        "status": "running",
        "started_at": NOW - timedelta(minutes=5),
        "planned_duration_s": 600.0,
        "runner_host": None,
        "runner_pid": None,
        "runner_started_at": None,
        "heartbeat_at": None,
        "workers": 0,
    }
    return Run(**(base | values))


def _mine(**values: Any) -> Run:
    return _run(**(owner_columns(NOW) | values))


def test_this_process_is_alive_and_owner_columns_name_it() -> None:
    owner = owner_columns(NOW)
    assert (owner["runner_host"], owner["runner_pid"], owner["heartbeat_at"]) == (HOST, os.getpid(), NOW)
    started = psutil.Process().create_time()
    assert abs(owner["runner_started_at"].timestamp() - started) < 0.01
    # the pid check wins over a stale heartbeat on the same host
    assert not is_interrupted(_mine(heartbeat_at=NOW - timedelta(hours=1)), now=NOW)
    assert status_of(_mine()) == "running"


def test_a_reused_pid_is_not_the_runner() -> None:
    earlier = owner_columns(NOW)["runner_started_at"] - timedelta(seconds=30)
    assert is_interrupted(_mine(runner_started_at=earlier), now=NOW)


def _wait_status(pid: int, status: str) -> None:
    deadline = time.monotonic() + 30
    while psutil.Process(pid).status() != status:
        assert time.monotonic() < deadline, f"pid {pid} never became {status}"
        time.sleep(0.01)


def test_an_exited_runner_is_interrupted_even_before_it_is_reaped() -> None:
    # the parent spawns `true` and never waits for it: once `true` exits it stays a zombie (a shell's
    # `true & exec sleep` is not enough: the shell may reap the job before it execs)
    keeper = "import os, time; print(os.posix_spawnp('true', ['true'], os.environ), flush=True); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", keeper], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        _wait_status(zombie, psutil.STATUS_ZOMBIE)
        assert is_interrupted(_mine(runner_pid=zombie, runner_started_at=None), now=NOW)
    finally:
        parent.kill()
        parent.wait()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = _mine(runner_pid=int(gone.stdout), runner_started_at=None)
    assert not psutil.pid_exists(run.runner_pid)
    assert is_interrupted(run, now=NOW)
    assert status_of(run) == "interrupted"


def test_a_dead_master_s_workers_keep_the_run_alive_while_they_beat() -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    beating = _mine(runner_pid=int(gone.stdout), runner_started_at=None, workers=2, heartbeat_at=NOW)
    assert not is_interrupted(beating, now=NOW + timedelta(seconds=WORKERS_GRACE_S))
    assert is_interrupted(beating, now=NOW + timedelta(seconds=WORKERS_GRACE_S + 1))
    assert is_interrupted(_mine(runner_pid=int(gone.stdout), runner_started_at=None, heartbeat_at=NOW), now=NOW)


def test_another_host_is_judged_by_its_heartbeat() -> None:
    fresh = _run(runner_host="elsewhere", runner_pid=os.getpid(), heartbeat_at=NOW - timedelta(seconds=5))
    stale = _run(runner_host="elsewhere", runner_pid=os.getpid(), heartbeat_at=NOW - timedelta(seconds=61))
    assert STALE_AFTER_S == 60.0
    assert not is_interrupted(fresh, now=NOW)
    assert is_interrupted(stale, now=NOW)
    naive = _run(runner_host="elsewhere", heartbeat_at=(NOW - timedelta(seconds=30)).replace(tzinfo=None))
    assert not is_interrupted(naive, now=NOW), "SQLite hands back naive UTC"


def test_rows_without_a_heartbeat_live_until_their_planned_end() -> None:
    assert not is_interrupted(_run(planned_duration_s=600.0), now=NOW)
    assert is_interrupted(_run(planned_duration_s=60.0), now=NOW)
    assert is_interrupted(_run(planned_duration_s=None), now=NOW)


def test_finished_runs_keep_their_status() -> None:
    for status in ("completed", "aborted", "failed"):
        assert not is_interrupted(_run(status=status), now=NOW)
        assert status_of(_run(status=status, planned_duration_s=None), now=NOW) == status
    assert is_interrupted(_run(status="interrupted"), now=NOW)
