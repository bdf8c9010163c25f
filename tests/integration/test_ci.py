"""`benchlab ci` end to end on the demo target and real Postgres: the gate, reports, summary, webhook, --confirm.

The candidate target (1.1) waits 60 ms more on every /api/ request (cooperative, /health is unaffected): many
times the generate endpoint's own latency, so the regression holds on a loaded machine. Runs are 4 s long and
judged in 0.25 s windows (`--window`), which gives each run the 10 steady windows a verdict needs.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, benchlab
from pair_fixture import TWO_CLASS_LOCUSTFILE, version_pair
from sqlalchemy import inspect, text
from target_fixture import Target

from benchlab.metrics.store.database import make_engine

GENERATE = "/api/v1/content/generate"


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[Target, Target]]:
    """The baseline (1.0) and a candidate (1.1) whose /api/ requests wait 60 ms more."""
    with version_pair(delay_ms=60) as pair:
        yield pair


class Receiver:
    """A webhook receiver on 127.0.0.1 in a thread; keeps the JSON bodies it was posted."""

    def __init__(self) -> None:
        got: list[Any] = []
        self.got = got

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/SECRET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def env(tmp_path: Path, pg_url: str) -> dict[str, str]:
    """The CI job's environment: every variable `benchlab ci` reads is set (empty for unset), a fresh database."""
    (tmp_path / "ci_test.py").write_text(TWO_CLASS_LOCUSTFILE)
    (tmp_path / "noslo.json").write_text("{}")
    return {
        "LOCUSTFILE": str(tmp_path / "ci_test.py"),
        "USERS": "10",
        "SPAWN_RATE": "50",
        "RUN_TIME": "4s",
        "TEST_TYPE": "baseline",
        "BENCHLAB_SCENARIO": "ci",
        "BENCHLAB_DB_URL": pg_url,
        "BENCHLAB_SLO": str(tmp_path / "noslo.json"),
        "BENCHLAB_THRESHOLDS": "",
        "BENCHLAB_REPORT_DIR": str(tmp_path / "reports"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
        "BASELINE_VERSION": "",
        "BASELINE_HOST": "",
        "FAIL_ON_REGRESSION": "false",
        "BENCHLAB_CONFIRM": "",
        "NOTIFY_WEBHOOK_URL": "",
        "GITHUB_SERVER_URL": "",  # no link to a GitHub Actions run in the message
    }


def _ci(env: dict[str, str], *args: str, **overrides: str) -> tuple[CliResult, dict[str, Any]]:
    res = benchlab("ci", "-q", "--window", "0.25", "--json", *args, env=env | overrides)
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    return res, json.loads(last) if last.startswith("{") else {}


def _runs(env: dict[str, str]) -> list[dict[str, Any]]:
    res = benchlab("runs", "--json", "--db", env["BENCHLAB_DB_URL"])
    assert res.code == 0, res.stderr
    return sorted(json.loads(res.stdout), key=lambda r: r["id"])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_slo_breach_and_regression_fail_the_job_with_reports_summary_and_webhook(
    targets: tuple[Target, Target], env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    base, slow = targets
    strict = tmp_path / "strict.json"
    strict.write_text('{"impossible": {"criteria": ["p95 < 0.001ms"], "match": "*", "scope": "scenario"}}')
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/SECRET"
    # 1.0 alone, no baseline: an SLO breach gates the job; the webhook cannot be reached, which changes nothing.
    res, out = _ci(
        env,
        APP_VERSION="1.0",
        TARGET_HOST=base.url,
        BENCHLAB_SLO=str(strict),
        FAIL_ON_REGRESSION="true",
        NOTIFY_WEBHOOK_URL=closed,
    )
    assert res.code == 3, res.stdout[-3000:] + res.stderr[-2000:]
    assert out["exit_code"] == 3 and out["notified"] is False
    assert out["test_types"][0]["baseline_runs"] == [] and out["test_types"][0]["overall"] is None
    assert "SLO breach: impossible: p95 < 0.001ms" in res.stderr
    webhook = [line for line in res.stderr.splitlines() if "webhook" in line]
    assert len(webhook) == 1 and webhook[0].startswith("benchlab: webhook to 127.0.0.1 not delivered: ")
    assert "SECRET" not in res.stderr + res.stdout

    # 1.1 against 1.0 (no SLO): the regression gates the job, and the finding is posted.
    res, out = _ci(
        env,
        APP_VERSION="1.1",
        TARGET_HOST=slow.url,
        BASELINE_VERSION="1.0",
        FAIL_ON_REGRESSION="true",
        NOTIFY_WEBHOOK_URL=receiver.url,
    )
    assert res.code == 3, res.stdout[-3000:] + res.stderr[-2000:]
    (judged,) = out["test_types"]
    assert (judged["baseline_runs"], judged["candidate_runs"], judged["overall"]) == ([1], [2], "regression")
    assert any(f"p95_ms of POST {GENERATE}" in line for line in judged["gate_failures"])
    assert f"p95_ms of POST {GENERATE}" in res.stderr

    reports = tmp_path / "reports"
    stem = "compare-1.0-vs-1.1-run-2"
    assert {p.name for p in reports.glob(f"{stem}.*")} == {f"{stem}.html", f"{stem}.md", f"{stem}.junit.xml"}
    assert {p.name for p in reports.glob("run-1.*")} == {"run-1.html", "run-1.md", "run-1.junit.xml"}
    assert "<failure" in (reports / f"{stem}.junit.xml").read_text()
    assert "regression" in (reports / f"{stem}.md").read_text()
    summary = (reports / "summary.md").read_text()
    assert summary.startswith("# benchlab ci: 1.1 against 1.0\n")
    assert "**failed**: regression or SLO breach (exit 3)" in summary and "| p95\\_ms |" in summary
    step = (tmp_path / "step_summary.md").read_text()
    assert step.count("# benchlab ci: ") == 2, "both jobs appended to GITHUB_STEP_SUMMARY"
    assert "**failed**: regression or SLO breach (exit 3)" in step.split("# benchlab ci: 1.1")[0]
    assert step.endswith(summary + "\n")

    assert out["notified"] is True and len(receiver.got) == 1
    message = receiver.got[0]
    assert message["text"].startswith("benchlab: 1.1 against 1.0: ") and "exit 3; scenario ci" in message["text"]
    body = message["blocks"][1]["text"]["text"]
    assert f"• baseline test: regression: p95_ms of POST {GENERATE}" in body
    assert all(
        line.startswith(("• baseline test: regression", "• baseline test: improvement")) for line in body.split("\n")
    )


def test_confirm_runs_the_missing_baseline_then_interleaves_and_pools(
    targets: tuple[Target, Target], env: dict[str, str], receiver: Receiver
) -> None:
    base, slow = targets
    res, out = _ci(
        env,
        "--confirm",
        "1",
        APP_VERSION="1.1",
        TARGET_HOST=slow.url,
        BASELINE_VERSION="1.0",
        BASELINE_HOST=base.url,
        FAIL_ON_REGRESSION="true",
        NOTIFY_WEBHOOK_URL=receiver.url,
    )
    assert res.code == 3, res.stdout[-3000:] + res.stderr[-2000:]
    steps = re.findall(r"^benchlab ci: (.+?): baseline test of version (\S+) against", res.stdout, re.MULTILINE)
    assert steps == [
        ("baseline first", "1.0"),
        ("candidate", "1.1"),
        ("confirmation 1 of 1", "1.0"),
        ("confirmation 1 of 1", "1.1"),
    ], "the missing baseline first, then the candidate, then B, C"
    runs = _runs(env)
    assert [(r["id"], r["app_version"], r["status"]) for r in runs] == [
        (1, "1.0", "completed"),
        (2, "1.1", "completed"),
        (3, "1.0", "completed"),
        (4, "1.1", "completed"),
    ]
    (judged,) = out["test_types"]
    assert (judged["baseline_runs"], judged["candidate_runs"]) == ([1, 3], [2, 4])
    assert judged["confirmation"].startswith("confirmation (baseline): the regression holds on the pooled runs")
    assert f"benchlab ci: {judged['confirmation']}" in res.stdout
    assert len(receiver.got) == 1 and f"• {judged['confirmation']}" in receiver.got[0]["text"], "the post says it too"
    engine = make_engine(env["BENCHLAB_DB_URL"])
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT baseline_run_ids, candidate_run_ids FROM comparisons ORDER BY id")).all()
        tags: dict[int, Any] = {i: t for i, t in conn.execute(text("SELECT id, tags FROM runs")).all()}
    engine.dispose()
    pooled = [(sorted(_json(b)), sorted(_json(c))) for b, c in stored]
    assert pooled == [([1], [2]), ([1, 3], [2, 4])], (
        "the first verdict, then exactly the original and confirmation runs"
    )
    assert {i: _json(t).get("ci") for i, t in tags.items()} == {
        1: "baseline",
        2: None,
        3: "confirm-1",
        4: "confirm-1",
    }


@pytest.mark.parametrize(
    ("args", "overrides", "message"),
    [
        ((), {"USERS": "abc"}, "users must be a number, got 'abc'"),
        ((), {"TEST_TYPE": "bogus"}, "bad test type 'bogus' (TEST_TYPE)"),
        ((), {"BENCHLAB_THRESHOLDS": "/nonexistent/thresholds.json"}, "cannot read /nonexistent/thresholds.json"),
        ((), {"BASELINE_VERSION": "0.9"}, "baseline version '0.9' for scenario ci; versions with completed runs: none"),
        (("--confirm", "1"), {"BASELINE_VERSION": "0.9"}, "--confirm (BENCHLAB_CONFIRM) reruns the baseline"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    targets: tuple[Target, Target],
    env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    overrides: dict[str, str],
    message: str,
) -> None:
    res, _ = _ci(env, *args, **({"APP_VERSION": "1.1", "TARGET_HOST": targets[0].url} | overrides))
    assert res.code == 2, res.stderr
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert "SECRET" not in res.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "step_summary.md").exists()
    engine = make_engine(env["BENCHLAB_DB_URL"])
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*) FROM runs")).scalar() if inspect(conn).has_table("runs") else 0
    engine.dispose()
    assert runs == 0, "nothing is run"
