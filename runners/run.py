"""`benchlab run`: health check, one run (or a `complete` suite), exact summary, exit code."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import gevent
import locust
from locust import User
from locust.env import Environment
from locust.shape import LoadTestShape

from benchlab.metrics.collector import Observer, RequestCollector
from benchlab.metrics.exporter import REPORT_KEY, RunLabels, RunnerCollector, Tally
from benchlab.metrics.exporter import serve as serve_metrics
from benchlab.metrics.store.database import Store, StoreUnavailable, first_line
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.spool import Spool
from benchlab.metrics.store.stats import EndpointStats
from benchlab.metrics.store.writer import CollectorStats, WriterProcess, replay_spool
from benchlab.runners.analysis.summary import Totals, run_columns
from benchlab.runners.choice import FILE_SHAPE_TAG, choose, file_deadline
from benchlab.runners.errors import EXIT_FAILED, EXIT_OK, BadInput, RunFailed
from benchlab.runners.health import SKIPPED, http_hosts, preflight, recorded_host
from benchlab.runners.monitor import start_monitor
from benchlab.runners.progress import watch
from benchlab.runners.relay import master_link
from benchlab.runners.settings import RunSpec, WorkerConfig
from benchlab.runners.shape import BenchShape, make_shape
from benchlab.runners.swarm import Outcome, Swarm, load_file, worker_command

log = logging.getLogger(__name__)
T = TypeVar("T")
SUITE_ORDER = ("baseline", "load", "stress", "spike", "soak")


@dataclass
class RunResult:
    """One finished run: its totals, exact endpoint rows, exit code and what went wrong, if anything."""

    totals: Totals
    rows: list[EndpointStats]
    exit_code: int
    test_type: str = "load"
    error: str | None = None
    lost_workers: list[dict[str, Any]] = field(default_factory=list)
    """Remote workers lost during the run, with their missing samples (see `runners.relay`)."""


def execute(spec: RunSpec, users: list[type[User]] | None = None) -> list[RunResult]:
    """Validate, check the target, run and summarise each run. Raises BadInput before writing anything.

    `users` are user classes given directly (the Python API); by default they are loaded from the locustfile,
    whose own LoadTestShape, if any, drives the run when no test type was given.
    """
    file_shapes: list[LoadTestShape] = []
    if users is None:
        users, file_shapes = load_file(spec.locustfile, spec.meta.user_classes)
    spec, file_shape = with_file_shape(spec, file_shapes)
    hosts = http_hosts(users, spec.meta.host)
    if spec.health_check and not hosts:
        _say(SKIPPED)
    elif spec.health_check:
        for status in preflight(hosts, spec.health_path):
            log.info("health check: %s", status)
    try:
        store = Store(settings=spec.store).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    try:
        if spec.shape.test_type == "complete":
            results = run_suite(spec, users, store)
        else:
            results = [run_once(spec, users, store, file_shape)]
    finally:
        store.close()
    return results


def run_suite(spec: RunSpec, users: list[type[User]], store: Store) -> list[RunResult]:
    """baseline, load, stress, spike and soak as separate runs sharing one suite id; stops at the first abort."""
    suite_id = uuid.uuid4().hex[:12]
    results = []
    for test_type in SUITE_ORDER:
        meta = replace(spec.meta, test_type=test_type, suite_id=suite_id)
        one = replace(spec, meta=meta, shape=replace(spec.shape, test_type=test_type))
        results.append(run_once(one, users, store))
        if results[-1].totals.status == "aborted":
            break
    return results


def with_file_shape(spec: RunSpec, file_shapes: list[LoadTestShape]) -> tuple[RunSpec, LoadTestShape | None]:
    """Say which shape applies when the locustfile has its own; a run driven by it records the class as test type."""
    try:
        choice = choose(file_shapes, spec.shape)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if choice.note:
        _say(choice.note)
    if choice.file_shape is None:
        return spec, None
    tags = dict([FILE_SHAPE_TAG]) | spec.meta.tags
    return replace(spec, meta=replace(spec.meta, test_type=choice.test_type, tags=tags)), choice.file_shape


def _say(line: str) -> None:
    print(f"benchlab: {line}", file=sys.stderr, flush=True)


def run_once(
    spec: RunSpec, users: list[type[User]], store: Store, file_shape: LoadTestShape | None = None
) -> RunResult:
    """One run: start it in the store, drive Locust, flush every sample, finish it with exact numbers.

    `file_shape` is the locustfile's own shape when it drives the run (see `with_file_shape`), else benchlab's
    shape for the test type does.
    """
    shape: LoadTestShape = file_shape or make_shape(spec.shape)
    planned = shape.planned_duration() if isinstance(shape, BenchShape) else file_deadline(spec.shape)
    meta = replace(spec.meta, host=recorded_host(users, spec.meta.host), planned_duration_s=planned)
    run_id = store.start_run(meta)
    tally = Tally()
    sink = WriterProcess(store=spec.store, run_id=run_id, worker=None, settings=spec.collector)
    observers: list[Observer] = [tally.observe] if spec.metrics_port is not None and not spec.meta.workers else []
    collector = RequestCollector(sink=sink, run_id=run_id, settings=spec.collector, observers=observers).start()
    if isinstance(shape, BenchShape):
        shape.note = lambda kind, message, count: collector.note(kind, message, count)
    # No host given: Locust keeps each user class's own (and custom clients need none).
    env = Environment(user_classes=users, host=spec.meta.host or None, events=locust.events)
    deadline = planned if file_shape is not None or planned is None else planned + 60
    swarm = Swarm(env=env, shape=shape, deadline=deadline)
    collector.note("start", f"{spec.meta.test_type} run of {spec.meta.scenario}", 0, workers=spec.meta.workers)
    started = time.monotonic()
    with _attached(env, collector if spec.meta.workers == 0 else None), _signals(swarm.abort):
        stop_exporter = _exporter(spec, env, run_id, tally)
        stop_monitor = start_monitor(spec, run_id)
        watcher = watch(env, collector, planned=planned or 0.0, quiet=spec.output.quiet)
        try:
            outcome = _drive(spec, swarm, run_id)
        finally:
            watcher.kill()
            stop_exporter()
            stop_monitor()
    duration = time.monotonic() - started
    status = "aborted" if outcome.signal else "failed" if outcome.error else "completed"
    users_left = env.runner.user_count if env.runner else 0
    collector.note("stop", status if not outcome.error else f"{status}: {outcome.error}", users_left)
    return _finish(spec, store, run_id, collector.stop(), outcome, status, duration)


def _finish(
    spec: RunSpec, store: Store, run_id: int, stats: CollectorStats, outcome: Outcome, status: str, duration: float
) -> RunResult:
    """Replay leftovers, compute the exact summary, and close the run row; a DB outage here is retried."""
    spool = Spool(directory=spec.store.spool_dir)
    spooled = stats.spooled + sum(int(w.get("spooled", 0)) for w in outcome.workers)
    replayed = stats.replayed + sum(int(w.get("replayed", 0)) for w in outcome.workers)
    replayed += _with_retry(lambda: replay_spool(store, spool, run_id), "replay spooled samples", default=0)
    pending = sum(len(Spool.load(p).rows) for p in spool.pending(run_id))
    pending += sum(int(w.get("pending", 0)) for w in outcome.workers if w.get("remote"))  # in their own spools
    stored = _with_retry(lambda: store.count_samples(run_id), "count stored samples", default=0)
    no_rows: list[EndpointStats] = []
    rows = _with_retry(lambda: endpoint_stats(store, run_id), "compute the summary", default=no_rows)
    totals = Totals(
        run_id, status, duration, outcome.total_requests, outcome.failures, stored, spooled, replayed, pending
    )
    summary = run_columns(rows, totals)
    _with_retry(lambda: store.finish_run(run_id, status=status, summary=summary), "finish the run", default=None)
    code = 128 + outcome.signal if outcome.signal else EXIT_FAILED if outcome.error or pending else EXIT_OK
    error = f"run {run_id} failed: {outcome.error}" if outcome.error else None
    return RunResult(
        totals=totals, rows=rows, exit_code=code, test_type=spec.meta.test_type, error=error, lost_workers=outcome.lost
    )


@contextmanager
def _attached(env: Environment, collector: RequestCollector | None) -> Iterator[None]:
    """Our request hook on Locust's global events for one run only (a suite runs several in one process)."""
    if collector is not None:
        env.events.request.add_listener(collector.on_request)
    try:
        yield
    finally:
        if collector is not None:
            env.events.request.remove_listener(collector.on_request)


