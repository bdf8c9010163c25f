"""Analyses over time on real data: trend change points across stored runs, and real stress, spike and soak runs
against the demo target analysed by `benchlab analyze`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import benchlab
from sqlalchemy import func, select
from target_fixture import running_target

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import ResourceSample
from benchlab.metrics.store.query import endpoint_stats
from benchlab.runners.analyses import TrendQuery, analyze_run, load_trend
from benchlab.runners.errors import BadInput
from benchlab.runners.report.analysis import analysis_json, trend_text

GENERATE = """
from locust import FastHttpUser, constant, task


class Gen(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def generate(self):
        self.client.post("/api/v1/content/generate", json={"type": "complex", "topic": "bench"})
"""

LIGHT = """
from locust import FastHttpUser, constant, task


class Light(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def hit(self):
        self.client.get("{path}")
"""
HEALTH = LIGHT.format(path="/health")
PACED = LIGHT.format(path="/api/v1/templates")
"""A cheap endpoint behind a fixed wait (the target's --delay-ms): its p95 is the wait plus the machine's jitter."""


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _store_runs(url: str, versions: list[str], p95_of: dict[str, float]) -> list[int]:
    """One run a day, oldest first, of 400 samples each: lognormal latencies whose p95 follows the version."""
    store = Store(settings=StoreSettings(url=url)).open()
    rng = np.random.default_rng(11)
    now = datetime.now(UTC)
    ids = []
    try:
        for i, version in enumerate(versions):
            started = now - timedelta(days=len(versions) - i, hours=1)
            meta = RunMeta(
                scenario="checkout",
                test_type="load",
                app_version=version,
                environment="ci",
                host="http://127.0.0.1:1",
                locustfile="checkout.py",
                user_classes=(),
                users=10,
                spawn_rate=10.0,
                planned_duration_s=20.0,
                workers=0,
            )
            run_id = store.start_run(meta, started_at=started)
            median = p95_of[version] / np.exp(1.645 * 0.25)
            rt = median * np.exp(rng.normal(0, 0.25, 400))
            t0 = started.timestamp()
            samples = [(t0 + k * 0.05, "/pay", "POST", float(ms), 10, 10, 200, True, None) for k, ms in enumerate(rt)]
            store.write_samples(run_id, None, samples)
            total = endpoint_stats(store, run_id)[-1]
            summary = {"p95_ms": total.p95_ms, "p50_ms": total.p50_ms, "mean_ms": total.mean_ms, "rps": 20.0}
            store.finish_run(run_id, status="completed", summary=summary)
            ids.append(run_id)
    finally:
        store.close()
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_trend_finds_the_step_when_the_runs_switch_from_1_0_to_1_1(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    ids = _store_runs(url, ["1.0"] * 7 + ["1.1"] * 7, {"1.0": 40.0, "1.1": 60.0})
    out = benchlab("trend", "--scenario", "checkout", "--days", "30", "--json", "--db", url, cwd=tmp_path)
    assert out.code == 0, out.stderr
    result = json.loads(out.stdout)
    assert [p["run_id"] for p in result["points"]] == ids and result["test_type"] == "load"
    assert [p["version"] for p in result["points"]][6:8] == ["1.0", "1.1"]
    (cp,) = result["change_points"]
    assert cp["run_id"] == ids[7] and cp["version"] == "1.1" and cp["p_value"] < 0.05
    assert cp["before"] == pytest.approx(40, rel=0.15) and cp["after"] == pytest.approx(60, rel=0.15)
    assert result["change_percent"] == pytest.approx(50, abs=20)
    assert result["method"]["min_runs"] == 6 and result["method"]["min_segment"] == 3
    if backend == "postgres":
        return
    store = Store(settings=StoreSettings(url=url)).open()
    try:
        query, by_endpoint = load_trend(store, TrendQuery(scenario="checkout", endpoint="POST /pay"))
        assert [c.run_id for c in by_endpoint.change_points] == [ids[7]]
        _, recent = load_trend(store, TrendQuery(scenario="checkout", days=4))
        assert len(recent.points) == 3 and recent.change_points == ()  # runs of 3, 2 and 1 days ago
        with pytest.raises(BadInput, match="scenarios with runs: checkout"):
            load_trend(store, TrendQuery(scenario="nope"))
    finally:
        store.close()
    text = trend_text(query, by_endpoint)
    assert f"change point at run {ids[7]} (1.1" in text and "at least 6 runs" in text


def _sidecar(pid: int, url: str) -> subprocess.Popen[bytes]:
    """`benchlab sidecar` on the target, its samples attached to the run in progress; returns once it stored one."""
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    argv = ["sidecar", "--pid", f"target={pid}", "--db", url, "--run-id", "auto", "--interval", "0.5"]
    proc = subprocess.Popen([sys.executable, "-m", "benchlab.runners.cli", *argv], stdin=subprocess.DEVNULL)
    store = Store(settings=StoreSettings(url=url)).open()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            with store.engine.connect() as conn:
                if conn.execute(select(func.count()).select_from(ResourceSample)).scalar_one():
                    break
            time.sleep(0.2)
    finally:
        store.close()
    return proc


def test_a_stress_run_ends_with_its_breaking_point_and_analyze_shows_it_again(sqlite_url: str, tmp_path: Path) -> None:
    """A target doing 20 ms of CPU work a request (and keeping 1 MiB of each) breaks a 250 ms p95 SLO.

    Its capacity X is at most about 50 rps (one core); past it a closed loop of N users queues for about N/X
    seconds, so steps of 3 users break the SLO near N = X/5, by the fifth step on a free machine, sooner on a
    busy one. The sidecar is started before the run (`--run-id auto`), so a run that breaks early has readings.
    """
    locustfile = _file(tmp_path, "generate_test.py", GENERATE)
    # 1 MiB kept a request: on a machine too busy for the target to reach a core, memory saturates instead of CPU
    # (RSS 20% above the first step's and growing), so a saturation is found however early the SLO breaks.
    with running_target(version="1.0", leak_kb=1024.0) as target:
        for _ in range(10):  # warm: the first requests of a cold process would break the SLO at step 1
            target.post("/api/v1/content/generate", {"type": "complex", "topic": "warm"})
        sidecar = _sidecar(target.pid, sqlite_url)
        try:
            out = benchlab(
                *("run", "-f", str(locustfile), "--host", target.url, "--test-type", "stress", "-u", "30"),
                *("-r", "30", "--stress-steps", "10", "-t", "30s", "--slo-p95-ms", "250"),
                *("--db", sqlite_url, "-q", "--app-version", "1.0"),
                cwd=tmp_path,
            )
        finally:
            sidecar.terminate()
            sidecar.wait(30)
    assert out.code == 0, out.stderr
    assert "breaking point (SLO p95 <= 250 ms" in out.stdout, out.stdout
    assert "SLO broke at step" in out.stdout and "p95" in out.stdout.split("SLO broke at step")[1]
    analysis = benchlab("analyze", "--run", "1", "--json", "--db", sqlite_url, cwd=tmp_path)
    assert analysis.code == 0, analysis.stderr
    bp = json.loads(analysis.stdout)
    assert bp["analysis"] == "breaking_point" and bp["slo_source"].startswith("the run's slo_break")
    assert bp["broken"] is not None and any(c.startswith("p95") for c in bp["broken"]["broke"]), bp["steps"]
    assert bp["last_ok"] is None or bp["last_ok"]["index"] < bp["broken"]["index"]
    assert all("cpu_percent target" in s["resources"] for s in bp["steps"]), bp["steps"]
    assert bp["saturation"] is not None and bp["saturation"]["subject"] == "target", bp["steps"]
    assert bp["saturation"]["resource"] in ("cpu", "memory")


def test_a_spike_run_reports_its_recovery_time(pg_url: str, tmp_path: Path) -> None:
    # 34 s leave about 15 s after the spike: recovery (about 3 s here) plus 5 rolling values in the band, with
    # room for a loaded machine's jitter (22 s left 9 s, and a busy CI run found no 5 in a row). The endpoint waits
    # 40 ms: on /health (p95 of a few ms, band +2 ms) a busy machine's jitter alone left the band after the spike.
    locustfile = _file(tmp_path, "paced_test.py", PACED)
    with running_target(version="1.0", delay_ms=40.0) as target:
        out = benchlab(
            *("run", "-f", str(locustfile), "--host", target.url, "--test-type", "spike", "-u", "3"),
            *("--spike-factor", "4", "-t", "34s", "--db", pg_url, "-q", "--app-version", "1.0"),
            cwd=tmp_path,
        )
    assert out.code == 0, out.stderr
    analysis = benchlab("analyze", "--run", "1", "--json", "--db", pg_url, cwd=tmp_path)
    assert analysis.code == 0, analysis.stderr
    spike = json.loads(analysis.stdout)
    assert spike["analysis"] == "spike" and spike["recovered"], json.dumps(spike)
    assert 0 <= spike["recovery_s"] <= spike["observed_after_s"]
    assert spike["spike_requests"] > 0 and spike["peak_p95_ms"] > 0 and spike["spike_errors"] == 0


def test_a_short_soak_flags_the_leaky_profile_and_not_1_0(tmp_path: Path) -> None:
    locustfile = _file(tmp_path, "health_test.py", HEALTH)
    urls = {v: f"sqlite:///{tmp_path / f'soak-{v}.db'}" for v in ("1.0", "leaky")}

    def soak(version: str) -> dict[str, Any]:
        with running_target(version=version) as target:
            out = benchlab(
                *("run", "-f", str(locustfile), "--host", target.url, "--test-type", "soak", "-u", "4", "-r", "4"),
                *("-t", "16s", "--monitor-pid", str(target.pid), "--db", urls[version], "-q"),
                *("--app-version", version),
                cwd=tmp_path,
            )
        assert out.code == 0, out.stderr
        store = Store(settings=StoreSettings(url=urls[version])).open()
        try:  # in process: the Python path of `benchlab analyze`, without another interpreter start
            return analysis_json(analyze_run(store, 1))
        finally:
            store.close()

    with ThreadPoolExecutor(2) as pool:
        leaky, steady = pool.map(soak, ["leaky", "1.0"])
    assert leaky["analysis"] == "drift" and leaky["leak"] is True, leaky["memory"]
    assert steady["leak"] is False, steady["memory"]
    (memory,) = leaky["memory"]
    assert memory["service"] == "target" and memory["slope"]["low"] > 0
    assert leaky["p95"] is not None and leaky["thirds"] is not None and leaky["thirds"]["results"]
