"""Unit tests of selfbench's figures and goals: the pass/miss rule, printing, rps and percentile maths, its options."""

from __future__ import annotations

import json

import pytest

from benchlab.runners.selfbench.bench import FIGURES, parse_args
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
