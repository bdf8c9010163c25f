"""Live progress during a run: a line on stderr every few seconds and a run event at each user-count change."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import gevent
from locust.env import Environment

from benchlab.metrics.collector import RequestCollector


def progress_line(env: Environment, elapsed: float, planned: float) -> str:
    """elapsed/planned, users, current rps, p95 of the last 10 s, failures."""
    total = env.stats.total
    p95 = total.get_current_response_time_percentile(0.95) or 0
    users = env.runner.user_count if env.runner else 0
    return (
        f"[{_clock(elapsed)}/{_clock(planned)}] users {users}  rps {total.current_rps:.1f}"
        f"  p95(10s) {p95:.0f} ms  failures {total.num_failures}"
    )


def watch(
    env: Environment,
    collector: RequestCollector,
    *,
    planned: float,
    quiet: bool,
    every: float = 5.0,
    stream: TextIO = sys.stderr,
) -> gevent.Greenlet:
    """Spawn the watcher greenlet; kill it when the run ends."""

    def loop() -> None:
        start = time.monotonic()
        last_users = -1
        last_line = start
        while True:
            gevent.sleep(0.5)
            users = env.runner.user_count if env.runner else 0
            if users != last_users:
                collector.note("users", f"users={users}", users)
                last_users = users
            now = time.monotonic()
            if not quiet and now - last_line >= every:
                stream.write(progress_line(env, now - start, planned) + "\n")
                stream.flush()
                last_line = now

    return gevent.spawn(loop)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:d}:{s % 60:02d}"