def _exporter(spec: RunSpec, env: Environment, run_id: int, tally: Tally) -> Callable[[], None]:
    """Serve the runner's /metrics when asked; on a master, sum the tallies the workers report."""
    if spec.metrics_port is None:
        return lambda: None
    reported: dict[str, Tally] = {}

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        if REPORT_KEY in data:
            reported[client_id] = Tally.from_snapshot(data[REPORT_KEY])

    if spec.meta.workers:
        env.events.worker_report.add_listener(on_report)
    labels = RunLabels(run_id, spec.meta.app_version, spec.meta.scenario, spec.meta.test_type)
    collector = RunnerCollector(
        tally=lambda: Tally.merged([tally, *reported.values()]),
        users=lambda: env.runner.user_count if env.runner else 0,
        labels=lambda: labels,
    )
    try:
        stop = serve_metrics(collector, spec.metrics_port, spec.metrics_bind)
    except OSError as exc:
        raise RunFailed(f"cannot serve /metrics on {spec.metrics_bind}:{spec.metrics_port}: {exc}") from None

    def stop_all() -> None:
        stop()
        if spec.meta.workers:
            env.events.worker_report.remove_listener(on_report)

    return stop_all


def _drive(spec: RunSpec, swarm: Swarm, run_id: int) -> Outcome:
    if spec.master is not None:
        return swarm.run_remote(spec.master, lambda runner: master_link(spec, runner, run_id))
    if spec.meta.workers == 0:
        return swarm.run_local()
    port = free_port()
    argv = [
        worker_command(
            WorkerConfig(
                locustfile=str(spec.locustfile),
                user_classes=spec.meta.user_classes,
                host=spec.meta.host,
                run_id=run_id,
                worker=f"w{i + 1}",
                master_port=port,
                db_url=spec.store.url,
                spool_dir=str(spec.store.spool_dir),
                tally=spec.metrics_port is not None,
            )
        )
        for i in range(spec.meta.workers)
    ]
    return swarm.run_master(argv, port)


