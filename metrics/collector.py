"""Request collector: Locust's request hook appends to a buffer; a real OS thread flushes it to the store."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.monkey import get_original

from metrics.sample import Sample
from metrics.settings import CollectorSettings
from metrics.spool import Spool
from metrics.store import EventRow, Store, first_line

log = logging.getLogger(__name__)
_real_sleep: Callable[[float], None] = get_original("time", "sleep")
_MAX_BATCH = 50_000

Observer = Callable[[list[Sample]], None]
"""Called from the flush thread with every drained batch (for example the Prometheus tally)."""


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


class RequestCollector:
    """Buffers every request sample and run event, and writes them from a flush thread."""

    def __init__(
        self,
        *,
        store: Store,
        spool: Spool,
        run_id: int,
        worker: str | None = None,
        settings: CollectorSettings | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.store = store
        """Where samples go."""
        self.spool = spool
        """Where samples wait while the store fails."""
        self.run_id = run_id
        """Run every sample belongs to."""
        self.worker = worker
        """Label of the process that made the requests (None for the single in-process runner)."""
        self.settings = settings or CollectorSettings()
        """Flush and retry intervals."""
        self.observers = observers or []
        """Callbacks that see every flushed batch."""
        self.stats = CollectorStats()
        """Counts, updated by the flush thread."""
        self._samples: deque[Sample] = deque()
        self._events: deque[EventRow] = deque()
        self._stopping = False
        self._failing = False
        self._result: Any = None

    # -- hot path -----------------------------------------------------------------------------
    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int | None,
        response: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Locust `events.request` listener: one tuple appended, nothing else."""
        request = getattr(response, "request", None)
        body = getattr(request, "body", None)
        self._samples.append(
            (
                start_time or time.time(),
                name,
                request_type,
                response_time,
                response_length,
                len(body) if body is not None else None,
                getattr(response, "status_code", None),
                exception is None,
                None if exception is None else f"{type(exception).__name__}: {exception}",
            )
        )

    def note(self, kind: str, message: str | None = None, user_count: int | None = None, **data: Any) -> None:
        """Record a run event (start, stop, users, shape stages, notes); thread- and greenlet-safe."""
        self._events.append((self.run_id, time.time(), kind, user_count, message, data or None))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> RequestCollector:
        """Start the flush loop on a real OS thread of gevent's threadpool."""
        self._result = gevent.get_hub().threadpool.spawn(self._loop)
        return self

    def stop(self, timeout: float = 120.0) -> CollectorStats:
        """Flush everything, replay this run's spool, and return the counts."""
        self._stopping = True
        if self._result is not None:
            self._result.get(timeout=timeout)
            self._result = None
        return self.stats

    def _loop(self) -> None:
        next_retry = 0.0
        while True:
            stopping = self._stopping
            self.flush()
            if stopping:
                break
            now = time.monotonic()
            if now >= next_retry and not self._failing:
                self.replay()
                next_retry = now + self.settings.retry_interval
            _real_sleep(self.settings.flush_interval)
        self.replay()
        self._spool_leftover_events()
        self.stats.pending = sum(len(Spool.load(p).rows) for p in self.spool.pending(self.run_id))

    def flush(self) -> None:
        """Drain the buffers once: samples to the store (or the spool), events to the store (or kept)."""
        samples = self._samples
        while samples:
            batch = [samples.popleft() for _ in range(min(len(samples), _MAX_BATCH))]
            self.stats.received += len(batch)
            for observer in self.observers:
                try:
                    observer(batch)
                except Exception:
                    log.exception("sample observer failed")
            self._write(batch)
        self._write_events()

    def _write(self, batch: list[Sample]) -> None:
        try:
            self.store.write_samples(self.run_id, self.worker, batch)
        except Exception as exc:
            self.spool.put(self.run_id, self.worker, batch)
            self.stats.spooled += len(batch)
            if not self._failing:
                log.warning("store write failed, spooling samples: %s", first_line(exc))
            self._failing = True
            return
        self.stats.stored += len(batch)
        if self._failing:
            log.warning("store reachable again; replaying spooled samples")
            self._failing = False

    def _write_events(self) -> None:
        if not self._events:
            return
        rows = list(self._events)
        try:
            self.store.add_events(rows)
        except Exception as exc:
            if not self._failing:
                log.warning("store write of run events failed, keeping them: %s", first_line(exc))
            return
        for _ in rows:
            self._events.popleft()

    def replay(self) -> int:
        """Write this run's spooled batches back to the store; returns samples replayed."""
        done = replay_spool(self.store, self.spool, run_id=self.run_id)
        self.stats.replayed += done
        return done

    def _spool_leftover_events(self) -> None:
        if self._events:
            self.spool.put_events(list(self._events))
            log.warning("store unreachable at the end: %d run events spooled", len(self._events))
            self._events.clear()


def replay_spool(store: Store, spool: Spool, run_id: int | None = None) -> int:
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
            store.write_samples(batch.run_id, batch.worker, batch.rows)
        except Exception as exc:
            spool.release(claimed)
            log.warning("replay of %s failed: %s", path.name, first_line(exc))
            break
        claimed.unlink()
        replayed += len(batch.rows)
    return replayed
