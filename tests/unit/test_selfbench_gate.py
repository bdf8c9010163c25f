"""Unit tests of selfbench's big-store figures: P8 (`benchlab compare` as a timed child), P4 (reports), P6 (panels)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from benchlab.runners.selfbench import bigreport
from benchlab.runners.selfbench.bench import FULL, QUICK
from benchlab.runners.selfbench.database import ENDPOINTS
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
from benchlab.runners.selfbench.report import MeasureError, show, table_line


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
