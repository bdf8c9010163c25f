"""The resource and queue sidecar: sample targets and probes every tick, store rows, serve /metrics.

Flag values and the config file's targets and probes are parsed by `metrics/sidecar/spec.py`.

Config file (`--config`, TOML, or JSON when the name ends in `.json`; same keys), merged with the flags:

    [[target]]                  # one of pid / process / port / cgroup, and a service name
    service = "api"
    port = 8000
    [[redis]]                   # RedisListSpec fields: url, key, label, published_key, oldest_key, age_field
    url = "redis://redis:6379/0"
    key = "benchlab:demo:jobs"
    [[rabbitmq]]                # url, queue, label
    url = "amqp://guest:guest@rabbitmq:5672/%2F"
    queue = "jobs"
    [[scrape]]                  # ScrapeSpec fields: url, label, and family regexes (processing, processed, ...)
    url = "http://target:8000/metrics"
    label = "benchlab:demo:jobs"

Rows carry the run in progress in the same DB (`run_id="auto"`, checked every tick; NULL between runs), a
fixed run id, or NULL (None). A failed write is logged once and its rows kept (at most `max_pending` per
table, oldest dropped first) for the next tick; rows the DB rejects (integrity errors) are dropped.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy.exc import IntegrityError

from benchlab.metrics.sidecar.exposition import QueueReading, SidecarCollector, Snapshot
from benchlab.metrics.sidecar.probe import open_probe
from benchlab.metrics.sidecar.process import ProcessSampler, Target, read_table
from benchlab.metrics.sidecar.queue import ProbeSpec, label_of
from benchlab.metrics.sidecar.spec import RunIdSetting, load_config
from benchlab.metrics.store.database import Store, first_line

__all__ = ["Sidecar", "SidecarSettings", "resolve_settings", "run_sidecar", "sidecar_cpu_benchmark"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    """What the sidecar watches, how often, and where its samples go."""

    targets: tuple[Target, ...] = ()
    """Processes to sample, by service."""
    probes: tuple[ProbeSpec, ...] = ()
    """Queues to probe."""
    interval: float = 1.0
    """Seconds between ticks."""
    metrics_port: int | None = None
    """Port of the /metrics HTTP server; None for none."""
    metrics_addr: str = "127.0.0.1"
    """Bind address of the /metrics server (0.0.0.0 in a container)."""
    run_id: RunIdSetting = "auto"
    """Run the rows belong to: "auto", a run id, or None."""
    config: Path | None = None
    """TOML or JSON file of more targets and probes (format in the module docstring)."""
    max_pending: int = 10_000
    """Rows kept per table while the store is unreachable."""
    proc_root: str = "/proc"
    """procfs to read (the host's, when mounted into a container)."""
    cgroup_root: str = "/sys/fs/cgroup"
    """cgroupfs that cgroup targets are relative to."""

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval}")
        if self.metrics_port is not None and not 0 <= self.metrics_port < 65536:
            raise ValueError(f"bad metrics port {self.metrics_port}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {self.max_pending}")


