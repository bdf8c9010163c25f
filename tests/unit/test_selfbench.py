"""Unit tests of the pure parts of selfbench: nginx config, figures and goals, rps and percentile maths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchlab.runners.selfbench.bench import FIGURES, parse_args
from benchlab.runners.selfbench.database import ENDPOINTS, synthetic_samples
from benchlab.runners.selfbench.gate import SLOW, compare_argv, sample_batches, slow_verdicts, spread, timed_child
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
    assert parse_args(["--only", "p8"]).only == ("P8",)
    assert parse_args([]).only == FIGURES
    with pytest.raises(SystemExit):
        parse_args(["--only", "P4"])
    with pytest.raises(SystemExit):
        parse_args(["--db-url", "sqlite:///x.db"])
    assert parse_args(["--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])


def test_seconds_and_megabytes_print_with_their_unit() -> None:
    assert show(2.4567, "seconds") == "2.46 s"
    assert show(281.6, "MB") == "282 MB"
    fig = Figure(key="P8", label="compare: wall time", value=8.91, op="<=", goal=3.0, unit="seconds")
    assert table_line(fig).split()[-6:] == ["s", "goal", "<=", "3", "s", "MISS"]
    rss = Figure(key="P8/rss", label="compare: peak RSS", value=281.6, op="<=", goal=300.0, unit="MB")
    assert table_line(rss).split()[-6:] == ["MB", "goal", "<=", "300", "MB", "PASS"]


def test_spread_is_median_and_range_never_the_best() -> None:
    assert spread([8.9, 2.0, 3.1]) == {"median": 3.1, "min": 2.0, "max": 8.9}
    assert spread([1.0, 2.0, 3.0, 10.0])["median"] == pytest.approx(2.5)
    assert spread([4.0]) == {"median": 4.0, "min": 4.0, "max": 4.0}
    with pytest.raises(MeasureError):
        spread([])


def test_sample_batches_shape_time_span_and_failures() -> None:
    batches = list(sample_batches(120_000, rps=4000.0, start=1_700_000_000.0, seed=5, batch=50_000))
    assert [len(b) for b in batches] == [50_000, 50_000, 20_000]
    rows = [r for b in batches for r in b]
    assert rows == [r for b in sample_batches(120_000, rps=4000.0, start=1_700_000_000.0, seed=5) for r in b]
    assert all(len(r) == 9 for r in rows[:1000])
    ts = np.array([r[0] for r in rows])
    assert ts.min() >= 1_700_000_000.0 and ts.max() < 1_700_000_030.0 and np.all(np.diff(ts) > -1 / 4000.0)
    assert {(r[1], r[2]) for r in rows} == {(e[0], e[1]) for e in ENDPOINTS}
    assert all(r[5] is None for r in rows if r[2] == "GET") and all(r[5] for r in rows if r[2] == "POST")
    failures = [r for r in rows if not r[7]]
    assert 0.008 < len(failures) / len(rows) < 0.012
    assert all(r[6] == 500 and r[8] and r[4] == 265 for r in failures)
    assert all(r[6] == 200 and r[8] is None for r in rows if r[7])
    assert all(isinstance(r[3], float) and r[3] > 0 for r in rows)


def test_sample_batches_slow_one_endpoint_only() -> None:
    def medians(slow: tuple[str, str] | None = None, slowdown: float = 1.0) -> dict[tuple[str, str], float]:
        batches = sample_batches(100_000, rps=5000.0, start=0.0, seed=7, slow=slow, slowdown=slowdown)
        rows = [r for b in batches for r in b]
        return {k: float(np.median([r[3] for r in rows if (r[1], r[2]) == k])) for k in {(r[1], r[2]) for r in rows}}

    base, slow = medians(), medians(slow=SLOW, slowdown=1.1)
    assert slow[SLOW] == pytest.approx(1.1 * base[SLOW], rel=1e-9)
    assert all(slow[k] == base[k] for k in base if k != SLOW)


def test_compare_argv_runs_the_console_entry_point() -> None:
    argv = compare_argv("postgresql://postgres@127.0.0.1:5432/x")
    assert argv[:4] == [sys.executable, "-m", "benchlab.runners.cli", "compare"]
    assert argv[argv.index("--db") + 1] == "postgresql://postgres@127.0.0.1:5432/x" and "--json" in argv
    assert argv[argv.index("--version") + 1] != argv[argv.index("--baseline-version") + 1]


def test_timed_child_measures_that_child_alone(tmp_path: Path) -> None:
    big = timed_child(
        [sys.executable, "-c", "b = bytearray(150_000_000); b[::4096] = b'x' * len(b[::4096])"],
        cwd=tmp_path,
        timeout=60,
    )
    small = timed_child([sys.executable, "-c", "import sys; print('hi'); sys.exit(4)"], cwd=tmp_path, timeout=60)
    assert big.code == 0 and big.rss_mb > 150
    assert small.rss_mb < 50, "neither an earlier, bigger child nor this (pytest) process may count"
    assert small.code == 4 and small.stdout == "hi\n" and 0 < small.wall_s < 30
    with pytest.raises(MeasureError):
        timed_child([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, timeout=0.5)


def test_slow_verdicts_pick_the_slowed_endpoints_latency() -> None:
    results = [
        {"endpoint": SLOW[0], "method": SLOW[1], "metric": "p95_ms", "verdict": "regression"},
        {"endpoint": SLOW[0], "method": SLOW[1], "metric": "error_rate", "verdict": "unchanged"},
        {"endpoint": "/", "method": "GET", "metric": "p95_ms", "verdict": "unchanged"},
    ]
    assert slow_verdicts({"results": results}) == {"p95_ms": "regression"}
    assert slow_verdicts({}) == {}
