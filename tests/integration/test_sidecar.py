"""The sidecar against real processes, cgroups, SQLite and Postgres: metrics move, targets follow, rows land."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from run_meta import run_meta
from sqlalchemy import text

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.sidecar.daemon import Sidecar, SidecarSettings, run_sidecar, sidecar_cpu_benchmark
from benchlab.metrics.sidecar.exposition import ServiceReading
from benchlab.metrics.sidecar.process import ProcessSampler, Target
from benchlab.metrics.sidecar.spec import probe_from_flag
from benchlab.metrics.store.database import Store

ACTIVE_CHILD = r"""
import os, socket, sys, threading, time
port, path = int(sys.argv[1]), sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
sock = socket.create_connection(("127.0.0.1", port))
ballast = bytearray(96 << 20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
files = [open(f"{path}.{i}", "wb") for i in range(16)]
hold = threading.Event()
for _ in range(6):
    threading.Thread(target=hold.wait, daemon=True).start()
chunk = os.urandom(2 << 20)
fd = os.open(path, os.O_RDWR | os.O_CREAT)
print("active", flush=True)
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < 0.03:
        pass
    os.pwrite(fd, chunk, 0)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.pread(fd, len(chunk), 0)
    sock.sendall(chunk)
"""
LISTENER = r"""
import socket, subprocess, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
child = subprocess.Popen(["sleep", "60"])
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""
META = run_meta(
    scenario="sidecar-test", app_version="1.0", host="http://127.0.0.1", locustfile="none.py", planned_duration_s=None
)


@contextlib.contextmanager
def spawned(*args: str, **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    """A child in its own session, killed with its descendants afterwards."""
    proc = subprocess.Popen(list(args), text=True, start_new_session=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def over(sampler: ProcessSampler, seconds: float) -> ServiceReading:
    """The reading of the only service over the next `seconds`."""
    sampler.sample()
    time.sleep(seconds)
    return sampler.sample()[0]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def sink() -> Iterator[int]:
    """Port of a local listener that reads and discards whatever is sent to it."""
    server = socket.create_server(("127.0.0.1", 0))

    def drain() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            while conn.recv(1 << 20):
                pass

    threading.Thread(target=drain, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_every_metric_moves_from_idle_to_active(tmp_path: Path, sink: int) -> None:
    cmd = [sys.executable, "-c", ACTIVE_CHILD, str(sink), str(tmp_path / "blob")]
    with spawned(*cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        sampler = ProcessSampler(targets=[Target(service="child", pid=child.pid)])
        idle = over(sampler, 1.0)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "active\n"
        active = over(sampler, 1.5)
    assert idle.process_count == active.process_count == 1
    assert idle.cpu_percent is not None and active.cpu_percent is not None
    assert idle.cpu_percent < 5 and active.cpu_percent > idle.cpu_percent + 15
    assert active.cpu_percent_total is not None and active.cpu_percent_total < active.cpu_percent
    assert (active.rss_bytes or 0) > (idle.rss_bytes or 0) + (64 << 20)
    assert (active.threads or 0) >= (idle.threads or 0) + 6
    assert (active.open_fds or 0) >= (idle.open_fds or 0) + 17
    assert idle.disk_write_bps == 0 and (active.disk_write_bps or 0) > 1e6
    assert idle.disk_read_bps == 0 and (active.disk_read_bps or 0) > 1e6
    assert (active.net_tx_bps or 0) > (idle.net_tx_bps or 0) + 3e6  # loopback: the host namespace's lo
    assert (active.net_rx_bps or 0) > (idle.net_rx_bps or 0) + 3e6
    assert active.cpu_seconds > idle.cpu_seconds and active.disk_write_bytes > 1e6


def test_regex_target_follows_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    marker = f"benchlab-sidecar-test-{uuid.uuid4().hex}"
    cmd = [sys.executable, "-c", "import time; time.sleep(60)", marker]
    sampler = ProcessSampler(targets=[Target(service="worker", pattern=marker)])
    assert over(sampler, 0.0).process_count == 0
    with spawned(*cmd) as first:
        wait_for(lambda: sampler.sample()[0].process_count == 1, 5, "the first worker")
        kill(first)
    gone = sampler.sample()[0]
    assert (gone.process_count, gone.restarts) == (0, 0)
    with spawned(*cmd) as second:
        wait_for(lambda: sampler.sample()[0].process_count == 1, 5, "the second worker")
        assert sampler.sample()[0].restarts == 1
        assert second.pid > 0
    assert sum("restarted" in r.getMessage() for r in caplog.records) == 1


def test_port_target_is_the_listener_and_its_children() -> None:
    with spawned(sys.executable, "-c", LISTENER, "0", stdout=subprocess.PIPE) as first:
        assert first.stdout is not None
        port = int(first.stdout.readline())
        sampler = ProcessSampler(targets=[Target(service="web", port=port)])
        reading = sampler.sample()[0]
        assert reading.process_count == 2  # the listener and its `sleep`
        kill(first)
        assert sampler.sample()[0].process_count == 0
    with spawned(sys.executable, "-c", LISTENER, str(port), stdout=subprocess.PIPE) as second:
        assert second.stdout is not None and int(second.stdout.readline()) == port
        back = sampler.sample()[0]
        assert (back.process_count, back.restarts) == (2, 1)


def _make_cgroup(name: str) -> Path:
    root = Path("/sys/fs/cgroup")
    candidates = [root] if (root / "cgroup.controllers").exists() else [root / "unified", root / "pids"]
    problems = []
    for base in candidates:
        if (base / "cgroup.procs").exists():
            try:
                (base / name).mkdir()
                return base / name
            except OSError as exc:
                problems.append(f"{base}: {exc}")
    pytest.skip(f"cannot create a cgroup under /sys/fs/cgroup ({'; '.join(problems) or 'no cgroup fs'})")


def test_cgroup_target_is_every_process_in_it() -> None:
    group = _make_cgroup(f"benchlab_test_{uuid.uuid4().hex[:8]}")
    try:
        with spawned("sleep", "60") as a, spawned("sleep", "60") as b, spawned("sleep", "60"):
            try:
                for proc in (a, b):
                    (group / "cgroup.procs").write_text(str(proc.pid))
            except OSError as exc:
                pytest.skip(f"cannot move a process into {group}: {exc}")
            sampler = ProcessSampler(targets=[Target(service="box", cgroup=group.name)])
            reading = sampler.sample()[0]
            assert reading.process_count == 2 and reading.threads == 2
    finally:
        wait_for(lambda: not (group / "cgroup.procs").read_text().strip(), 5, "the cgroup to empty")
        group.rmdir()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rows_attach_to_the_run_in_progress(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    store = Store(settings=StoreSettings(url=url)).open()
    key = f"benchlab_test_{uuid.uuid4().hex}:jobs"
    settings = SidecarSettings(
        targets=(Target(service="tests", pid=os.getpid()),), probes=(probe_from_flag("redis", key),), interval=0.2
    )
    stop, codes = threading.Event(), []
    thread = threading.Thread(target=lambda: codes.append(run_sidecar(settings, store, stop)), daemon=True)

    def run_ids(table: str) -> list[int | None]:
        with store.engine.connect() as conn:
            return [row[0] for row in conn.execute(text(f"SELECT run_id FROM {table} ORDER BY id"))]

    thread.start()
    try:
        wait_for(lambda: len(run_ids("resource_samples")) >= 2, 10, "rows before the run")
        run_id = store.start_run(META)
        wait_for(lambda: run_ids("resource_samples").count(run_id) >= 3, 10, "rows of the run")
        store.finish_run(run_id, status="completed", summary={})
        wait_for(lambda: run_ids("resource_samples")[-2:] == [None, None], 10, "rows after the run")
    finally:
        stop.set()
        thread.join(timeout=10)
        store.close()
    assert codes == [0]
    for table in ("resource_samples", "queue_samples"):
        ids = run_ids(table)
        phases = [v for i, v in enumerate(ids) if i == 0 or v != ids[i - 1]]
        assert phases == [None, run_id, None], (table, ids)


def test_a_database_outage_keeps_rows_until_it_ends(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    store = Store(settings=StoreSettings(url=pg_url)).open()
    sidecar = Sidecar(
        settings=SidecarSettings(targets=(Target(service="tests", pid=os.getpid()),), interval=0.2), store=store
    )
    stop = threading.Event()
    thread = threading.Thread(target=sidecar.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: sidecar.snapshot().ticks >= 2, 10, "the first ticks")
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {dbname} ALLOW_CONNECTIONS false")
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        wait_for(lambda: sidecar.snapshot().pending_rows >= 5, 10, "rows held during the outage")
        assert thread.is_alive() and sidecar.snapshot().store_errors >= 1
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {dbname} ALLOW_CONNECTIONS true")
        wait_for(lambda: sidecar.snapshot().pending_rows == 0, 10, "the backlog to be written")
    finally:
        stop.set()
        thread.join(timeout=10)
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {dbname} ALLOW_CONNECTIONS true")
        admin.close()
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM resource_samples")).scalar_one()
    store.close()
    assert stored == sidecar.snapshot().ticks  # one service: one row per tick, none lost
    assert sum("store write failed" in r.getMessage() for r in caplog.records) == 1
    assert sidecar.snapshot().dropped_rows == 0


def test_the_cpu_benchmark_measures_the_sampling_loop() -> None:
    fraction = sidecar_cpu_benchmark(processes=10, seconds=2.0)
    assert 0.0 < fraction < 0.25


SIDECAR_PROCESS = r"""
import logging, os, sys
from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.sidecar.daemon import SidecarSettings, run_sidecar
from benchlab.metrics.store.database import Store
logging.basicConfig(level=logging.INFO)
store = Store(settings=StoreSettings(url=sys.argv[1])).open()
settings = SidecarSettings(targets=(Target(service="self", pid=os.getpid()),), interval=0.2)
code = run_sidecar(settings, store)
store.close()
print(f"exit {code}", flush=True)
sys.exit(code)
"""


def test_sigterm_stops_the_sidecar_after_a_last_flush(sqlite_url: str) -> None:
    store = Store(settings=StoreSettings(url=sqlite_url)).open()

    def stored() -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM resource_samples")).scalar_one())

    with spawned(
        sys.executable, "-c", SIDECAR_PROCESS, sqlite_url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        wait_for(lambda: stored() >= 3, 20, "rows from the sidecar process")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.strip() == "exit 0"
    assert stored() >= 3 and "sidecar watching 1 targets" in err
    store.close()
