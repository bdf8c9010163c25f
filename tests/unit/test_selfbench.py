"""Unit tests of the pure parts of selfbench: nginx config, figures and goals, rps and percentile maths."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchlab.runners.selfbench.bench import FIGURES, parse_args
from benchlab.runners.selfbench.database import synthetic_samples
from benchlab.runners.selfbench.loads import Load, parse_locust_json
from benchlab.runners.selfbench.nginx import render_config
from benchlab.runners.selfbench.report import (
    Figure,
    MeasureError,
    json_line,
    meets,
    relative_errors,
    show,
    steady_rps,
    table_line,
)


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


def test_goal_comparisons() -> None:
    assert meets(0.97, ">=", 0.97)
    assert not meets(0.969, ">=", 0.97)
    assert meets(0.005, "<=", 0.005)
    assert not meets(0.0051, "<=", 0.005)
    with pytest.raises(ValueError):
        meets(1.0, "==", 1.0)


def test_values_print_by_unit() -> None:
    assert show(0.98512, "ratio") == "0.985"
    assert show(152_345.6, "rate") == "152,346"
    assert show(0.00012, "percent") == "0.012%"


def test_table_line_shows_value_goal_and_verdict() -> None:
    fig = Figure(key="P1", label="rps with collectors / bare locust", value=0.9851, op=">=", goal=0.97)
    line = table_line(fig)
    assert line.split() == [
        "P1",
        "rps",
        "with",
        "collectors",
        "/",
        "bare",
        "locust",
        "0.985",
        "goal",
        ">=",
        "0.97",
        "PASS",
    ]
    miss = Figure(key="P2", label="samples/s", value=120_000, op=">=", goal=150_000, unit="rate")
    assert table_line(miss).split()[-4:] == ["goal", ">=", "150,000", "MISS"]
    pct = Figure(key="P3", label="error", value=0.0001, op="<=", goal=0.005, unit="percent")
    assert table_line(pct).split()[-5:] == ["0.010%", "goal", "<=", "0.5%", "PASS"]


def test_json_line_holds_figures_and_reasons() -> None:
    fig = Figure(key="P7", label="workers", value=1.5, op=">=", goal=1.7, details={"users": 40})
    out = json.loads(json_line([fig], {"P5": "no sidecar"}, quick=True))
    assert out["P7"] == {"label": "workers", "value": 1.5, "op": ">=", "goal": 1.7, "pass": False, "users": 40}
    assert out["not_measured"] == {"P5": "no sidecar"}
    assert out["quick"] is True


def test_steady_rps_leaves_out_partial_first_and_last_seconds() -> None:
    assert steady_rps({100: 7, 101: 1000, 102: 1200, 103: 1100, 104: 3}) == pytest.approx(1100.0)
    assert steady_rps({100: 1, 101: 900, 103: 900, 104: 1}) == pytest.approx(600.0)  # a silent second counts
    with pytest.raises(MeasureError):
        steady_rps({100: 5, 101: 5})
    with pytest.raises(MeasureError):
        steady_rps({})


def test_relative_errors_against_numpy_linear_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    exact = {"p50_ms": 50.5, "p95_ms": 95.05, "p99_ms": 99.01}
    assert relative_errors(exact, values) == pytest.approx({"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0})
    off = relative_errors({**exact, "p95_ms": 95.05 * 1.01}, values)
    assert off["p95_ms"] == pytest.approx(0.01)
    assert max(off.values()) == pytest.approx(0.01)
    with pytest.raises(MeasureError):
        relative_errors({"p50_ms": 1.0, "p95_ms": 1.0}, values)
    with pytest.raises(MeasureError):
        relative_errors(exact, [])


def test_relative_error_of_a_zero_percentile() -> None:
    values = [0.0] * 100
    assert relative_errors({"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}, values)["p99_ms"] == 0.0
    assert relative_errors({"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 1.0}, values)["p99_ms"] == float("inf")


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
        kind="benchlab", requests=3000, wall_s=3.0, per_second={1: 10, 2: 1000, 3: 1000, 4: 5}, summary={"run_id": 9}
    )
    assert run.rps == pytest.approx(1000.0)
    assert run.brief() == {"rps": 1000.0, "requests": 3000, "wall_s": 3.0, "wall_rps": 1000.0, "run_id": 9}


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


def test_only_option_parses_and_rejects() -> None:
    assert parse_args(["--only", "p1, P3"]).only == ("P1", "P3")
    assert parse_args([]).only == FIGURES
    with pytest.raises(SystemExit):
        parse_args(["--only", "P4"])
    with pytest.raises(SystemExit):
        parse_args(["--db-url", "sqlite:///x.db"])
    assert parse_args(["--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])
