"""Locust through its library API: load user classes, run one process or a master with local workers."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
from locust import User
from locust.env import Environment
from locust.exception import RPCError
from locust.runners import MasterRunner, Runner
from locust.shape import LoadTestShape
from locust.util.load_locustfile import load_locustfile

from benchlab.runners.errors import BadInput
from benchlab.runners.settings import MasterSettings, WorkerConfig

log = logging.getLogger(__name__)
WORKER_CONNECT_TIMEOUT = 30.0


def load_users(path: Path, names: tuple[str, ...]) -> list[type[User]]:
    """Check and import a locustfile; return the chosen user classes (all of them when `names` is empty)."""
    return load_file(path, names)[0]


def load_file(path: Path, names: tuple[str, ...]) -> tuple[list[type[User]], list[LoadTestShape]]:
    """Check and import a locustfile; the chosen user classes and the file's own LoadTestShape instances."""
    if not path.is_file():
        raise BadInput(f"locustfile not found: {path}")
    try:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except SyntaxError as exc:
        raise BadInput(f"locustfile {path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"locustfile {path} cannot be read: {exc}") from None
    try:
        classes, shapes = load_locustfile(str(path))
    except Exception as exc:
        raise BadInput(f"locustfile {path} failed to import: {type(exc).__name__}: {exc}") from None
    if not classes:
        raise BadInput(f"locustfile {path} defines no User classes")
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise BadInput(f"user class {unknown[0]!r} not in {path} (has: {', '.join(sorted(classes))})")
    return [classes[n] for n in names] if names else [classes[n] for n in sorted(classes)], shapes


@dataclass
class Outcome:
    """How the load phase ended."""

    total_requests: int = 0
    """Locust's own request count (env.stats.total; on a master, aggregated from the workers' reports)."""
    failures: int = 0
    """Locust's own failure count."""
    signal: int | None = None
    """The signal that aborted the run, if any."""
    error: str | None = None
    """Why Locust could not run, if it could not."""
    workers: list[dict[str, Any]] = field(default_factory=list)
    """Each worker's final report (its counts and its collector's counts)."""
    lost: list[dict[str, Any]] = field(default_factory=list)
    """Remote workers lost during the run: label, Locust's count of their requests, stored and missing samples."""


class RemoteLink(Protocol):
    """The master's side of the remote workers' protocol (`runners.relay.MasterLink`)."""

    lost: list[dict[str, Any]]

    def ready(self) -> int:
        """Workers connected and configured."""

    def finish(self) -> None:
        """Stop the load and have every worker flush."""

    def reports(self) -> list[dict[str, Any]]:
        """Final counts."""

    def close(self) -> None:
        """Detach from Locust's events."""


class Swarm:
    """Runs the load for one run; `wait()` returns when the shape ends, a signal arrives or Locust fails."""

    def __init__(self, *, env: Environment, shape: LoadTestShape, deadline: float | None) -> None:
        self.env = env
        """Locust environment with our shape instance and listeners attached."""
        self.shape = shape
        """The load shape for the run's test type."""
        self.deadline = deadline
        """Seconds after which the run is stopped even if the shape has not ended (None: when the shape ends)."""
        self.outcome = Outcome()
        """Filled in as the run ends."""
        self._done = gevent.event.Event()

    def _stopped(self, **_: Any) -> None:
        self._done.set()

    def abort(self, signum: int) -> None:
        """Stop the load because of a signal (called from a gevent signal handler)."""
        if self.outcome.signal is None:
            log.warning("received %s, stopping the load", signal.Signals(signum).name)
            self.outcome.signal = signum
        self._done.set()

    def run_local(self) -> Outcome:
        """One in-process runner."""
        runner = self.env.create_local_runner()
        self._drive(runner)
        self.outcome.total_requests = self.env.stats.total.num_requests
        self.outcome.failures = self.env.stats.total.num_failures
        return self.outcome

    def run_master(self, worker_argv: list[list[str]], port: int) -> Outcome:
        """Locust's master here plus one local worker process per argv; every sample lands under one run id."""
        runner = self.env.create_master_runner("127.0.0.1", port)
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True) for argv in worker_argv]
        try:
            if not self._await_workers(runner, len(procs), procs):
                return self.outcome
            self._drive(runner)
        finally:
            self.outcome.workers = _collect_workers(procs, runner)
        self.outcome.total_requests = self.env.stats.total.num_requests
        self.outcome.failures = self.env.stats.total.num_failures
        return self.outcome

    def _await_workers(self, runner: MasterRunner, count: int, procs: list[subprocess.Popen[bytes]]) -> bool:
        waited = 0.0
        while runner.worker_count < count:
            dead = [p for p in procs if p.poll() is not None]
            if dead or waited > WORKER_CONNECT_TIMEOUT or self._done.is_set():
                if self.outcome.signal is None:
                    self.outcome.error = f"only {runner.worker_count} of {count} workers connected"
                return False
            gevent.sleep(0.1)
            waited += 0.1
        return True

    def run_remote(self, master: MasterSettings, attach: Callable[[MasterRunner], RemoteLink]) -> Outcome:
        """Locust's master for workers started elsewhere (`benchlab worker`); `attach` adds benchlab's protocol."""
        try:
            runner = self.env.create_master_runner(master.bind, master.port)
        except RPCError as exc:
            self.outcome.error = f"Locust's master cannot listen on {master.bind}:{master.port}: {exc}"
            return self.outcome
        link = attach(runner)
        try:
            if self._await_remote(link, master):
                self._drive(runner, before_quit=link.finish)
            else:
                runner.quit()
        finally:
            link.close()
        self.outcome.workers, self.outcome.lost = link.reports(), link.lost
        self.outcome.total_requests = self.env.stats.total.num_requests
        self.outcome.failures = self.env.stats.total.num_failures
        return self.outcome

    def _await_remote(self, link: RemoteLink, master: MasterSettings) -> bool:
        deadline = time.monotonic() + master.connect_timeout
        while link.ready() < master.expect_workers:
            if time.monotonic() > deadline or self._done.is_set():
                if self.outcome.signal is None:
                    self.outcome.error = (
                        f"only {link.ready()} of {master.expect_workers} workers connected"
                        f" within {master.connect_timeout:g} s"
                    )
                return False
            gevent.sleep(0.1)
        return True

    def _drive(self, runner: Runner, before_quit: Callable[[], None] | None = None) -> None:
        self.shape.runner = runner
        self.env.shape_class = self.shape
        self.env.events.init.fire(environment=self.env, runner=runner, web_ui=None)
        self.env.events.test_stop.add_listener(self._stopped)
        try:
            runner.start_shape()
            if not self._done.wait(timeout=self.deadline):
                log.warning("run passed its deadline of %.0f s; stopping", self.deadline)
        except Exception as exc:
            log.exception("Locust failed")
            self.outcome.error = f"Locust failed: {type(exc).__name__}: {exc}"
        finally:
            try:
                if before_quit is not None:
                    before_quit()
            finally:
                runner.quit()
                self.env.events.test_stop.remove_listener(self._stopped)
        for row in runner.exceptions.values():
            log.warning("user code raised %d time(s): %s", row["count"], row["msg"])


def _collect_workers(procs: list[subprocess.Popen[bytes]], runner: MasterRunner) -> list[dict[str, Any]]:
    """Wait for every worker to flush and exit; read the JSON line each prints last."""
    reports = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
        if lines:
            reports.append(json.loads(lines[-1]))
        else:
            log.error("worker pid %d exited with code %s and no report", proc.pid, proc.returncode)
    master_count = runner.stats.total.num_requests
    worker_count = sum(int(r.get("received", 0)) for r in reports)
    if master_count != worker_count:
        log.warning("locust master counted %d requests, worker collectors saw %d", master_count, worker_count)
    return reports


def worker_command(config: WorkerConfig) -> list[str]:
    """argv that starts one worker process for `benchlab.runners.worker`."""
    return [sys.executable, "-m", "benchlab.runners.worker", config.to_json()]
