"""Unit tests of the loads selfbench measures: the nginx target, Locust's JSON, overhead figures, synthetic samples."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchlab.runners.selfbench import overhead
from benchlab.runners.selfbench.database import synthetic_samples
from benchlab.runners.selfbench.loads import Load, parse_locust_json
from benchlab.runners.selfbench.nginx import render_config
from benchlab.runners.selfbench.report import MeasureError


def test_nginx_config_has_the_required_directives(tmp_path: Path) -> None:
    conf = render_config(port=18123, root=tmp_path)
    for line in (
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        "access_log off;",
        f"error_log {tmp_path / 'error.log'};",
        f"pid {tmp_path / 'nginx.pid'};",
        "listen 127.0.0.1:18123;",
        "location = /health { return 200 'ok'; }",
        "location / { return 200 'hello'; }",
    ):
        assert line in conf
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{kind}_temp_path {tmp_path / 'temp' / kind};" in conf
    assert "/var/" not in conf


@pytest.mark.skipif(not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_config(port=18124, root=tmp_path), encoding="utf-8")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "temp" / kind).mkdir(parents=True)
    argv = [binary, "-t", "-q", "-c", str(conf), "-p", f"{tmp_path}/", "-e", str(tmp_path / "error.log")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_locust_json_totals_wall_time_and_seconds() -> None:
    entries = [
        {
            "num_requests": 10,
            "start_time": 100.25,
            "last_request_timestamp": 104.75,
            "num_reqs_per_sec": {"100": 2, "101": 3, "104": 5},
        },
        {"num_requests": 4, "start_time": 100.5, "last_request_timestamp": 103.0, "num_reqs_per_sec": {"101": 4}},
    ]
    requests, wall, counts = parse_locust_json("noise before\n" + json.dumps(entries))
    assert requests == 14
    assert wall == pytest.approx(4.5)
    assert counts == {100: 2, 101: 7, 104: 5}
    with pytest.raises(MeasureError):
        parse_locust_json("[]")
    with pytest.raises(MeasureError):
        parse_locust_json("[{oops")


def test_load_rps_and_brief() -> None:
    run = Load(
        kind="benchlab",
        requests=3000,
        wall_s=3.0,
        per_second={1: 10, 2: 1000, 3: 1000, 4: 5},
        summary={"run_id": 9},
        cpu_s=0.45,
    )
    assert run.rps == pytest.approx(1000.0)
    assert run.cpu_per_request == pytest.approx(150e-6)
    assert run.brief() == {
        "rps": 1000.0,
        "requests": 3000,
        "wall_s": 3.0,
        "wall_rps": 1000.0,
        "cpu_us_per_request": 150.0,
        "run_id": 9,
    }
    with pytest.raises(MeasureError, match="counted no requests"):
        _ = Load(kind="bare", requests=0, wall_s=1.0, per_second={}).cpu_per_request


def test_forked_workers_print_their_own_empty_json_first() -> None:
    entry = {"num_reqs_per_sec": {"7": 3}, "num_requests": 3, "last_request_timestamp": 9.0, "start_time": 7.0}
    text = "[]\n[]\n" + json.dumps([entry])
    assert parse_locust_json(text) == (3, 2.0, {7: 3})


def _round(bare: tuple[float, float], lab: dict[str, tuple[float, float]]) -> dict[str, Load]:
    """One overhead round: (cpu µs per request, rps) per layout key, as Loads of 1000 requests over 3 whole seconds."""

    def load(kind: str, cpu_us: float, rps: float) -> Load:
        per_second = {0: 1, 1: int(rps), 2: int(rps), 3: int(rps), 4: 1}
        return Load(kind=kind, requests=1000, wall_s=3.0, per_second=per_second, cpu_s=cpu_us * 1e-3)

    out = {"bare/1": load("bare", *bare), "bare/2": load("bare", bare[0], bare[1] * 1.6)}
    out.update({key: load("benchlab", *value) for key, value in lab.items()})
    return out


def test_overhead_figures_are_medians_of_per_round_ratios() -> None:
    rounds = [
        _round(
            (100, 1000),
            {"sqlite/1": (110, 950), "postgres/1": (104, 990), "sqlite/2": (120, 1520), "postgres/2": (105, 1600)},
        ),
        _round(
            (100, 1000),
            {"sqlite/1": (130, 900), "postgres/1": (102, 1000), "sqlite/2": (120, 1520), "postgres/2": (105, 1600)},
        ),
        _round(
            (200, 1000),
            {"sqlite/1": (204, 990), "postgres/1": (206, 980), "sqlite/2": (240, 1440), "postgres/2": (210, 1600)},
        ),
    ]
    figs = {f.key: f for f in overhead.figures(rounds, users=50, seconds=15)}
    cpu = figs["P1/sqlite/1"]
    assert cpu.value == pytest.approx(1.10)  # ratios 1.10, 1.30, 1.02: the median, not the best or the mean
    assert cpu.details["ratios"] == {"median": pytest.approx(1.10), "min": pytest.approx(1.02), "max": 1.3, "rounds": 3}
    assert not cpu.passed and cpu.op == "<=" and cpu.goal == 1.05
    assert "[1.020-1.300, n=3]" in cpu.label
    assert figs["P1/postgres/1"].passed
    assert figs["P1'/sqlite/1"].value == pytest.approx(0.95)
    # P7: (benchlab 2 / benchlab 1) / (locust 2 / locust 1) = (1520 / 950) / 1.6 = 1.0 in round 1
    assert figs["P7/sqlite"].value == pytest.approx(1520 / 950 / 1.6)
    assert figs["P7/postgres"].value == pytest.approx(1600 / 990 / 1.6)
    assert {k for k in figs if k.startswith("P1/")} == {"P1/sqlite/1", "P1/postgres/1", "P1/sqlite/2", "P1/postgres/2"}


def test_synthetic_samples_look_like_collector_tuples() -> None:
    rows = synthetic_samples(5000, rps=5000.0, seed=3, start=1_700_000_000.0)
    assert rows == synthetic_samples(5000, rps=5000.0, seed=3, start=1_700_000_000.0)
    assert len(rows) == 5000 and all(len(r) == 9 for r in rows)
    ts = np.array([r[0] for r in rows])
    assert ts.min() >= 1_700_000_000.0 and ts.max() < 1_700_000_001.0
    assert {r[2] for r in rows} == {"GET", "POST"}
    assert all(r[5] is None for r in rows if r[2] == "GET")
    failures = [r for r in rows if not r[7]]
    assert 0 < len(failures) < 150
    assert all(r[6] == 500 and r[8] for r in failures)
    assert all(r[6] == 200 and r[8] is None for r in rows if r[7])
    assert all(isinstance(r[3], float) and r[3] > 0 for r in rows)
