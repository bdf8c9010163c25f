"""`benchlab run` and the judging flags at their limits: exact messages, every RunSpec and JudgeSettings field."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from cli_parse import Parsed, parser, stop

from benchlab.runners import cli, verdicts
from benchlab.runners.analysis.slo import DEFAULT_SLOS
from benchlab.runners.analysis.threshold import Thresholds
from benchlab.runners.errors import BadInput
from benchlab.runners.settings import JudgeSettings

GOOD = ["-f", "x.py", "--host", "http://127.0.0.1:8000", "-t", "2s", "--db", "sqlite:///never/b.db"]


@pytest.fixture
def parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """`benchlab run ARGS` up to the point the run would start: returns its RunSpec."""
    return parser(monkeypatch, tmp_path)


def error_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line.removeprefix("benchlab: error: ")


# -- run ----------------------------------------------------------------------------------------------------------


def test_spec_fields_without_optional_flags(parse: Any) -> None:
    spec = parse("-f", "x.py", "-t", "1s")
    assert spec.meta.host == "" and spec.meta.locustfile == "x.py" and spec.meta.scenario == "x"
    assert spec.meta.planned_duration_s == 1.0 and spec.meta.users == 10 and spec.meta.spawn_rate == 1.0
    shape = spec.shape
    assert (shape.test_type, shape.test_type_given, shape.run_time_given, shape.run_time) == ("load", False, True, 1.0)
    assert (shape.users, shape.spawn_rate, shape.stress_steps, shape.spike_factor) == (10, 1.0, 5, 5.0)
    assert (shape.slo_p95_ms, shape.slo_error_rate) == (1000.0, 0.05)
    assert spec.metrics_bind == "127.0.0.1" and spec.master is None
    assert spec.output.report_dir == Path("results/reports") and spec.output.results_dir is None
    assert isinstance(spec.judge, JudgeSettings) and spec.judge.runs == 1
    assert spec.judge.thresholds == Thresholds() and spec.judge.slos is DEFAULT_SLOS
    given = parse("-f", "x.py", "--test-type", "spike")
    assert (given.shape.test_type, given.shape.test_type_given, given.shape.run_time_given) == ("spike", True, False)
    assert given.shape.run_time == 300.0


def test_shape_and_output_flags_reach_the_spec(parse: Any) -> None:
    spec = parse(*GOOD, "-u", "7", "-r", "2.5", "-v")
    assert (spec.shape.users, spec.shape.spawn_rate, spec.output.verbose, spec.output.quiet) == (7, 2.5, True, False)


def test_calibrate_builds_the_same_spec_without_results(parse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchlab.runners import calibrate

    monkeypatch.setattr(calibrate, "calibrate", stop)
    with pytest.raises(Parsed) as parsed:
        cli.main(["calibrate", *GOOD, "--runs", "2", "--no-report"])
    spec = parsed.value.spec
    assert spec.output.results_dir is None and spec.output.report_dir is None and spec.meta.planned_duration_s == 2.0


def test_report_results_metrics_and_baseline_runs_flags(parse: Any) -> None:
    spec = parse(
        *GOOD, "--report-dir", "rep", "--results-dir", "res", "--metrics-bind", "0.0.0.0", "--baseline-runs", "3"
    )
    assert (spec.output.report_dir, spec.output.results_dir) == (Path("rep"), Path("res"))
    assert spec.metrics_bind == "0.0.0.0" and spec.judge.runs == 3
    assert parse(*GOOD, "--no-report", "--report-dir", "rep").output.report_dir is None


def test_master_settings_set_the_expected_workers(parse: Any) -> None:
    spec = parse(*GOOD, "--master", "--expect-workers", "3")
    assert spec.master is not None and spec.master.expect_workers == 3 and spec.meta.workers == 3
    assert parse(*GOOD, "--workers", "2").meta.workers == 2


def test_shape_limits_are_checked_except_for_the_complete_suite(parse: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert error_of(["run", *GOOD, "--spike-factor", "1"], capsys) == "shape setting spike_factor must be > 1, got 1.0"
    assert parse(*GOOD, "--spike-factor", "1", "--test-type", "complete").shape.spike_factor == 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-f", ""], "no locustfile: pass -f/--locustfile"),
        (["-t", "0s"], "bad run time '0s': must be > 0"),
        (["-t", "soon"], "bad run time 'soon': use Locust syntax such as 30s, 5m, 1h30m"),
        (["-u", "0"], "argument -u/--users: users must be > 0, got '0'"),
        (["--workers", "-1"], "argument --workers: workers must be >= 0, got '-1'"),
        (["--workers", "x"], "argument --workers: workers must be a number, got 'x'"),
        (["--tag", "k"], "argument --tag: bad tag 'k': expected key=value"),
        (["--host", "ftp://h"], "argument --host: bad host URL 'ftp://h': expected http(s)://host[:port]"),
    ],
)
def test_exact_messages(extra: list[str], message: str, parse: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert error_of(["run", *GOOD, *extra], capsys) == message


def test_bad_test_type_names_every_choice(parse: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("TEST_TYPE", "chaos")
    assert error_of(["run", *GOOD], capsys) == (
        "bad test type 'chaos' (TEST_TYPE): expected one of baseline, load, stress, spike, soak, complete"
    )


def test_validators_accept_their_limits(parse: Any) -> None:
    spec = parse(*GOOD, "--workers", "0", "--slo-error-rate", "0", "-r", "0.01", "--host", "https://h.example:1/")
    assert (spec.meta.workers, spec.shape.slo_error_rate, spec.meta.spawn_rate) == (0, 0.0, 0.01)
    assert spec.meta.host == "https://h.example:1"
    assert parse(*GOOD, "--host", "http://h//").meta.host == "http://h"
    assert parse(*GOOD, "--host", "http://BOX/").meta.host == "http://BOX"
    assert parse(*GOOD, "--host", "").meta.host == ""
    assert parse(*GOOD, "--tag", "k=").meta.tags == {"k": ""}


def test_positive_converter_directly() -> None:
    half = cli._positive(float, "ratio", zero_ok=True)
    assert half("0") == 0.0 and half("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError, match=r"^ratio must be >= 0, got '-1'$"):
        half("-1")
    strict = cli._positive(int, "n")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^n must be > 0, got '0'$"):
        strict("0")
    assert strict("1") == 1


# -- judging flags --------------------------------------------------------------------------------------------------


def judge(*args: str, for_run: bool = False) -> JudgeSettings:
    p = argparse.ArgumentParser()
    verdicts.add_judge_flags(p, for_run=for_run)
    return verdicts.judge_settings(p.parse_args(list(args)))


def test_judge_settings_carry_every_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIL_ON_REGRESSION", raising=False)
    monkeypatch.delenv("BASELINE_VERSION", raising=False)
    th, slo = tmp_path / "th.json", tmp_path / "slo.json"
    th.write_text('{"response_time": 0.3} // ünïcode comment', encoding="utf-8")
    slo.write_text('{"checkout": ["p95 < 300ms"]}', encoding="utf-8")
    s = judge(
        "--baseline-version", "1.0", "--thresholds", str(th), "--slo", str(slo), "--fail-on-regression",
        "--fail-on-inconclusive", "--replicates", "100", "--window", "0.5", "--warmup", "0", "--no-save",
    )  # fmt: skip
    assert (s.baseline_version, s.thresholds.response_time, s.window_s, s.warmup, s.replicates) == (
        "1.0",
        0.3,
        0.5,
        0.0,
        100,
    )
    assert [o.name for o in s.slos.operations] == ["checkout"]
    assert (s.save, s.fail_on_regression, s.fail_on_inconclusive) == (False, True, True)
    d = judge()
    assert (d.baseline_version, d.thresholds, d.slos, d.window_s, d.warmup, d.replicates) == (
        None,
        Thresholds(),
        DEFAULT_SLOS,
        1.0,
        0.1,
        2000,
    )
    assert (d.save, d.fail_on_regression, d.fail_on_inconclusive) == (True, False, False)
    assert judge("--warmup", "0.89").warmup == 0.89


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicates", "99"], "--replicates must be >= 100, got 99"),
        (["--window", "0"], "--window must be > 0, got 0.0"),
        (["--window", "-1"], "--window must be > 0, got -1.0"),
        (["--warmup", "0.9"], "--warmup must be a fraction in [0, 0.9), got 0.9"),
        (["--warmup", "-0.1"], "--warmup must be a fraction in [0, 0.9), got -0.1"),
    ],
)
def test_judge_settings_refuse_out_of_range_values(args: list[str], message: str) -> None:
    with pytest.raises(BadInput) as e:
        judge(*args)
    assert str(e.value) == message


def test_bad_files_name_themselves(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(BadInput) as e:
        judge("--thresholds", str(missing))
    assert str(e.value) == f"cannot read {missing}: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_text('{"latency": 1}', encoding="utf-8")
    with pytest.raises(BadInput) as e:
        judge("--thresholds", str(bad))
    assert str(e.value).startswith('bad.json: unknown key "latency"')
    bad.write_text('{"x": ["p95 <"]}', encoding="utf-8")
    with pytest.raises(BadInput) as e:
        judge("--slo", str(bad))
    assert str(e.value).startswith('bad.json: operation "x": bad criterion "p95 <"')
    with pytest.raises(BadInput, match=r"^cannot read "):
        judge("--slo", str(missing))


@pytest.mark.parametrize(("value", "on"), [("TRUE", True), (" yes ", True), ("On", True), ("1", True), ("0", False),
                                           ("no", False), ("", False), (None, False)])  # fmt: skip
def test_fail_on_regression_from_the_environment(value: str | None, on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("FAIL_ON_REGRESSION", raising=False)
    else:
        monkeypatch.setenv("FAIL_ON_REGRESSION", value)
    assert judge(for_run=True).fail_on_regression is on
