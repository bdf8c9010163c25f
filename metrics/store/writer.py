"""Writing collected batches: to the store, or to the spool when it fails; in-process or in a child process.

`BatchWriter` owns the store and the spool. `WriterProcess` runs a BatchWriter in a child process
(`python -m benchlab.metrics.store.writer`) and feeds it pickled batches over a pipe, so formatting and COPY
never take the GIL from the Locust process that is generating load.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from benchlab.metrics.settings import CollectorSettings, StoreSettings
from benchlab.metrics.store.bulk import HEARTBEAT_S, Bulk, EventRow, first_line
from benchlab.metrics.store.pipe import HEADER, Child, read_exact
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class CollectorStats:
    """What happened to the samples a collector received."""

    received: int = 0
    """Samples taken off the buffer."""
    stored: int = 0
    """Samples written on the first attempt."""
    spooled: int = 0
    """Samples written to the local spool because the store failed."""
    replayed: int = 0
    """Spooled samples later written to the store."""
    pending: int = 0
    """Spooled samples still waiting at the end (replay them with `benchlab replay`)."""


class Sink(Protocol):
    """Where a collector's flush thread sends what it drains."""

    def samples(self, batch: list[Sample]) -> None:
        """Take one batch of samples."""

    def events(self, rows: list[EventRow]) -> None:
        """Take run events."""

    def tick(self) -> None:
        """Called once per flush: a chance to replay the spool."""

    def finish(self) -> CollectorStats:
        """Write or spool everything left; return the counts."""


class Target(Protocol):
    """What a BatchWriter writes to: `Store` (SQLAlchemy), or `Bulk` (bare DB-API, in the writer child)."""

    def write_samples(self, run_id: int, worker: str | None, rows: Sequence[Sample], batch: str | None = None) -> None:
        """Store a batch of samples in one transaction, unless its id `batch` is stored already."""

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Store run events."""

    def heartbeat(self, run_id: int) -> bool:
        """Mark a running run alive; best effort."""


class BatchWriter:
    """Writes batches to the store; what fails goes to the spool and is replayed when the store is back."""

    def __init__(
        self, *, store: Target, spool: Spool, run_id: int, worker: str | None, settings: CollectorSettings | None = None
    ) -> None:
        self.store = store
        """Where samples go."""
        self.spool = spool
        """Where samples wait while the store fails."""
        self.run_id = run_id
        """Run every sample belongs to."""
        self.worker = worker
        """Label of the process that made the requests."""
        self.settings = settings or CollectorSettings()
        """Retry interval."""
        self.stats = CollectorStats()
        """Counts so far."""
        self._events: list[EventRow] = []
        self._failing = False
        self._next_retry = 0.0
        self._next_beat = 0.0

    def samples(self, batch: list[Sample], batch_id: str | None = None) -> None:
        """Write one batch, or spool it; its id (`batch_id`, or a new one) goes with it, so it is stored once."""
        self.stats.received += len(batch)
        batch_id = batch_id or uuid.uuid4().hex
        try:
            self.store.write_samples(self.run_id, self.worker, batch, batch_id)
        except Exception as exc:  # perhaps stored all the same (a lost commit acknowledgement): the id tells
            self.spool.put(self.run_id, self.worker, batch, batch_id)
            self.stats.spooled += len(batch)
            if not self._failing:
                log.warning("store write failed, spooling samples: %s", first_line(exc))
            self._failing = True
            return
        self.stats.stored += len(batch)
        if self._failing:
            log.warning("store reachable again; replaying spooled samples")
            self._failing = False

    def events(self, rows: list[EventRow]) -> None:
        """Write run events; on failure keep them for the next attempt."""
        self._events.extend(rows)
        if not self._events:
            return
        try:
            self.store.add_events(self._events)
        except Exception as exc:
            if not self._failing:
                log.warning("store write of run events failed, keeping them: %s", first_line(exc))
            return
        self._events = []

    def tick(self) -> None:
        """Replay the spool every retry interval, and beat the run's heartbeat, while the store works."""
        now = time.monotonic()
        if now >= self._next_retry and not self._failing:
            self.stats.replayed += replay_spool(self.store, self.spool, run_id=self.run_id)
            self._next_retry = now + self.settings.retry_interval
        if now >= self._next_beat and not self._failing:
            self._next_beat = now + HEARTBEAT_S
            self.store.heartbeat(self.run_id)

    def finish(self) -> CollectorStats:
        """Final replay; events the store still refuses go to the spool; count what is left."""
        self.events([])
        self.stats.replayed += replay_spool(self.store, self.spool, run_id=self.run_id)
        if self._events:
            self.spool.put_events(self._events)
            log.warning("store unreachable at the end: %d run events spooled", len(self._events))
            self._events = []
        self.stats.pending = sum(len(Spool.load(p).rows) for p in self.spool.pending(self.run_id))
        return self.stats


def replay_spool(store: Target, spool: Spool, run_id: int | None = None) -> int:
    """Replay spooled batches (of one run, or all); each file is claimed first so processes never double-write."""
    replayed = 0
    for path in spool.pending(run_id):
        claimed = spool.claim(path)
        if claimed is None:
            continue
        batch = Spool.load(claimed)
        try:
            if batch.events:
                store.add_events(batch.events)
            store.write_samples(batch.run_id, batch.worker, batch.rows, batch.batch_id)
        except Exception as exc:
            spool.release(claimed)
            log.warning("replay of %s failed: %s", path.name, first_line(exc))
            break
        claimed.unlink()
        replayed += len(batch.rows)
    return replayed