class Sidecar:
    """Samples targets and probes once per tick, keeps the latest snapshot, writes rows to the store."""

    def __init__(self, *, settings: SidecarSettings, store: Store | None) -> None:
        self.settings = settings
        """Targets, probes and timing (config file already merged)."""
        self.store = store
        """Where rows go; None for a metrics-only sidecar."""
        self._sampler = (
            ProcessSampler(targets=settings.targets, proc_root=settings.proc_root, cgroup_root=settings.cgroup_root)
            if settings.targets
            else None
        )
        self._probes = [open_probe(spec) for spec in settings.probes]
        self._pending: dict[str, deque[dict[str, Any]]] = {
            "resource": deque(maxlen=settings.max_pending),
            "queue": deque(maxlen=settings.max_pending),
        }
        self._problems: dict[str, str | None] = {}
        self._run: int | None = settings.run_id if isinstance(settings.run_id, int) else None
        self._snapshot = Snapshot()
        self._counts = {"ticks": 0, "store_errors": 0, "dropped_rows": 0}

    def snapshot(self) -> Snapshot:
        """The latest readings (what /metrics shows)."""
        return self._snapshot

    def tick(self) -> None:
        """Sample everything once, queue the rows and try to store them."""
        ts = datetime.now(UTC)
        services = []
        if self._sampler is not None:
            try:
                services = self._sampler.sample()
                self._problem("sampler", None)
            except Exception as exc:  # one bad tick must not stop the sidecar
                self._problem("sampler", f"process sampling failed: {exc!r}")
        queues = [reading for reading in (self._read(p) for p in self._probes) if reading is not None]
        if self.store is not None:
            run_id = self._run_id()
            self._queue_rows("resource", [{**s.columns(), "ts": ts, "run_id": run_id} for s in services])
            self._queue_rows("queue", [{**q.columns(), "ts": ts, "run_id": run_id} for q in queues])
            self.flush()
        self._counts["ticks"] += 1
        self._snapshot = Snapshot(
            services=tuple(services),
            queues=tuple(queues),
            pending_rows=sum(len(rows) for rows in self._pending.values()),
            **self._counts,
        )

    def flush(self) -> None:
        """Write the pending rows; on failure keep them for the next try."""
        if self.store is None:
            return
        writers = {"resource": self.store.write_resource_samples, "queue": self.store.write_queue_samples}
        for table, rows in self._pending.items():
            if not rows:
                continue
            batch = list(rows)
            try:
                writers[table](batch)
            except IntegrityError as exc:  # retrying will not help: drop the batch
                self._counts["dropped_rows"] += len(batch)
                rows.clear()
                log.error("store rejected %d %s rows, dropped: %s", len(batch), table, first_line(exc))
            except Exception as exc:
                self._counts["store_errors"] += 1
                self._problem("store", f"store write failed, keeping rows for later: {first_line(exc)}")
                return
            else:
                rows.clear()
                self._problem("store", None)

    def run(self, stop: threading.Event) -> None:
        """Tick every `interval` seconds until `stop` is set, then flush and close the probes."""
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                self.tick()
                next_at += self.settings.interval
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind: skip the missed ticks rather than bunching them
                    next_at, delay = time.monotonic(), 0.0
                stop.wait(delay)
        finally:
            self.flush()
            left = sum(len(rows) for rows in self._pending.values())
            if left:
                log.error("sidecar stopped with %d rows not stored", left)
            for probe in self._probes:
                probe.close()

    def _read(self, probe: Any) -> QueueReading | None:
        name = f"probe {probe.spec.__class__.__name__}:{label_of(probe.spec)}"
        try:
            reading: QueueReading = probe.read()
        except Exception as exc:  # the queue or the broker is down: no reading this tick
            self._problem(name, f"{name} failed: {first_line(exc)}")
            return None
        self._problem(name, None)
        return reading

    def _run_id(self) -> int | None:
        if self.settings.run_id != "auto" or self.store is None:
            return self._run
        try:
            current = self.store.running_run_id()
        except Exception as exc:  # keep the last known run while the DB is away
            self._problem("run", f"cannot read the running run: {first_line(exc)}")
            return self._run
        self._problem("run", None)
        if current != self._run:
            log.info("sidecar rows now belong to %s", f"run {current}" if current else "no run")
        self._run = current
        return current

    def _queue_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        pending = self._pending[table]
        overflow = len(pending) + len(rows) - self.settings.max_pending
        if overflow > 0:
            self._counts["dropped_rows"] += overflow
        pending.extend(rows)

    def _problem(self, source: str, message: str | None) -> None:
        """Log a problem once per change, and its end."""
        previous, self._problems[source] = self._problems.get(source), message
        if message is not None and message != previous:
            log.warning("%s", message)
        elif message is None and previous is not None:
            log.info("%s: recovered", source)


def resolve_settings(settings: SidecarSettings) -> SidecarSettings:
    """The settings with the config file's targets and probes merged in; ValueError if nothing to watch."""
    targets, probes = settings.targets, settings.probes
    if settings.config is not None:
        more_targets, more_probes = load_config(settings.config)
        targets, probes = targets + more_targets, probes + more_probes
    if not targets and not probes:
        raise ValueError("the sidecar has nothing to watch: give a target or a queue probe")
    return replace(settings, targets=targets, probes=probes, config=None)


def run_sidecar(settings: SidecarSettings, store: Store | None, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT or `stop`; flush and return 0. ValueError on bad settings or config."""
    settings = resolve_settings(settings)
    if store is not None and isinstance(settings.run_id, int):
        try:
            known = store.get_run(settings.run_id) is not None
        except Exception as exc:  # the DB may come up later
            known = True
            log.warning("cannot check run %s: %s", settings.run_id, first_line(exc))
        if not known:
            raise ValueError(f"run {settings.run_id} is not in the store")
    stop = stop or threading.Event()
    sidecar = Sidecar(settings=settings, store=store)
    restore = _on_signals(stop)
    server = None
    try:
        if settings.metrics_port is not None:
            registry = CollectorRegistry()
            registry.register(SidecarCollector(snapshot=sidecar.snapshot))
            server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_addr, registry=registry)
        log.info(
            "sidecar watching %d targets and %d queues every %.3g s",
            len(settings.targets),
            len(settings.probes),
            settings.interval,
        )
        sidecar.run(stop)
    finally:
        restore()
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0


def _on_signals(stop: threading.Event) -> Any:
    """Set `stop` on SIGTERM/SIGINT (main thread only); returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    return lambda: [signal.signal(sig, handler) for sig, handler in old.items()]


def sidecar_cpu_benchmark(processes: int = 50, seconds: float = 20.0, *, store: Store | None = None) -> float:
    """CPU of the sidecar loop, as a fraction of one core, sampling `processes` idle children at 1 Hz."""
    parent = subprocess.Popen(
        ["/bin/sh", "-c", f"for i in $(seq {processes}); do sleep 3600 & done; wait"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while sum(stat.ppid == parent.pid for stat in read_table().values()) < processes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"benchmark children did not start ({processes} expected)")
            time.sleep(0.1)
        settings = SidecarSettings(targets=(Target(service="selfbench", pid=parent.pid),), run_id=None)
        sidecar, stop, used = Sidecar(settings=settings, store=store), threading.Event(), []

        def loop() -> None:
            start = time.thread_time()
            sidecar.run(stop)
            used.append(time.thread_time() - start)

        thread = threading.Thread(target=loop, name="sidecar-selfbench", daemon=True)
        began = time.perf_counter()
        thread.start()
        time.sleep(seconds)
        stop.set()
        thread.join()
        return used[0] / (time.perf_counter() - began)
    finally:
        os.killpg(parent.pid, signal.SIGTERM)
        parent.wait()
