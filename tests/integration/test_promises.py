"""README promises without a test elsewhere: `runs` order, the health fallback, `--monitor-process`, a Locust
failure, and the `sidecar` command's flags and config file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, benchlab, wait_for
from sqlalchemy import text
from target_fixture import Target, free_port

from benchlab.metrics.store.database import make_engine

SHORT = ("-u", "2", "-r", "2", "-t", "3s", "--test-type", "baseline", "-q", "--no-report", "--json")


def _run(locustfile: Path, host: str, db: str, *extra: str) -> list[str]:
    return ["run", "-f", str(locustfile), "--host", host, "--db", db, *SHORT, *extra]


def _scalar(db: str, sql: str, **params: object) -> object:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


# 1. `benchlab runs`: newest first


def test_runs_lists_newest_first_in_table_and_json(locustfile: Path, demo_target: Target, sqlite_url: str) -> None:
    ids = []
    for version in ("1.0", "1.1", "1.2"):
        res = benchlab(*_run(locustfile, demo_target.url, sqlite_url, "-t", "1s", "--app-version", version))
        assert res.code == 0, res.stderr
        ids.append(res.summary["run_id"])
    assert ids == sorted(ids) and len(set(ids)) == 3
    listed = benchlab("runs", "--json", "--db", sqlite_url)
    assert listed.code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == ids[::-1]
    assert [r["app_version"] for r in rows] == ["1.2", "1.1", "1.0"]
    assert {r["status"] for r in rows} == {"completed"}
    table = benchlab("runs", "--db", sqlite_url)
    assert table.code == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["ID", "Started"]
    assert [int(line.split()[0]) for line in lines[1:]] == ids[::-1]


# 2. the pre-flight check and its fallback to GET /


class _Stub(BaseHTTPRequestHandler):
    """Answers `/` with 200, `/down` with 503, anything else with 404; records every path."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        code = 200 if self.path == "/" else 503 if self.path == "/down" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    _Stub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ROOT_LOCUSTFILE = """
from locust import HttpUser, constant, task


class Root(HttpUser):
    wait_time = constant(0.05)

    @task
    def root(self):
        self.client.get("/")
"""


def test_health_path_404_falls_back_to_root_and_the_run_proceeds(stub: str, tmp_path: Path, sqlite_url: str) -> None:
    lf = tmp_path / "root_test.py"
    lf.write_text(ROOT_LOCUSTFILE)
    res = benchlab(*_run(lf, stub, sqlite_url, "-t", "1s", "--health-path", "/nope"))
    assert res.code == 0, res.stderr
    assert _Stub.seen[:2] == ["/nope", "/"]
    assert res.summary["status"] == "completed" and res.summary["failures"] == 0
    assert res.summary["stored_samples"] == res.summary["total_requests"] > 0


def test_health_path_404_and_root_404_exits_1_and_stores_nothing(
    locustfile: Path, demo_target: Target, sqlite_url: str
) -> None:
    res = benchlab(*_run(locustfile, demo_target.url, sqlite_url, "--health-path", "/nope"))
    assert res.code == 1
    assert res.stderr == f"benchlab: target {demo_target.url} answered 404 on /nope and /\n"
    assert res.stdout == ""
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_health_path_5xx_exits_1_without_fallback(stub: str, locustfile: Path, sqlite_url: str) -> None:
    res = benchlab(*_run(locustfile, stub, sqlite_url, "--health-path", "/down"))
    assert res.code == 1
    assert res.stderr == f"benchlab: target {stub} is unhealthy: GET /down answered 503\n"
    assert _Stub.seen == ["/down"]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_nothing_listening_exits_1_with_one_line_and_stores_nothing(locustfile: Path, sqlite_url: str) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    res = benchlab(*_run(locustfile, host, sqlite_url))
    assert res.code == 1
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"benchlab: target {host} is unreachable: ")
    assert "Connection refused" in res.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


# 3. --monitor-process: resource samples of the target under the run's id


def test_monitor_process_stores_samples_of_the_target_under_the_run(
    locustfile: Path, demo_target: Target, sqlite_url: str
) -> None:
    regex = f"(?s)benchlab.runners.demo.server.*{demo_target.port}"  # the cmdline has newlines
    # The sidecar starts as a child of the run and can take seconds to come up on a loaded machine.
    res = benchlab(*_run(locustfile, demo_target.url, sqlite_url, "-t", "6s", "--monitor-process", regex))
    assert res.code == 0, res.stderr
    run_id = res.summary["run_id"]
    count = _scalar(sqlite_url, "SELECT count(*) FROM resource_samples WHERE run_id = :r", r=run_id)
    assert isinstance(count, int) and count >= 1
    assert _scalar(sqlite_url, "SELECT count(*) FROM resource_samples WHERE run_id IS NOT :r", r=run_id) == 0
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT service, process_count FROM resource_samples WHERE run_id = :r"), {"r": run_id}
        ).all()
        rss = conn.execute(text("SELECT min(rss_bytes) FROM resource_samples WHERE run_id = :r"), {"r": run_id})
        min_rss = rss.scalar_one()
    engine.dispose()
    # one service, the target alone: not the `benchlab run` process whose own argv holds the regex
    assert [tuple(r) for r in rows] == [("target", 1)]
    assert min_rss > 10_000_000


# 4. Locust failing: exit 1


PORT_LOCUSTFILE = """
import socket