class _signals:
    """Route SIGINT and SIGTERM to a handler inside the gevent loop for the duration of a run."""

    def __init__(self, handler: Callable[[int], None]) -> None:
        self._handler = handler
        self._installed: list[Any] = []

    def __enter__(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._installed.append(gevent.signal_handler(signum, self._handler, signum))

    def __exit__(self, *_: object) -> None:
        for handle in self._installed:
            handle.cancel()
        self._installed.clear()


def _with_retry(fn: Callable[[], T], what: str, *, default: T, attempts: int = 15, delay: float = 2.0) -> T:
    """End-of-run store work survives a short outage; a longer one is reported, never raised."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1:
                log.error("could not %s: %s", what, first_line(exc))
                return default
            log.warning("could not %s (attempt %d): %s", what, attempt + 1, first_line(exc))
            gevent.sleep(delay)
    return default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOAD_TESTS = (Path("load_tests"), Path(__file__).resolve().parent.parent / "load_tests")
"""Where a bare locustfile name is looked up: ./load_tests, then the one shipped next to the package."""


def resolve_locustfile(name: str, search: tuple[Path, ...] = LOAD_TESTS) -> Path:
    """A path as given, or a bare file name looked up in `load_tests/` folders."""
    path = Path(name)
    if path.exists() or path.parent != Path("."):
        return path
    for folder in search:
        if (folder / name).exists():
            return folder / name
    return path
