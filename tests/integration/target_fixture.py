"""Run the demo target as a real subprocess on a free 127.0.0.1 port, and talk to it over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAUNCH = (
    "import json, sys\n"
    "from benchlab.runners.settings import TargetSettings\n"
    "from benchlab.runners.demo.server import serve\n"
    "sys.exit(serve(TargetSettings(**json.loads(sys.argv[1]))))\n"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """A running demo target process."""

    proc: subprocess.Popen[str]
    port: int
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send a request; return the status and the decoded JSON body (text if not JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.call("GET", path, headers=headers)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("POST", path, body)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit code (killing it if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_target(**settings: Any) -> Target:
    """Start `serve(TargetSettings(**settings))` on a free port and wait until it listens."""
    settings.setdefault("port", free_port())
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, json.dumps(settings)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    target = Target(proc=proc, port=settings["port"])
    listening = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            target.stderr.append(line)
            if "listening on" in line:
                listening.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 30
    while not listening.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            target.stop()
            raise RuntimeError(f"target did not start (exit {proc.returncode}): {''.join(target.stderr)[-2000:]}")
    return target


@contextmanager
def running_target(**settings: Any) -> Iterator[Target]:
    """A started target, stopped afterwards; fails if it did not exit with 0 on SIGTERM."""
    target = start_target(**settings)
    try:
        yield target
    finally:
        code = target.stop()
    assert code == 0, f"target exited with {code}: {''.join(target.stderr)[-2000:]}"
