"""The demo target's job worker and the queue metrics it reports."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from benchlab.runners.demo.content import burn
from benchlab.runners.demo.jobqueue import Job, JobQueue, MalformedJob

__all__ = ["JOB_KINDS", "JobMetrics", "QueueCollector", "Worker"]

log = logging.getLogger(__name__)

JOB_KINDS: dict[str, int] = {"notify": 1_200, "render": 3_000, "index": 6_000}
"""Job kinds and their SHA-256 rounds (about 1, 2.5 and 5 ms here)."""

_JOB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class JobMetrics:
    """Counters and histograms the worker updates, registered in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.processing = Histogram(
            "demo_job_processing_seconds",
            "Time the worker spent on a job.",
            ["kind"],
            registry=registry,
            buckets=_JOB_BUCKETS,
        )
        self.waiting = Histogram(
            "demo_job_wait_seconds",
            "Time a job waited in the queue before the worker took it.",
            ["kind"],
            registry=registry,
            buckets=_JOB_BUCKETS,
        )
        self.processed = Counter(
            "demo_jobs_processed", "Jobs the worker finished, failed or not.", ["kind"], registry=registry
        )
        self.failed = Counter("demo_jobs_failed", "Jobs that failed.", ["kind"], registry=registry)


class QueueCollector(Collector):
    """Reads the queue's length and the age of its oldest job at scrape time."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        try:
            length = self._queue.length()
            oldest = self._queue.oldest_enqueued_at()
        except Exception as exc:  # a scrape must not fail because Redis blinked
            log.warning("queue metrics unavailable: %s", exc)
            return
        yield GaugeMetricFamily("demo_queue_length", "Jobs waiting in the queue.", value=length)
        age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        yield GaugeMetricFamily("demo_queue_oldest_age_seconds", "Age of the oldest waiting job.", value=age)

    def describe(self) -> Iterator[Metric]:
        return iter(())


def run_job(job: Job) -> None:
    """Do the job's CPU work; raise for unknown kinds and for payloads that ask to fail."""
    rounds = JOB_KINDS.get(job.kind)
    if rounds is None:
        raise ValueError(f"unknown job kind {job.kind!r}")
    payload: Any = job.payload
    if isinstance(payload, dict) and payload.get("fail"):
        raise RuntimeError("job payload asked to fail")
    burn(job.id.encode(), rounds)


class Worker:
    """Consumes jobs from a queue one at a time and records their outcome.

    It runs in a `threading.Thread`. Without monkey-patching (tests that use `create_app`
    in-process) that is a real OS thread doing blocking Redis calls. Under `serve`, which
    monkey-patches before building anything, the same code runs as a greenlet: BRPOP on the
    patched socket yields to the gevent loop, so requests keep being served while the worker
    waits. The few milliseconds of hashing per job then hold the loop like a request would,
    which is what a single-process service with an in-process worker does.
    """

    def __init__(self, queue: JobQueue, metrics: JobMetrics, *, poll_s: float = 0.5) -> None:
        self._queue = queue
        self._metrics = metrics
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start consuming in the background."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="benchlab-demo-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait for the job in progress (at most `timeout` s)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self, timeout: float) -> bool:
        """Take one job (waiting up to `timeout` s) and process it; False if none came."""
        try:
            job = self._queue.dequeue(timeout)
        except MalformedJob as exc:
            log.warning("%s", exc)
            self._metrics.processed.labels("malformed").inc()
            self._metrics.failed.labels("malformed").inc()
            return True
        if job is None:
            return False
        self.process(job)
        return True

    def process(self, job: Job) -> None:
        """Run `job`, then store its status and timings and update the metrics."""
        kind = job.kind if job.kind in JOB_KINDS else "other"
        started_at = time.time()
        self._metrics.waiting.labels(kind).observe(max(0.0, started_at - job.enqueued_at))
        self._queue.update(job.id, status="running", started_at=started_at)
        started = time.perf_counter()
        error = ""
        try:
            run_job(job)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        duration = time.perf_counter() - started
        fields: dict[str, str | float] = {
            "status": "failed" if error else "done",
            "finished_at": time.time(),
            "duration_s": duration,
        }
        if error:
            fields["error"] = error
            self._metrics.failed.labels(kind).inc()
        self._queue.update(job.id, **fields)
        self._metrics.processed.labels(kind).inc()
        self._metrics.processing.labels(kind).observe(duration)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once(self._poll_s)
            except Exception:  # Redis down or similar: log, back off, keep the worker alive
                log.exception("job worker iteration failed")
                self._stopping.wait(1.0)