@dataclass(frozen=True)
class WriterConfig:
    """What the child process needs to build its BatchWriter."""

    db_url: str
    spool_dir: str
    run_id: int
    worker: str | None
    retry_interval: float


class WriterProcess:
    """A BatchWriter in a child process, fed pickled batches over its stdin; falls back to in-process writes."""

    def __init__(
        self, *, store: StoreSettings, run_id: int, worker: str | None, settings: CollectorSettings | None = None
    ) -> None:
        settings = settings or CollectorSettings()
        self._config = WriterConfig(store.url, str(store.spool_dir), run_id, worker, settings.retry_interval)
        self._settings = settings
        self._fallback: BatchWriter | None = None
        self._unacked: deque[tuple[str, Any]] = deque()
        self._child = Child([sys.executable, "-m", "benchlab.metrics.store.writer", json.dumps(asdict(self._config))])

    def samples(self, batch: list[Sample]) -> None:
        """Hand a batch to the child, with the id that keeps a resent batch from being stored twice."""
        self._send(("samples", (uuid.uuid4().hex, batch)))

    def events(self, rows: list[EventRow]) -> None:
        """Hand run events to the child."""
        if rows:
            self._send(("events", rows))

    def tick(self) -> None:
        """The child replays on its own clock."""

    def finish(self) -> CollectorStats:
        """Tell the child to finish, and read its counts."""
        if self._fallback is None:
            self._send(("stop", None))
        if self._fallback is None:
            out = self._child.finish().strip().splitlines()
            if out and out[-1].startswith("{"):
                return CollectorStats(**json.loads(out[-1]))
            self._take_over()
        assert self._fallback is not None
        return self._fallback.finish()

    def _send(self, message: tuple[str, Any]) -> None:
        if self._fallback is None:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                self._child.send(HEADER.pack(len(data)) + data)
                if message[0] == "stop":
                    return  # what the child prints now is its final counts, which finish() reads
                self._unacked.append(message)
                self._confirmed(self._child.acks())
                return
            except OSError:
                self._take_over()
        assert self._fallback is not None
        self._deliver(self._fallback, message)

    def _confirmed(self, count: int) -> None:
        for _ in range(min(count, len(self._unacked))):
            self._unacked.popleft()

    def _take_over(self) -> None:
        """The child died: write from this process, starting with what the child never confirmed."""
        self._confirmed(self._child.finish().count("\n"))
        log.error("writer process is gone (exit %s); writing from this process", self._child.returncode)
        self._fallback = self._local()
        while self._unacked:
            self._deliver(self._fallback, self._unacked.popleft())

    def _local(self) -> BatchWriter:
        from benchlab.metrics.store.database import Store

        store = Store(settings=StoreSettings(url=self._config.db_url, spool_dir=Path(self._config.spool_dir)))
        return BatchWriter(
            store=store,
            spool=Spool(directory=Path(self._config.spool_dir)),
            run_id=self._config.run_id,
            worker=self._config.worker,
            settings=self._settings,
        )

    @staticmethod
    def _deliver(writer: BatchWriter, message: tuple[str, Any]) -> None:
        kind, payload = message
        if kind == "samples":
            batch_id, rows = payload
            writer.samples(rows, batch_id)
        elif kind == "events":
            writer.events(payload)


def serve(config: WriterConfig, stream: BinaryIO, ack: int = 1) -> CollectorStats:
    """The child's loop: read messages until `stop` or end of input, replaying the spool between them."""
    store = Bulk(config.db_url)
    writer = BatchWriter(
        store=store,
        spool=Spool(directory=Path(config.spool_dir)),
        run_id=config.run_id,
        worker=config.worker,
        settings=CollectorSettings(retry_interval=config.retry_interval),
    )
    fd = stream.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], config.retry_interval)
        if ready:
            header = read_exact(fd, HEADER.size)
            body = read_exact(fd, HEADER.unpack(header)[0]) if header else None
            if body is None:
                log.error("collector went away without saying stop; finishing")
                break
            kind, payload = pickle.loads(body)
            if kind == "stop":
                break
            WriterProcess._deliver(writer, (kind, payload))
            try:
                os.write(ack, b"\n")  # stored or spooled: the collector may forget it
            except BrokenPipeError:  # the collector was killed: store the rest it handed over, then finish
                os.dup2(os.open(os.devnull, os.O_WRONLY), ack)
        writer.tick()
    stats = writer.finish()
    store.close()
    return stats


def main() -> int:
    """`python -m benchlab.metrics.store.writer '<json config>'`: the last stdout line is the JSON counts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop; it says so on the pipe
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s writer %(levelname)s %(name)s: %(message)s")
    stats = serve(WriterConfig(**json.loads(sys.argv[1])), sys.stdin.buffer)
    try:
        print(json.dumps(asdict(stats)), flush=True)
    except BrokenPipeError:  # the collector was killed: nobody reads the counts
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
