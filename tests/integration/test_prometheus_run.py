"""A real Prometheus scrapes the runner and the sidecar during a short run; resource samples carry the run id."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from promserver import PROMETHEUS, query, start_prometheus, stop_process
from sqlalchemy import select
from target_fixture import Target, free_port

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import ResourceSample


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus package is not installed")
def test_prometheus_sees_runner_and_sidecar_with_run_labels(
    locustfile: Path, demo_target: Target, pg_url: str, tmp_path: Path
) -> None:
    runner_port, sidecar_port = free_port(), free_port()
    cli = [sys.executable, "-m", "benchlab.runners.cli"]
    sidecar = subprocess.Popen(
        [
            *cli,
            "sidecar",
            "--pid",
            f"target={demo_target.pid}",
            "--interval",
            "0.5",
            "--metrics-port",
            str(sidecar_port),
            "--run-id",
            "auto",
            "--db",
            pg_url,
        ],
        cwd=REPO,
    )
    prom, base = start_prometheus(tmp_path, {"runner": runner_port, "sidecar": sidecar_port})
    run = subprocess.Popen(
        [
            *cli,
            "run",
            "-f",
            str(locustfile),
            "--host",
            demo_target.url,
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "22s",
            "--test-type",
            "baseline",
            "--app-version",
            "prom-1",
            "--scenario",
            "prom",
            "--metrics-port",
            str(runner_port),
            "--monitor-pid",
            str(demo_target.pid),
            "--db",
            pg_url,
            "--json",
            "-q",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    wanted = {
        "info": 'benchlab_run_info{job="runner",app_version="prom-1",scenario="prom",test_type="baseline"}',
        "requests": 'benchlab_requests_total{job="runner",name="/health",method="GET",status="200"}',
        "p95": "histogram_quantile(0.95, sum by (le) (rate(benchlab_request_duration_seconds_bucket[5s])))",
        "users": 'benchlab_users{job="runner"}',
        "rss": 'benchlab_process_resident_memory_bytes{job="sidecar",service="target"}',
    }
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        while run.poll() is None and len(found) < len(wanted):
            for name, promql in wanted.items():
                if name not in found and (result := query(base, promql)):
                    found[name] = result
            time.sleep(0.5)
        out, _ = run.communicate(timeout=120)
    finally:
        stop_process(run)
        stop_process(prom)
        stop_process(sidecar)
    assert run.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    log = (tmp_path / "prometheus.log").read_text()[-1500:]
    assert set(found) == set(wanted), f"missing {set(wanted) - set(found)}: {log}"
    assert found["info"][0]["metric"]["run_id"] == str(summary["run_id"])
    assert float(found["requests"][0]["value"][1]) > 0
    assert 0 < float(found["p95"][0]["value"][1]) < 5
    assert float(found["users"][0]["value"][1]) == 4
    assert float(found["rss"][0]["value"][1]) > 10e6
    store = Store(settings=StoreSettings(url=pg_url))
    with store.engine.connect() as conn:
        rows = conn.execute(select(ResourceSample.run_id, ResourceSample.ts, ResourceSample.rss_bytes)).all()
    run_row = store.get_run(summary["run_id"])
    assert run_row is not None and run_row.ended_at is not None
    during = [r for r in rows if run_row.started_at <= r.ts <= run_row.ended_at]
    assert len(during) >= 10, "both the standalone sidecar and the --monitor-pid one should sample during the run"
    settled = [r for r in during if r.ts > run_row.started_at + timedelta(seconds=2)]
    assert settled and all(r.run_id == summary["run_id"] for r in settled), [r.run_id for r in settled]
    assert all((r.rss_bytes or 0) > 0 for r in during)
