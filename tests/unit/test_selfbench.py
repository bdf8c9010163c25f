"""Unit tests of the pure parts of selfbench: nginx config, figures and goals, rps and percentile maths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchlab.runners.selfbench import bigreport, overhead
from benchlab.runners.selfbench.bench import FIGURES, FULL, QUICK, parse_args
from benchlab.runners.selfbench.database import ENDPOINTS, synthetic_samples
from benchlab.runners.selfbench.gate import (
    SLOW,
    Child,
    child_env,
    compare_argv,
    failure,
    judge_argv,
    sample_batches,
    slow_verdicts,
    spread,
    timed_child,
)
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


def test_only_option_parses_and_rejects() -> None:
    assert parse_args(["--only", "p1, P3"]).only == ("P1", "P3")
    assert parse_args(["--only", "p8"]).only == ("P8",)
    assert parse_args([]).only == FIGURES
    assert parse_args(["--only", "p4"]).only == ("P4",)
    assert parse_args(["--only", "p6"]).only == ("P6",)
    with pytest.raises(SystemExit):
        parse_args(["--only", "P9"])
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


def test_judge_argv_selects_versions_scenario_and_extras() -> None:
    argv = judge_argv("report", "sqlite:///x.db", "--format", "html", scenario="s", versions=("b", "c"))
    assert argv[:4] == [sys.executable, "-m", "benchlab.runners.cli", "report"]
    assert argv[4:] == [
        *("--version", "c", "--baseline-version", "b", "--scenario", "s", "--test-type", "load"),
        *("--format", "html", "--db", "sqlite:///x.db"),
    ]


def test_child_env_drops_what_changes_a_judging_child(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAIL_ON_REGRESSION", "BASELINE_VERSION", "GITHUB_STEP_SUMMARY"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("KEEP_ME", "1")
    env = child_env()
    assert env["KEEP_ME"] == "1"
    assert not {"FAIL_ON_REGRESSION", "BASELINE_VERSION", "GITHUB_STEP_SUMMARY"} & env.keys()


def _child(wall_s: float, rss_mb: float, *, code: int = 0, stderr: str = "") -> Child:
    return Child(wall_s=wall_s, rss_mb=rss_mb, code=code, stdout="", stderr=stderr)


def test_failure_names_the_command_code_and_last_stderr_line() -> None:
    assert str(failure(_child(1.0, 1.0, code=2, stderr="a\nbenchlab: no runs\n"), "benchlab report")) == (
        "benchlab report exited 2: benchlab: no runs"
    )
    assert str(failure(_child(1.0, 1.0, code=1), "x")) == "x exited 1: no output"


def test_p4_argvs_judge_the_p4_runs(tmp_path: Path) -> None:
    report = bigreport.report_argv("postgresql://h/db", tmp_path)
    assert report[3] == "report" and report[report.index("--out") + 1] == str(tmp_path)
    assert report[report.index("--format") + 1] == "html"
    compare = bigreport.compare_argv("postgresql://h/db")
    assert compare[3] == "compare" and {"--json", "--no-save"} <= set(compare)
    for argv in (report, compare):
        assert argv[argv.index("--scenario") + 1] == bigreport.SCENARIO != "selfbench-p8"
        assert (argv[argv.index("--baseline-version") + 1], argv[argv.index("--version") + 1]) == bigreport.VERSIONS


def test_printed_page_is_the_last_html_line(tmp_path: Path) -> None:
    assert bigreport.printed_page("/r/a.html\n/r/b.html\n", tmp_path) == Path("/r/b.html")
    assert bigreport.printed_page("note\nreports/x.html\n", tmp_path) == tmp_path / "reports/x.html"
    with pytest.raises(MeasureError):
        bigreport.printed_page("reports/x.md\n", tmp_path)


def test_p4_figures_are_medians_with_range_and_page_size() -> None:
    reports = [_child(25.0, 900.0), _child(19.0, 1200.0), _child(21.0, 950.0)]
    compares = [_child(9.0, 500.0), _child(8.0, 480.0), _child(12.0, 520.0)]
    p4, rss, alone = bigreport.figures(reports, [3.1, 3.0, 3.2], compares, label="on 1M + 10M samples", store_s=61.0)
    assert (p4.key, p4.value, p4.details["min"], p4.details["max"], p4.passed) == ("P4", 21.0, 19.0, 25.0, False)
    assert p4.details["html_mb"] == 3.1 and p4.details["store_s"] == 61.0 and len(p4.label) <= 44
    assert (rss.key, rss.value, rss.unit, rss.passed) == ("P4/rss", 950.0, "MB", True)
    assert rss.goal == pytest.approx(1073.741824) and table_line(rss).split()[-6:] == [
        *("MB", "goal", "<=", "1,074", "MB", "PASS")
    ]
    assert (alone.key, alone.value, alone.details["rss_mb"]["median"], alone.passed) == ("P4/cmp", 9.0, 500.0, True)


def test_p4_quick_plan_is_smaller_but_as_fast() -> None:
    assert (FULL.report_samples, FULL.report_baseline, FULL.report_reps) == (10_000_000, 1_000_000, 3)
    assert QUICK.report_samples < FULL.report_samples
    assert QUICK.report_samples / QUICK.report_seconds == pytest.approx(FULL.report_samples / FULL.report_seconds)


def test_p6_figures_are_per_query_milliseconds_and_the_slowest() -> None:
    from datetime import UTC, datetime, timedelta

    from benchlab.runners.selfbench.grafana import Query
    from benchlab.runners.selfbench.panels import DASHBOARDS, figures, samples_sql, time_range

    def query(uid: str, title: str, kind: str = "panel") -> Query:
        return Query(uid, f"panel {title!r} A", kind, "benchlab-postgres", "SELECT 1", "table", title)

    timed = [
        (query("benchlab-api", "Runs in the time range"), [3.0, 1.0, 2.0], 4),
        (query("benchlab-versions", "Per endpoint: baseline vs candidate"), [1200.0, 1300.0, 900.0], 5),
        (query("benchlab-versions", "baseline", "variable"), [0.5, 0.4, 0.6], 2),
    ]
    head, *each = figures(timed, build_s=1.0)
    assert [f.key for f in each] == ["P6/a01", "P6/v01", "P6/v02"]
    assert [f.value for f in each] == [2.0, 1200.0, 0.5]
    assert [f.passed for f in each] == [True, False, True]
    assert (head.key, head.value, head.passed) == ("P6", 1200.0, False)
    assert head.label.endswith("(2/3 pass)") and head.details["build_s"] == 1.0
    assert table_line(each[0]).split()[-6:] == ["ms", "goal", "<=", "1,000", "ms", "PASS"]
    assert show(12.345, "ms") == "12.3 ms"
    now = datetime(2024, 5, 6, 12, tzinfo=UTC)
    assert time_range({"time": {"from": "now-30d"}}, now).start == now - timedelta(days=30)
    with pytest.raises(MeasureError):
        time_range({"time": {"from": "now-2y"}}, now)
    assert {p.name for p in DASHBOARDS.glob("*.json")} >= {"api-performance.json", "version-comparison.json"}
    assert "generate_series(0, %(n)s - 1)" in samples_sql() and "'/login'" in samples_sql()
