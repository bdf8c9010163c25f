"""Remote workers' protocol, over Locust's custom messages (`runner.register_message` / `send_message`).

    worker                                master
      benchlab_hello {label}      ──►       knows the worker by its label (host:pid)
                                  ◄──       benchlab_config {run_id, db_url, relay, tally}
      benchlab_samples {rows}     ──►       only when relaying (SQLite store, or `--relay`): the master stores them
                                  ◄──       benchlab_finish, once the load has stopped
      Locust stats, benchlab_done ──►       the worker flushed everything; then Locust's own quit

Workers that reach Postgres write their samples straight to it, each through its own writer process.
A worker that never says done was lost: the run goes on, and its summary names it with its missing samples.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.monkey import get_original
from locust.runners import STATE_MISSING, MasterRunner
from sqlalchemy import func, select

from benchlab.metrics.settings import CollectorSettings, StoreSettings
from benchlab.metrics.store.database import Store, first_line, parse_url
from benchlab.metrics.store.model import RequestSample
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.writer import BatchWriter, CollectorStats
from benchlab.runners.settings import RunSpec

log = logging.getLogger(__name__)
_real_sleep: Callable[[float], None] = get_original("time", "sleep")
HELLO, CONFIG, SAMPLES, FINISH, DONE = (
    "benchlab_hello",
    "benchlab_config",
    "benchlab_samples",
    "benchlab_finish",
    "benchlab_done",
)
CHUNK = 5000
"""Samples per relayed message."""


@dataclass
class Peer:
    """What the master knows of one remote worker, by Locust client id."""

    label: str
    """host:pid, the `worker` column of its samples."""
    configured: bool = False
    """It said hello and was sent the run's config."""
    reported: int = 0
    """Requests Locust counted for it (the sum of its stats reports)."""
    done: dict[str, Any] | None = None
    """Its final counts, once it has flushed everything."""


def master_link(spec: RunSpec, runner: MasterRunner, run_id: int) -> MasterLink:
    """The protocol on a run's master runner."""
    tally = spec.metrics_port is not None
    link = MasterLink(runner, store=spec.store, run_id=run_id, tally=tally, settings=spec.collector)
    link.digest = digest(spec.locustfile)
    return link


