"""The sidecar started by `benchlab run --monitor-pid/--monitor-process`, for the length of one run."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable

from benchlab.runners.settings import RunSpec

log = logging.getLogger(__name__)


def start_monitor(spec: RunSpec, run_id: int) -> Callable[[], None]:
    """Start `benchlab sidecar` for the run's monitor targets; returns a function that stops and waits for it."""
    if not spec.monitor:
        return lambda: None
    argv = [
        sys.executable,
        "-m",
        "benchlab.runners.cli",
        "sidecar",
        "--run-id",
        str(run_id),
        "--db",
        spec.store.url,
        "--spool-dir",
        str(spec.store.spool_dir),
        "--service",
        "target",
    ]
    for target in spec.monitor:
        kind, _, value = target.partition(":")
        argv += [f"--{kind}", value]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            log.warning("sidecar did not stop in 30 s; killing it")
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15):
            log.warning("sidecar exited with %s", proc.returncode)

    return stop
