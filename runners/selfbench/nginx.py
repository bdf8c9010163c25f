"""A throwaway nginx on a free 127.0.0.1 port: the target of the selfbench runs, fast enough to never be the limit."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from benchlab.runners.selfbench.report import MeasureError

_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_config(*, port: int, root: Path) -> str:
    """nginx.conf for one master and one worker that answer `/health` with `ok` and everything else with `hello`."""
    temp = "\n".join(f"    {kind}_temp_path {root / 'temp' / kind};" for kind in _TEMP_DIRS)
    return f"""daemon off;
master_process on;
worker_processes 1;
error_log {root / "error.log"};
pid {root / "nginx.pid"};
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{port};
        location = /health {{ return 200 'ok'; }}
        location / {{ return 200 'hello'; }}
    }}
}}
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_nginx() -> str:
    """Path of the nginx binary; MeasureError when it is not installed."""
    for path in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if path and os.access(path, os.X_OK):
            return path
    raise MeasureError("nginx not found (apt-get install nginx-light)")


class Nginx:
    """nginx in the foreground under a temp prefix; `start()` returns its base URL, `stop()` always ends it."""

    def __init__(self, *, root: Path, binary: str | None = None) -> None:
        self.root = root
        """Prefix directory: config, pid file, error log and temp dirs."""
        self.binary = binary
        """nginx executable (found on PATH or in /usr/sbin when None)."""
        self.host = ""
        """Base URL once started."""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 3) -> str:
        """Start on a free port (retrying if another process takes it first) and wait until /health answers."""
        binary = self.binary or find_nginx()
        for kind in _TEMP_DIRS:
            (self.root / "temp" / kind).mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx.conf"
        for _ in range(attempts):
            port = free_port()
            conf.write_text(render_config(port=port, root=self.root), encoding="utf-8")
            argv = [binary, "-c", str(conf), "-p", f"{self.root}/", "-e", str(self.root / "error.log")]
            self._proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            self.host = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self.host
            self.stop()
        raise MeasureError(f"nginx did not start: {self._error_tail()}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.host}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def _error_tail(self) -> str:
        log = self.root / "error.log"
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
        return lines[-1] if lines else "no error log"

    def stop(self) -> None:
        """Fast shutdown (SIGTERM); the process group is killed if it does not exit within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