class MasterLink:
    """The master's side: configures workers, stores relayed samples, and accounts for every worker at the end."""

    def __init__(
        self, runner: MasterRunner, *, store: StoreSettings, run_id: int, tally: bool, settings: CollectorSettings
    ) -> None:
        self.runner = runner
        self.store = store
        self.run_id = run_id
        self.tally = tally
        self.settings = settings
        self.digest = ""
        """sha256 of the master's locustfile; workers whose copy differs are warned about."""
        self.peers: dict[str, Peer] = {}
        """Workers seen, by Locust client id."""
        self.lost: list[dict[str, Any]] = []
        """Workers that went away without flushing: label, Locust's count, stored and missing samples."""
        self._relay: RelayWriter | None = None
        self._relayed: dict[str, CollectorStats] = {}
        runner.register_message(HELLO, self._on_hello)
        runner.register_message(SAMPLES, self._on_samples)
        runner.register_message(DONE, self._on_done)
        runner.environment.events.worker_report.add_listener(self._on_report)

    def _peer(self, client_id: str) -> Peer:
        return self.peers.setdefault(client_id, Peer(label=client_id))

    def _on_hello(self, environment: Any, msg: Any, **_: Any) -> None:
        peer = self._peer(msg.node_id)
        peer.label = str(msg.data["label"])
        postgres = parse_url(self.store.url).get_backend_name() == "postgresql"
        config = {"run_id": self.run_id, "db_url": self.store.url if postgres else None, "relay": not postgres}
        self.runner.send_message(CONFIG, config | {"tally": self.tally}, client_id=msg.node_id)
        peer.configured = True
        log.info("worker %s joined", peer.label)
        if self.digest and msg.data.get("locustfile") not in (self.digest, None):
            log.warning("worker %s runs a locustfile that differs from the master's", peer.label)

    def _on_samples(self, environment: Any, msg: Any, **_: Any) -> None:
        if self._relay is None:
            self._relay = RelayWriter(store=self.store, run_id=self.run_id, settings=self.settings)
        self._relay.put(self._peer(msg.node_id).label, [tuple(row) for row in msg.data["rows"]])

    def _on_done(self, environment: Any, msg: Any, **_: Any) -> None:
        self._peer(msg.node_id).done = dict(msg.data)

    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        self._peer(client_id).reported += int(data.get("stats_total", {}).get("num_requests", 0))

    def connected(self, client_id: str) -> bool:
        """The worker is connected and sending heartbeats."""
        node = self.runner.clients.get(client_id)
        return node is not None and node.state != STATE_MISSING

    def ready(self) -> int:
        """Connected workers that have been sent the run's config."""
        return sum(1 for cid, p in self.peers.items() if p.configured and self.connected(cid))

    def finish(self, timeout: float = 60.0) -> None:
        """Stop the load, have every connected worker flush, store what was relayed, and name the lost workers."""
        self.runner.stop()
        waiting = [cid for cid, p in self.peers.items() if p.configured and p.done is None and self.connected(cid)]
        for cid in waiting:
            self.runner.send_message(FINISH, None, client_id=cid)
        deadline = time.monotonic() + timeout
        while any(self.peers[c].done is None and self.connected(c) for c in waiting):
            if time.monotonic() > deadline:
                log.error("workers did not flush within %.0f s", timeout)
                break
            gevent.sleep(0.1)
        if self._relay is not None:
            self._relayed = self._relay.finish()
        self.lost = self._account()

    def _account(self) -> list[dict[str, Any]]:
        gone = [(cid, p) for cid, p in self.peers.items() if p.configured and p.done is None]
        if not gone:
            return []
        store = Store(settings=self.store)
        try:
            stored = count_by_worker(store, self.run_id)
        except Exception as exc:
            log.error("could not count the lost workers' samples: %s", first_line(exc))
            stored = {}
        lost = []
        for cid, peer in gone:
            count = stored.get(peer.label, 0)
            missing = max(0, peer.reported - count)
            lost.append(
                {
                    "worker": peer.label,
                    "client_id": cid,
                    "locust_requests": peer.reported,
                    "stored_samples": count,
                    "missing_samples": missing,
                }
            )
            log.warning(
                "worker %s was lost during the run: Locust counted %d of its requests, %d are stored (%d missing)",
                peer.label,
                peer.reported,
                count,
                missing,
            )
        try:
            now = time.time()
            store.add_events([(self.run_id, now, "worker_lost", None, f"worker {e['worker']} lost", e) for e in lost])
        except Exception as exc:
            log.error("could not record the lost workers: %s", first_line(exc))
        finally:
            store.close()
        return lost

    def reports(self) -> list[dict[str, Any]]:
        """Each worker's final counts, and those of the master's writers of relayed samples."""
        done = [p.done for p in self.peers.values() if p.done is not None]
        return done + [{"worker": label, "relayed": True, **asdict(s)} for label, s in self._relayed.items()]

    def close(self) -> None:
        """Detach from Locust's global events (a process may run again)."""
        self.runner.environment.events.worker_report.remove_listener(self._on_report)


def count_by_worker(store: Store, run_id: int) -> dict[str | None, int]:
    """Stored samples of a run, by worker label."""
    query = (
        select(RequestSample.worker, func.count()).where(RequestSample.run_id == run_id).group_by(RequestSample.worker)
    )
    with store.engine.connect() as conn:
        return {worker: int(n) for worker, n in conn.execute(query)}


class RelayWriter:
    """The master's writer of relayed samples: a native thread (off the gevent loop) writes each label's batches.

    In-process, unlike the workers' writer processes: the master generates no load whose GIL it would take.
    """

    def __init__(self, *, store: StoreSettings, run_id: int, settings: CollectorSettings) -> None:
        self._queue: deque[tuple[str, list[Sample]]] = deque()
        self._stopping = False
        self._result = gevent.get_hub().threadpool.spawn(self._loop, store, run_id, settings)

    def put(self, label: str, rows: list[Sample]) -> None:
        """Queue a relayed batch (from the gevent loop; never blocks)."""
        self._queue.append((label, rows))

    def finish(self, timeout: float = 300.0) -> dict[str, CollectorStats]:
        """Write everything queued; each label's counts."""
        self._stopping = True
        result: dict[str, CollectorStats] = self._result.get(timeout=timeout)
        return result

    def _loop(self, settings: StoreSettings, run_id: int, collector: CollectorSettings) -> dict[str, CollectorStats]:
        store, spool = Store(settings=settings), Spool(directory=settings.spool_dir)
        writers: dict[str, BatchWriter] = {}
        try:
            while True:
                stopping = self._stopping
                while self._queue:
                    label, rows = self._queue.popleft()
                    if label not in writers:
                        writers[label] = BatchWriter(
                            store=store, spool=spool, run_id=run_id, worker=label, settings=collector
                        )
                    writers[label].samples(rows)
                if stopping:
                    return {label: writer.finish() for label, writer in writers.items()}
                for writer in writers.values():
                    writer.tick()
                _real_sleep(collector.flush_interval)
        finally:
            store.close()


def digest(path: Path) -> str:
    """sha256 of a locustfile: the master warns when a worker's copy differs from its own."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
