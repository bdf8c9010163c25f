"""A real Prometheus (Debian's package) started by a test on a free port, and its query API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prometheus(
    tmp_path: Path, jobs: dict[str, int], rules: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus scraping each job's 127.0.0.1 port every second; returns the process and its base URL."""
    web = free_port()
    lines = ["global: {scrape_interval: 1s, evaluation_interval: 1s}"]
    if rules is not None:
        lines.append(f"rule_files: [{json.dumps(str(rules))}]")
    lines.append("scrape_configs:")
    for job, port in jobs.items():
        lines.append(f"  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]")
    config = tmp_path / "prometheus.yml"
    config.write_text("\n".join(lines) + "\n")
    log = (tmp_path / "prometheus.log").open("wb")
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{web}",
    ]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), f"http://127.0.0.1:{web}"


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """Instant query; empty while Prometheus is not up or has no such series."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = json.loads(resp.read())
    except OSError:
        return []
    return list(body["data"]["result"]) if body.get("status") == "success" else []