from locust import HttpUser, constant, task

# a helper listener on a fixed port, opened at import: the second process to import this file cannot
_HELPER = socket.socket()
_HELPER.bind(("127.0.0.1", {port}))
_HELPER.listen()


class Web(HttpUser):
    wait_time = constant(0.05)

    @task
    def health(self):
        self.client.get("/health")
"""


def test_a_worker_that_cannot_start_is_a_locust_failure_exit_1(
    demo_target: Target, tmp_path: Path, sqlite_url: str
) -> None:
    lf = tmp_path / "port_test.py"
    lf.write_text(PORT_LOCUSTFILE.format(port=free_port()))
    res = benchlab(*_run(lf, demo_target.url, sqlite_url, "--workers", "1"))
    assert res.code == 1
    run_id = res.summary["run_id"]
    assert res.summary["status"] == "failed"
    assert res.stderr.splitlines()[-1] == f"benchlab: run {run_id} failed: only 0 of 1 workers connected"
    assert "OSError" in res.stderr  # the worker's own traceback
    assert _scalar(sqlite_url, "SELECT status FROM runs WHERE id = :r", r=run_id) == "failed"


def test_a_locustfile_raising_at_import_is_bad_input_exit_2(
    demo_target: Target, tmp_path: Path, sqlite_url: str
) -> None:
    lf = tmp_path / "boom_test.py"
    lf.write_text("raise RuntimeError('no token')\n")
    res = benchlab(*_run(lf, demo_target.url, sqlite_url))
    assert res.code == 2
    assert res.stderr == f"benchlab: error: locustfile {lf} failed to import: RuntimeError: no token\n"
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


# 5. the sidecar command


def _sidecar(demo_target: Target, sqlite_url: str, *targets: str) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "benchlab.runners.cli", "sidecar", *targets]
    argv += ["--metrics-port", str(port), "--interval", "0.2", "--run-id", "none", "--db", sqlite_url]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    try:
        wait_for("a resident-memory gauge of api", lambda: 'memory_bytes{service="api"}' in scrape(), 20, proc)
        body = scrape()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    rss = [
        line for line in body.splitlines() if line.startswith('benchlab_process_resident_memory_bytes{service="api"}')
    ]
    assert len(rss) == 1 and float(rss[0].split()[-1]) > 10_000_000
    assert 'benchlab_process_instances{service="api"} 1.0' in body.splitlines()
    stored = _scalar(sqlite_url, "SELECT count(*) FROM resource_samples WHERE service = 'api' AND run_id IS NULL")
    assert isinstance(stored, int) and stored >= 1
    assert _scalar(sqlite_url, "SELECT count(*) FROM resource_samples WHERE service != 'api'") == 0


def test_sidecar_flags_serve_metrics_and_sigterm_exits_0(demo_target: Target, sqlite_url: str) -> None:
    _sidecar(demo_target, sqlite_url, "--pid", f"api={demo_target.pid}")


def test_sidecar_config_file_names_the_same_target(demo_target: Target, sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "sidecar.json"
    config.write_text(json.dumps({"target": [{"service": "api", "pid": demo_target.pid}]}))
    _sidecar(demo_target, sqlite_url, "--config", str(config))
