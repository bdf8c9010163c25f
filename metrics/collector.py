"""Request collector: Locust's request hook appends to a buffer; a real OS thread hands it to a sink.

The sink is a `WriterProcess` (formatting and COPY in a child process, off the load generator's GIL) or,
in tests and tools, a `BatchWriter` in this process.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.monkey import get_original

from benchlab.metrics.settings import CollectorSettings
from benchlab.metrics.store.bulk import EventRow
from benchlab.metrics.store.sample import Sample
from benchlab.metrics.store.writer import CollectorStats, Sink

log = logging.getLogger(__name__)
_real_sleep: Callable[[float], None] = get_original("time", "sleep")
_MAX_BATCH = 50_000

Observer = Callable[[list[Sample]], None]
"""Called from the flush thread with every drained batch (for example the Prometheus tally)."""


class RequestCollector:
    """Buffers every request sample and run event, and writes them from a flush thread."""

    def __init__(
        self,
        *,
        sink: Sink,
        run_id: int,
        settings: CollectorSettings | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.sink = sink
        """Where drained batches go: a writer process or an in-process BatchWriter."""
        self.run_id = run_id
        """Run every event belongs to."""
        self.settings = settings or CollectorSettings()
        """Flush interval."""
        self.observers = observers or []
        """Callbacks that see every flushed batch."""
        self.stats = CollectorStats()
        """The sink's counts, filled in by `stop()`."""
        self._samples: deque[Sample] = deque()
        self._events: deque[EventRow] = deque()
        self._stopping = False
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

    def stop(self, timeout: float = 300.0) -> CollectorStats:
        """Flush everything, let the sink finish (replaying its spool), and return the counts."""
        self._stopping = True
        if self._result is not None:
            self._result.get(timeout=timeout)
            self._result = None
        return self.stats

    def _loop(self) -> None:
        while True:
            stopping = self._stopping
            self.flush()
            if stopping:
                break
            self.sink.tick()
            _real_sleep(self.settings.flush_interval)
        self.stats = self.sink.finish()

    def flush(self) -> None:
        """Drain the buffers once into the sink."""
        samples = self._samples
        while samples:
            batch = [samples.popleft() for _ in range(min(len(samples), _MAX_BATCH))]
            for observer in self.observers:
                try:
                    observer(batch)
                except Exception:
                    log.exception("sample observer failed")
            self.sink.samples(batch)
        if self._events:
            rows = [self._events.popleft() for _ in range(len(self._events))]
            self.sink.events(rows)
