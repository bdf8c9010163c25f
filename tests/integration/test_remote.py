"""Workers on other machines: `benchlab run --master` and `benchlab worker`, each in its own network namespace.

The master (with the demo target beside it) and two workers live in three namespaces on one bridge. Postgres
listens on 127.0.0.1 of the root namespace only, so a forwarder on the bridge's address stands in for the
database host; a SQLite store cannot be reached by the workers at all, and their samples go through the master.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, benchlab, wait_for
from sqlalchemy.exc import SQLAlchemyError
from target_fixture import LAUNCH, free_port
from tcpproxy import TcpProxy

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.runners.cli import build_parser, build_run_spec
from benchlab.runners.errors import BadInput
from benchlab.runners.relay import count_by_worker
from benchlab.runners.remote import worker_settings

TARGET_PORT = 8000
MASTER_PORT = 5557
ROLES = {"master": 2, "w1": 3, "w2": 4}
"""Namespace role → last octet of its address; the bridge (root namespace) is .1."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def _cannot_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces"
    probe = f"blprobe{secrets.token_hex(2)}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Lab:
    """Three namespaces on a bridge, and the processes started in them."""

    tag: str
    subnet: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"bl{self.tag}b"

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace."""
        return f"{self.subnet}.1"

    def ns(self, role: str) -> str:
        return f"bl{self.tag}{role[-1]}"

    def addr(self, role: str) -> str:
        return f"{self.subnet}.{ROLES[role]}"

    def build(self) -> None:
        """Bridge, namespaces, one veth pair each; fails the test on the first command that fails."""
        steps = [
            ["link", "add", self.bridge, "type", "bridge"],
            ["addr", "add", f"{self.gateway}/24", "dev", self.bridge],
            ["link", "set", self.bridge, "up"],
        ]
        for role in ROLES:
            ns, outer, inner = self.ns(role), f"bl{self.tag}v{role[-1]}", f"bl{self.tag}p{role[-1]}"
            steps += [
                ["netns", "add", ns],
                ["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns],
                ["link", "set", outer, "master", self.bridge],
                ["link", "set", outer, "up"],
                ["-n", ns, "addr", "add", f"{self.addr(role)}/24", "dev", inner],
                ["-n", ns, "link", "set", inner, "up"],
                ["-n", ns, "link", "set", "lo", "up"],
            ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr.strip()}"

    def spawn(self, role: str, *argv: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        """A process inside a role's namespace (`ip netns exec` execs it: its pid is the process's own)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def teardown(self) -> None:
        """Stop what was started here, then remove the namespaces (their veths go with them) and the bridge."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=30)
        for role in ROLES:
            _ip("netns", "del", self.ns(role))
        _ip("link", "del", self.bridge)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The namespaces, with the demo target running in the master's."""
    reason = _cannot_make_namespaces()
    if reason:
        pytest.skip(reason)
    lab = Lab(tag=secrets.token_hex(2), subnet=f"10.213.{random.randint(1, 254)}")
    try:
        lab.build()
        log = tmp_path_factory.mktemp("target") / "target.log"
        settings = {"version": "1.0", "bind": lab.addr("master"), "port": TARGET_PORT}
        target = lab.spawn("master", sys.executable, "-c", LAUNCH, json.dumps(settings), stderr=log.open("w"))

        def up() -> bool:
            assert target.poll() is None, f"the target exited: {log.read_text()[-2000:]}"
            return _listening(lab.addr("master"), TARGET_PORT)

        wait_for("the target in the master's namespace", up, 60)
        yield lab
    finally:
        lab.teardown()


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


class BridgeProxy(TcpProxy):
    """tcpproxy's forwarder, listening on the bridge's address instead of 127.0.0.1."""

    def __init__(self, bind: str, upstream: tuple[str, int]) -> None:
        self.bind = bind
        super().__init__(upstream)

    def listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.bind, self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()


def _master(lab: Lab, locustfile: Path, db: str, run_time: str, tmp_path: Path) -> subprocess.Popen[str]:
    return lab.spawn(
        "master",
        *(sys.executable, "-m", "benchlab.runners.cli", "run", "-f", str(locustfile)),
        *("--host", f"http://{lab.addr('master')}:{TARGET_PORT}", "-u", "6", "-r", "6", "-t", run_time),
        *("--test-type", "baseline", "--master", "--expect-workers", "2", "--master-bind", "0.0.0.0"),
        *("--master-port", str(MASTER_PORT), "--db", db, "--spool-dir", str(tmp_path / "spool")),
        *("--json", "-q", "--no-report"),
    )


def _worker(lab: Lab, role: str, locustfile: Path, tmp_path: Path) -> subprocess.Popen[str]:
    return lab.spawn(
        role,
        *(sys.executable, "-m", "benchlab.runners.cli", "worker", "-f", str(locustfile)),
        *("--master-host", lab.addr("master"), "--master-port", str(MASTER_PORT)),
        *("--spool-dir", str(tmp_path / f"spool-{role}")),
    )


def _finished(proc: subprocess.Popen[str], what: str) -> tuple[dict[str, Any], str]:
    """The JSON object a process prints last, and its stderr, once it has exited with 0."""
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, f"{what} exited with {proc.returncode}:\n{err[-3000:]}"
    return dict(json.loads(out.strip().splitlines()[-1])), err


