"""Shared fixtures of the integration tests: temporary Postgres databases, the demo target, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy.exc import SQLAlchemyError
from target_fixture import Target, running_target

from benchlab.metrics.store.database import Store

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REPO = Path(__file__).resolve().parents[2]


def pg_admin(sql: str) -> None:
    """Run one statement as the Postgres superuser, outside a transaction."""
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


@contextmanager
def temp_database(prefix: str = "benchlab_test") -> Iterator[str]:
    """URL of a fresh, empty Postgres database named `prefix`_<random>, dropped (even if in use) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty Postgres database, dropped afterwards."""
    with temp_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'store' / 'bench.db'}"


@pytest.fixture(scope="session")
def demo_target() -> Iterator[Target]:
    """One demo target (version 1.0, in-process queue) shared by the session."""
    with running_target(version="1.0") as target:
        yield target


@dataclass
class CliResult:
    """A finished `benchlab` invocation."""

    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON object on the last stdout line."""
        return dict(json.loads(self.stdout.strip().splitlines()[-1]))


def benchlab(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 240) -> CliResult:
    """Run the real console entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "benchlab.runners.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """The `benchlab` helper as a fixture."""
    return benchlab


SIMPLE_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Web(FastHttpUser):
    wait_time = constant(0.01)

    @task(3)
    def health(self):
        self.client.get("/health")

    @task
    def generate(self):
        self.client.post("/api/v1/content/generate", json={"type": "simple", "topic": "bench"})
"""


@pytest.fixture
def locustfile(tmp_path: Path) -> Path:
    """A small Locust file against the demo target."""
    path = tmp_path / "simple_test.py"
    path.write_text(SIMPLE_LOCUSTFILE)
    return path


def wait_for(what: str, check: Callable[[], bool], timeout: float, alive: subprocess.Popen[str] | None = None) -> None:
    """Poll `check` until true (a readiness signal, not a fixed sleep); fail after `timeout` s or once `alive` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None and alive.poll() is not None:
            _, err = alive.communicate()
            pytest.fail(f"process exited ({alive.returncode}) before: {what}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.1)


def run_in_progress(store: Store) -> int | None:
    """Id of the running run once its first samples are stored, else None.

    Locust, and so the first sample, starts after the run's signal handlers are installed and its writer is up:
    this is the moment a test may signal the run or cut its store.
    """
    try:
        run_id = store.running_run_id()
        return run_id if run_id is not None and store.count_samples(run_id) > 0 else None
    except SQLAlchemyError:  # the SQLite file or its tables do not exist yet
        return None


@contextmanager
def started_run(
    args: list[str], store: Store, *, cwd: Path = REPO, stdout: int = subprocess.PIPE
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Start `benchlab <args>` in a subprocess; once its run row and first samples are stored, yield it and the run id.

    On the way out the process is killed if it still runs (a test that failed before it ended).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchlab.runners.cli", *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for("the run row and its first stored samples", lambda: run_in_progress(store) is not None, 90, proc)
        run_id = run_in_progress(store)
        assert run_id is not None
        yield proc, run_id
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
