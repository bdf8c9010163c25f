"""A Locust worker on another machine (`benchlab worker`): the worker's side of `runners.relay`'s protocol.

It has the master's address and its own copy of the locustfile; the run id and the store come from the master.
Its samples go straight to Postgres through its own writer process, or to the master (SQLite, or `--relay`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import gevent
import locust
from gevent.monkey import get_original
from locust.env import Environment
from locust.runners import WorkerRunner

from benchlab.metrics.collector import RequestCollector
from benchlab.metrics.exporter import REPORT_KEY, Tally
from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import first_line
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.writer import CollectorStats, Sink, WriterProcess
from benchlab.runners.errors import RunFailed
from benchlab.runners.relay import CHUNK, CONFIG, DONE, FINISH, HELLO, SAMPLES, digest
from benchlab.runners.settings import RemoteWorkerSettings
from benchlab.runners.swarm import load_users

log = logging.getLogger(__name__)
_real_sleep: Callable[[float], None] = get_original("time", "sleep")


def serve(settings: RemoteWorkerSettings) -> dict[str, Any]:
    """`benchlab worker`: connect, take the run's config, run users until the master quits; this worker's counts."""
    users = load_users(settings.locustfile, ())
    deferred = DeferredSink()
    collector = RequestCollector(sink=deferred, run_id=0).start()
    env = Environment(user_classes=users, events=locust.events)
    env.events.request.add_listener(collector.on_request)
    try:
        runner = env.create_worker_runner(settings.master_host, settings.master_port)
    except ConnectionError:
        collector.stop()
        raise RunFailed(f"no Locust master answered at {settings.master_host}:{settings.master_port}") from None
    worker = RemoteWorker(settings, runner, collector, deferred)
    runner.register_message(CONFIG, worker.on_config)
    runner.register_message(FINISH, worker.on_finish, concurrent=True)
    env.events.report_to_master.add_listener(worker.on_report)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.send_message(HELLO, {"label": worker.label, "locustfile": digest(settings.locustfile)})
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, worker.leave)
    runner.greenlet.join()
    stats = collector.stop()
    return {"worker": worker.label, "run_id": worker.run_id, "flushed": worker.done, **asdict(stats)}


class RemoteWorker:
    """The worker's side, between Locust's messages."""

    def __init__(
        self, settings: RemoteWorkerSettings, runner: WorkerRunner, collector: RequestCollector, deferred: DeferredSink
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.collector = collector
        self.deferred = deferred
        self.label = f"{socket.gethostname()}:{os.getpid()}"
        """The `worker` column of this worker's samples."""
        self.run_id: int | None = None
        """The master's run, once configured."""
        self.tally: Tally | None = None
        """Kept for the master's /metrics when it serves one."""
        self.done = False
        """Everything was flushed and the master was told so."""
        self._leaving = False

    def on_config(self, environment: Any, msg: Any, **_: Any) -> None:
        """The master's run id and store: the sink the collector's batches go to."""
        if self.deferred.target is not None:
            return
        data = msg.data
        self.run_id = int(data["run_id"])
        self.collector.run_id = self.run_id
        if data.get("tally"):
            self.tally = Tally()
            self.collector.observers.append(self.tally.observe)
        if data["relay"] or self.settings.relay:
            self.deferred.target = RelaySink(lambda kind, payload: self.runner.send_message(kind, payload))
        else:
            store = StoreSettings(url=self.settings.db_url or data["db_url"], spool_dir=self.settings.spool_dir)
            self.deferred.target = WriterProcess(store=store, run_id=self.run_id, worker=self.label)

    def on_report(self, client_id: str, data: dict[str, Any]) -> None:
        """The master's /metrics sums the tallies that ride along with each stats report."""
        if self.tally is not None:
            data[REPORT_KEY] = self.tally.snapshot()

    def on_finish(self, environment: Any, msg: Any, **_: Any) -> None:
        """The load has stopped: flush every sample, then say so."""
        if not self.done:
            self._say_done()

    def _say_done(self) -> None:
        stats = self.collector.stop()
        # Locust's last counts of this worker reach the master before our done (one socket, in order).
        self.runner._send_stats()
        self.runner.send_message(DONE, {"worker": self.label, "remote": True, **asdict(stats)})
        self.done = True

    def leave(self) -> None:
        """SIGINT/SIGTERM: stop the users, flush, tell the master, quit."""
        if not self._leaving:
            self._leaving = True
            gevent.spawn(self._leave)

    def _leave(self) -> None:
        self.runner.stop()
        if not self.done and self.run_id is not None:
            self._say_done()
        self.runner.send_message("quit")
        self.runner.quit()


class RelaySink:
    """A worker's sink when the master stores its samples: batches go to it as Locust messages.

    The collector's flush thread queues them; a greenlet sends them, since Locust's socket belongs to the gevent loop.
    """

    def __init__(self, send: Callable[[str, dict[str, Any]], None]) -> None:
        self._send = send
        self._queue: deque[list[Sample]] = deque()
        self.stats = CollectorStats()
        """received: taken from the collector; stored: sent to the master."""
        self._pump = gevent.spawn(self._run)

    def samples(self, batch: list[Sample]) -> None:
        """Queue a batch (flush thread)."""
        self.stats.received += len(batch)
        self._queue.append(batch)

    def events(self, rows: list[Any]) -> None:
        """Workers record no run events."""

    def tick(self) -> None:
        """Nothing to retry."""

    def finish(self, timeout: float = 120.0) -> CollectorStats:
        """Wait (on the flush thread) until the greenlet has sent every batch."""
        deadline = time.monotonic() + timeout
        while self._queue and not self._pump.dead and time.monotonic() < deadline:
            _real_sleep(0.02)
        if unsent := sum(len(b) for b in self._queue):
            log.error("%d samples were never relayed to the master", unsent)
        return self.stats

    def _run(self) -> None:
        while True:
            while self._queue:
                batch = self._queue[0]
                try:
                    for start in range(0, len(batch), CHUNK):
                        self._send(SAMPLES, {"rows": batch[start : start + CHUNK]})
                except Exception as exc:
                    log.error("could not relay %d samples to the master: %s", len(batch), first_line(exc))
                    return
                self._queue.popleft()
                self.stats.stored += len(batch)
            gevent.sleep(0.05)


class DeferredSink:
    """A sink whose target is known later (when the master's config arrives); batches wait here until then."""

    def __init__(self) -> None:
        self.target: Sink | None = None
        """Set once, from the gevent loop; read by the flush thread."""
        self._early: list[Sample] = []

    def samples(self, batch: list[Sample]) -> None:
        """Forward, or keep until there is a target."""
        if self.target is None:
            self._early.extend(batch)
            return
        if self._early:
            self.target.samples(self._early)
            self._early = []
        if batch:
            self.target.samples(batch)

    def events(self, rows: list[Any]) -> None:
        """Forward run events once there is a target."""
        if self.target is not None:
            self.target.events(rows)

    def tick(self) -> None:
        """Forward the tick."""
        if self.target is not None:
            self.target.tick()

    def finish(self) -> CollectorStats:
        """The target's counts; samples never configured are counted as pending."""
        if self.target is None:
            if self._early:
                log.error("no run config from the master: %d samples not stored", len(self._early))
            return CollectorStats(received=len(self._early), pending=len(self._early))
        self.samples([])
        return self.target.finish()