def _label(proc: subprocess.Popen[str]) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def test_sqlite_store_takes_remote_samples_through_the_master(lab: Lab, locustfile: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store' / 'bench.db'}"
    master = _master(lab, locustfile, db, "6s", tmp_path)
    workers = [_worker(lab, role, locustfile, tmp_path) for role in ("w1", "w2")]
    summary, _ = _finished(master, "the master")
    reports = [_finished(w, f"worker {i + 1}")[0] for i, w in enumerate(workers)]
    assert summary["status"] == "completed" and "lost_workers" not in summary
    assert summary["stored_samples"] == summary["total_requests"] > 50
    assert [r["worker"] for r in reports] == [_label(w) for w in workers]
    assert all(r["flushed"] and r["run_id"] == summary["run_id"] for r in reports)
    counts = count_by_worker(Store(settings=StoreSettings(url=db)), summary["run_id"])
    assert counts == {r["worker"]: r["received"] for r in reports}, "each worker's samples, under its label"
    assert all(n > 0 for n in counts.values())


def _stored_for(store: Store, label: str) -> int:
    try:
        run_id = store.running_run_id()
        return count_by_worker(store, run_id).get(label, 0) if run_id is not None else 0
    except SQLAlchemyError:  # the tables do not exist yet
        return 0


def test_postgres_workers_write_directly_and_a_lost_one_is_named(
    lab: Lab, locustfile: Path, pg_url: str, tmp_path: Path
) -> None:
    proxy = BridgeProxy(lab.gateway, ("127.0.0.1", 5432))
    db = pg_url.replace("127.0.0.1:5432", f"{lab.gateway}:{proxy.port}")
    store = Store(settings=StoreSettings(url=pg_url))
    try:
        master = _master(lab, locustfile, db, "8s", tmp_path)
        survivor, doomed = (_worker(lab, role, locustfile, tmp_path) for role in ("w1", "w2"))
        wait_for("the second worker's samples in Postgres", lambda: _stored_for(store, _label(doomed)) > 0, 90, master)
        doomed.kill()
        summary, master_err = _finished(master, "the master")
        report, _ = _finished(survivor, "the surviving worker")
    finally:
        proxy.close()
    assert summary["status"] == "completed"
    [lost] = summary["lost_workers"]
    assert lost["worker"] == _label(doomed)
    assert f"worker {_label(doomed)} was lost" in master_err
    counts = count_by_worker(store, summary["run_id"])
    assert set(counts) == {_label(survivor), _label(doomed)}, "both wrote straight to Postgres under their labels"
    assert lost["stored_samples"] == counts[_label(doomed)] > 0
    assert report["flushed"] and report["worker"] == _label(survivor) and counts[report["worker"]] > 0
    # Nothing of the survivor is missing: Locust's count less the lost worker's equals the samples stored.
    assert summary["total_requests"] - lost["locust_requests"] == summary["stored_samples"] - lost["stored_samples"]
    assert lost["missing_samples"] == max(0, lost["locust_requests"] - lost["stored_samples"])


def test_missing_workers_fail_the_run_in_one_line(locustfile: Path, sqlite_url: str) -> None:
    res = benchlab(
        *("run", "-f", str(locustfile), "--host", "http://127.0.0.1:9", "--no-health-check", "-t", "5s"),
        *("--master", "--expect-workers", "2", "--master-port", str(free_port()), "--expect-timeout", "1"),
        *("--db", sqlite_url, "--no-report", "-q"),
    )
    assert res.code == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("benchlab:")]
    assert len(errors) == 1 and errors[0].endswith("only 0 of 2 workers connected within 1 s"), res.stderr


def _bad_input(*argv: str) -> str:
    ns = build_parser().parse_args(argv)
    with pytest.raises(BadInput) as caught:
        worker_settings(ns) if ns.command == "worker" else build_run_spec(ns)
    return str(caught.value)


def test_remote_flags_are_checked(locustfile: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHLAB_MASTER_HOST", raising=False)
    assert _bad_input("worker", "-f", str(locustfile)) == "no master: pass --master-host or set BENCHLAB_MASTER_HOST"
    assert "postgresql://" in _bad_input("worker", "-f", str(locustfile), "--master-host", "h", "--db", sqlite_url)
    run = ("run", "-f", str(locustfile), "--host", "http://127.0.0.1:9", "--master")
    assert "use one of them" in _bad_input(*run, "--workers", "2")
    assert "one test type at a time" in _bad_input(*run, "--test-type", "complete")
    with pytest.raises(BadInput, match="bad master port"):
        build_parser().parse_args([*run, "--master-port", "70000"])
    spec = build_run_spec(build_parser().parse_args([*run, "--expect-workers", "3", "--master-bind", "0.0.0.0"]))
    assert (spec.master.bind, spec.master.port, spec.master.expect_workers) == ("0.0.0.0", 5557, 3)
    assert spec.meta.workers == 3, "the run row records the workers it waits for"
    local = ("run", "-f", str(locustfile), "--host", "http://127.0.0.1:9")
    assert build_run_spec(build_parser().parse_args([*local, "--expect-workers", "0"])).master is None
    implied = build_run_spec(build_parser().parse_args([*local, "--expect-workers", "2"])).master
    assert implied is not None and implied.expect_workers == 2, "N > 0 makes the run a master (compose, Kubernetes)"
    assert "at least one worker" in _bad_input(*run, "--expect-workers", "0")
