"""Verdicts end to end on the demo target: A/A pairs, a slower version, the gate, SLO breaches, bad baselines.

Runs go through `benchlab run` into real SQLite and Postgres stores. The candidate target waits 30 ms more
on every /api/ request (a cooperative sleep, so /health is unaffected): several times the generate endpoint's
own latency, which stays far above the noise of a loaded machine. Health and generate requests come from
separate user classes, so the slower endpoint does not slow the other one's closed loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, benchlab, temp_database
from pair_fixture import TWO_CLASS_LOCUSTFILE, version_pair
from target_fixture import Target

GENERATE = "/api/v1/content/generate"
NO_SLO = "{}"


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[Target, Target]]:
    """The baseline (1.0) and a candidate whose /api/ requests wait 30 ms more (not /health), both up for the module."""
    with version_pair(delay_ms=30) as pair:
        yield pair


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store URL per backend, shared by the module's tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('verdict') / 'bench.db'}"
        return
    with temp_database("benchlab_verdict") as url:
        yield url


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    out = {"locustfile": folder / "simple_test.py", "noslo": folder / "noslo.json", "strict": folder / "strict.json"}
    out["locustfile"].write_text(TWO_CLASS_LOCUSTFILE)
    out["noslo"].write_text(NO_SLO)
    out["strict"].write_text('{"impossible": {"criteria": ["p95 < 0.001ms"], "match": "*", "scope": "scenario"}}')
    return out


def _run(files: dict[str, Path], db: str, host: str, version: str, *extra: str) -> CliResult:
    return benchlab(
        "run", "-f", str(files["locustfile"]), "--host", host, "-u", "6", "-r", "6", "-t", "14s",
        "--test-type", "baseline", "--scenario", "verdict", "--app-version", version, "--db", db, "-q",
        "--slo", str(files["noslo"]), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def history(targets: tuple[Target, Target], store: str, files: dict[str, Path]) -> dict[str, Any]:
    """Two 1.0 runs (an A/A pair), then a gated 1.1 run against 1.0."""
    base, slow = targets
    for _ in range(2):
        res = _run(files, store, base.url, "1.0", "--monitor-pid", str(base.pid))
        assert res.code == 0, res.stderr[-2000:]
    gated = _run(
        files,
        store,
        slow.url,
        "1.1",
        "--baseline-version",
        "1.0",
        "--fail-on-regression",
        "--monitor-pid",
        str(slow.pid),
    )
    return {"db": store, "gated": gated}


def _compare(db: str, *args: str) -> tuple[CliResult, dict[str, Any]]:
    res = benchlab("compare", "--db", db, "--json", *args)
    return res, json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}


def _regressed(payload: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["endpoint"], r["metric"]) for r in payload["results"] if r["verdict"] == "regression" and r["gating"]}


def test_aa_pair_of_the_same_version_raises_no_regression(history: dict[str, Any], files: dict[str, Path]) -> None:
    res, payload = _compare(
        history["db"], "--run", "2", "--baseline-run", "1", "--fail-on-regression", "--slo", str(files["noslo"])
    )
    assert res.code == 0, res.stderr
    assert _regressed(payload) == set()
    assert payload["method"]["name"] == "windowed stationary block bootstrap"
    assert payload["comparison_id"] is not None


def test_slower_endpoint_regresses_alone_and_gates_the_run(history: dict[str, Any]) -> None:
    gated = history["gated"]
    assert gated.code == 3, gated.stdout[-3000:] + gated.stderr[-2000:]
    assert f"p95_ms of POST {GENERATE}" in gated.stderr
    assert "/health" not in gated.stderr


def test_compare_finds_the_regression_on_that_endpoint_only(history: dict[str, Any], files: dict[str, Path]) -> None:
    args = ("--version", "1.1", "--baseline-version", "1.0", "--runs", "2", "--slo", str(files["noslo"]))
    res, payload = _compare(history["db"], *args, "--fail-on-regression")
    assert res.code == 3, res.stderr
    endpoints = {e for e, _ in _regressed(payload)}
    assert GENERATE in endpoints and "/health" not in endpoints
    assert endpoints <= {GENERATE, ""}
    generate = next(r for r in payload["results"] if r["endpoint"] == GENERATE and r["metric"] == "p95_ms")
    assert generate["change"] > 0.2 and generate["ci_low"] > 0 and generate["q_value"] < 0.05
    resources = {(r["metric"], r["subject"]): r for r in payload["results"] if r["subject"]}
    assert set(resources) == {("cpu_percent", "target"), ("rss_bytes", "target")}, "the sidecar's readings are judged"
    assert resources[("rss_bytes", "target")]["baseline"] > 10 * 2**20
    assert resources[("cpu_percent", "target")]["threshold"] == 0.15
    assert benchlab("compare", "--db", history["db"], *args).code == 0, "without the gate the exit code stays 0"


def test_slo_breach_exits_3_without_any_baseline(
    targets: tuple[Target, Target], store: str, files: dict[str, Path]
) -> None:
    res = benchlab(
        "run", "-f", str(files["locustfile"]), "--host", targets[0].url, "-u", "2", "-r", "2", "-t", "2s",
        "--scenario", "slo-only", "--db", store, "-q", "--slo", str(files["strict"]), "--fail-on-regression",
    )  # fmt: skip
    assert res.code == 3, res.stderr
    assert "SLO breach: impossible: p95 < 0.001ms" in res.stderr


def test_unknown_baseline_version_exits_2_and_lists_versions(
    history: dict[str, Any], targets: tuple[Target, Target], files: dict[str, Path]
) -> None:
    before = json.loads(benchlab("runs", "--json", "--db", history["db"]).stdout)
    res = _run(files, history["db"], targets[0].url, "1.2", "--baseline-version", "0.9", "--fail-on-regression")
    assert res.code == 2
    assert res.stderr.count("\n") == 1 and "0.9" in res.stderr and "1.0, 1.1" in res.stderr
    assert json.loads(benchlab("runs", "--json", "--db", history["db"]).stdout) == before, "nothing is written"
    res, _ = _compare(history["db"], "--version", "1.1", "--baseline-version", "0.9")
    assert res.code == 2 and "1.0, 1.1" in res.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"response_time": 0.2,,}', "thresholds.json line 1"),
        ('{\n  "respone_time": 0.2\n}', 'unknown key "respone_time"'),
    ],
)
def test_bad_thresholds_file_exits_2_naming_the_problem(
    history: dict[str, Any], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text(content)
    res, _ = _compare(history["db"], "--version", "1.1", "--baseline-version", "1.0", "--thresholds", str(path))
    assert res.code == 2 and message in res.stderr and res.stderr.count("\n") == 1


def test_stored_comparison_rows_match_the_printed_verdicts(history: dict[str, Any]) -> None:
    from sqlalchemy import text

    from benchlab.metrics.store.database import make_engine

    _, payload = _compare(history["db"], "--version", "1.1", "--baseline-version", "1.0")
    engine = make_engine(history["db"])
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT endpoint, metric, verdict, change FROM comparison_results WHERE comparison_id = :id"),
            {"id": payload["comparison_id"]},
        ).all()
    engine.dispose()
    stored = {(e, m): (v, c) for e, m, v, c in rows}
    printed = {(r["endpoint"], r["metric"]): (r["verdict"], r["change"]) for r in payload["results"]}
    assert stored.keys() == printed.keys()
    for key, (verdict, change) in printed.items():
        assert stored[key][0] == verdict
        assert stored[key][1] == pytest.approx(change, nan_ok=True)


def test_calibration_floor_is_stored_shown_and_widens_single_runs(
    targets: tuple[Target, Target], store: str, files: dict[str, Path]
) -> None:
    if not store.startswith("sqlite"):
        pytest.skip("calibration is store-independent; its rows go through the same verdict tables (SQLite here)")
    common = ("-f", str(files["locustfile"]), "-u", "4", "-r", "4", "-t", "13s", "--test-type", "baseline")
    common += ("--scenario", "calibrated", "--db", store, "-q", "--slo", str(files["noslo"]))
    res = benchlab("calibrate", "--version", "1.0", "--runs", "2", "--host", targets[0].url, *common)
    assert res.code == 0, res.stderr[-2000:]
    assert "noise floor of 1.0: run-to-run spread (1 sd) over 2 A/A runs" in res.stdout
    floor_line = next(line for line in res.stdout.splitlines() if line.startswith("GET /health") and "p95_ms" in line)
    assert floor_line.rstrip().endswith("%")
    res = benchlab("run", "--host", targets[1].url, "--app-version", "1.1", *common)
    assert res.code == 0, res.stderr[-2000:]
    cmp, payload = _compare(store, "--version", "1.1", "--baseline-version", "1.0", "--scenario", "calibrated")
    assert cmp.code == 0, cmp.stderr
    health = next(r for r in payload["results"] if r["endpoint"] == "/health" and r["metric"] == "p95_ms")
    assert health["noise_floor"] is not None and health["noise_floor"] > 0
    assert "noise floor" in health["note"]
    assert payload["method"]["runs"]["baseline"] == [max(payload["method"]["runs"]["baseline"])], "latest run only"
