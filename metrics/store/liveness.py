"""Is a `running` run still alive? Who runs it (host, pid, process start) and a heartbeat tell.

A run whose benchlab process died without finishing it (SIGKILL, OOM, a power cut) stays `running` in the
store. It counts as interrupted when

- it was started on this host, and its pid is gone, a zombie, or now belongs to a process that started later
  (with `--workers`, also no heartbeat for `WORKERS_GRACE_S`: Locust workers run on for up to a minute after
  their master died, and their writers keep storing samples and beating); or
- it was started on another host, and its heartbeat is older than `STALE_AFTER_S`.

Every writer of a run (the writer child, or the in-process fallback) refreshes the heartbeat every
`HEARTBEAT_S` seconds while the store takes writes. Clocks of the hosts are assumed within seconds (NTP).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from benchlab.metrics.store.bulk import HEARTBEAT_S
from benchlab.metrics.store.model import Run

STALE_AFTER_S = max(60.0, 3 * HEARTBEAT_S)
"""A run of another host without a heartbeat for this long is interrupted."""
WORKERS_GRACE_S = 2 * HEARTBEAT_S
"""A run with workers whose master died is interrupted once none of its writers beat for this long."""
_SAME_PROCESS_S = 1.0
"""Start times of one process as read now and as stored differ by rounding only."""


def utc(ts: datetime) -> datetime:
    """Aware UTC (SQLite hands times back naive)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def owner_columns(now: datetime) -> dict[str, Any]:
    """`runs` columns naming this process as the runner, with a first heartbeat at `now`."""
    pid = os.getpid()
    return {
        "runner_host": socket.gethostname(),
        "runner_pid": pid,
        "runner_started_at": _process_start(pid),
        "heartbeat_at": now,
    }


def _process_start(pid: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(psutil.Process(pid).create_time(), UTC)
    except psutil.Error:
        return None


def pid_alive(pid: int, started_at: datetime | None) -> bool:
    """True while `pid` is the process that started at `started_at` (any process with that pid when unknown)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # it exists but cannot be inspected: assume it is the runner
        return True
    return started_at is None or abs(created - utc(started_at).timestamp()) < _SAME_PROCESS_S


def is_interrupted(run: Run, *, now: datetime | None = None, host: str | None = None) -> bool:
    """True for a stored `interrupted` run, and for a `running` one whose runner is gone."""
    if run.status != "running":
        return run.status == "interrupted"
    host = host if host is not None else socket.gethostname()
    now = now or datetime.now(UTC)
    if run.runner_host == host and run.runner_pid is not None:
        if pid_alive(run.runner_pid, run.runner_started_at):
            return False
        return not run.workers or _silent_s(run, now) > WORKERS_GRACE_S
    return _silent_s(run, now) > STALE_AFTER_S


def _silent_s(run: Run, now: datetime) -> float:
    """Seconds since the run's last heartbeat."""
    if run.heartbeat_at is not None:
        last = utc(run.heartbeat_at)
    else:  # a row written before runs had heartbeats: alive until its planned end
        last = utc(run.started_at) + timedelta(seconds=run.planned_duration_s or 0.0)
    return (now - last).total_seconds()


def status_of(run: Run, *, now: datetime | None = None) -> str:
    """The run's status, with `interrupted` for a `running` run whose runner is gone."""
    return "interrupted" if run.status == "running" and is_interrupted(run, now=now) else run.status
