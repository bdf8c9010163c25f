"""The webhook message of `benchlab ci`: which findings it carries, its Slack shape, and how a failed post ends."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from benchlab.runners import notify
from benchlab.runners.analysis.compare import Comparison, MetricResult
from benchlab.runners.analysis.slo import Check, parse_criterion

GENERATE = "/api/v1/content/generate"


def _result(endpoint: str, metric: str, verdict: str, *, gating: bool = True, change: float = 0.5) -> MetricResult:
    return MetricResult(
        endpoint=endpoint,
        method="POST" if endpoint else "",
        metric=metric,
        subject="",
        baseline=10.0,
        candidate=10.0 * (1 + change),
        change=change,
        change_kind="relative",
        ci_low=change - 0.1,
        ci_high=change + 0.1,
        threshold=0.2,
        noise_floor=None,
        p_value=0.001,
        q_value=0.002,
        verdict=verdict,
        gating=gating,
    )


def _comparison(*results: MetricResult) -> Comparison:
    return Comparison(results=results, overall="regression", method={"name": "test"}, warnings=())


def _check(passed: bool | None, criterion: str = "p95 < 100ms") -> Check:
    return Check(
        operation="Content <Generation>",
        endpoint=GENERATE,
        method="POST",
        criterion=parse_criterion(criterion),
        value=140.0,
        passed=passed,
    )


def test_only_significant_findings_of_gating_metrics_are_listed() -> None:
    outcome = notify.Outcome(
        test_type="load",
        scenario="checkout",
        comparison=_comparison(
            _result(GENERATE, "p95_ms", "regression"),
            _result(GENERATE, "p50_ms", "regression", gating=False),
            _result(GENERATE, "rps", "improvement", change=0.6),
            _result("/health", "p95_ms", "unchanged", change=0.01),
            _result("/health", "rps", "inconclusive", change=0.3),
        ),
        checks=(_check(False), _check(True, "p99 < 1000ms"), _check(None, "rps > 5")),
    )
    lines = notify.findings(outcome)
    assert [line.split(":")[0] for line in lines] == ["regression", "SLO breach", "improvement"]
    assert "p95_ms of POST /api/v1/content/generate: 10 → 15" in lines[0]
    assert lines[1] == f"SLO breach: Content <Generation>: p95 < 100ms on {GENERATE} (measured 140)"
    assert "rps of POST" in lines[2]


def test_message_is_slack_shaped_escaped_and_names_the_versions_and_exit_code() -> None:
    outcome = notify.Outcome(
        test_type="load",
        scenario="checkout",
        comparison=_comparison(_result(GENERATE, "p95_ms", "regression")),
        checks=(_check(False),),
        confirmation="confirmation (load): the regression holds on the pooled runs (1.0 runs #1, #3 against …)",
    )
    payload = notify.build(
        [outcome], candidate="1.1", baseline="1.0", exit_code=3, link="https://github.com/o/r/actions/runs/7"
    )
    assert payload is not None
    json.dumps(payload)  # JSON-serialisable as posted
    head = payload["blocks"][0]["text"]["text"]
    assert head == "*benchlab: 1.1 against 1.0: 1 regression, 1 SLO breach; exit 3; scenario checkout*"
    body = payload["blocks"][1]["text"]["text"]
    assert "• load test: regression: p95_ms" in body
    assert "Content &lt;Generation&gt;" in body and "<Generation>" not in body, "mrkdwn control characters escaped"
    assert "holds on the pooled runs" in body
    assert payload["blocks"][2]["elements"][0]["text"] == "<https://github.com/o/r/actions/runs/7|CI run and reports>"
    assert payload["text"].startswith("benchlab: 1.1 against 1.0") and payload["text"].endswith("/actions/runs/7")


def test_gate_off_and_improvements_only_are_said_in_the_headline() -> None:
    reg = notify.Outcome(
        test_type="load", scenario="s", comparison=_comparison(_result(GENERATE, "p95_ms", "regression"))
    )
    payload = notify.build([reg], candidate="1.1", baseline="1.0", exit_code=0)
    assert payload is not None and payload["text"].splitlines()[0].endswith("exit 0 (the gate is off); scenario s")
    better = notify.Outcome(
        test_type="spike", scenario="s", comparison=_comparison(_result(GENERATE, "p95_ms", "improvement", change=-0.5))
    )
    payload = notify.build([better], candidate="1.1", baseline="1.0", exit_code=0)
    assert payload is not None
    assert payload["text"].splitlines()[0] == "benchlab: 1.1 against 1.0: 1 improvement; exit 0; scenario s"
    assert [b["type"] for b in payload["blocks"]] == ["section", "section"], "no link outside GitHub Actions"


def test_nothing_significant_builds_no_message() -> None:
    quiet = notify.Outcome(
        test_type="load",
        scenario="s",
        comparison=_comparison(_result(GENERATE, "p95_ms", "unchanged", change=0.01)),
        checks=(_check(True),),
        confirmation="confirmation (load): the regression did not hold on the pooled runs",
    )
    assert notify.build([quiet], candidate="1.1", baseline="1.0", exit_code=0) is None
    assert notify.build([], candidate="1.1") is None
    no_baseline = notify.Outcome(test_type="load", scenario="s", comparison=None, checks=(_check(False),))
    payload = notify.build([no_baseline], candidate="1.1", exit_code=3)
    assert payload is not None and payload["text"].startswith("benchlab: 1.1: 1 SLO breach; exit 3")


def test_long_lists_are_cut_and_counted() -> None:
    many = tuple(_result(f"/api/e{i}", "p95_ms", "regression") for i in range(40))
    outcome = notify.Outcome(test_type="load", scenario="s", comparison=_comparison(*many))
    payload = notify.build([outcome], candidate="1.1", baseline="1.0", exit_code=3, max_lines=15)
    assert payload is not None
    body = payload["blocks"][1]["text"]["text"]
    assert body.count("• load test: regression") == 15
    assert body.endswith("… and 25 more in the report")
    assert "40 regressions" in payload["text"]
    assert len(body) <= notify.MAX_SECTION


# ------------------------------------------------------------------------------------------------ posting


@contextmanager
def _receiver(status: int = 200, *, answer: bool = True) -> Iterator[tuple[str, list[Any]]]:
    """A local HTTP receiver in a thread: its URL and the JSON bodies it got."""
    got: list[Any] = []
    hold = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if not answer:
                hold.wait(10)
                return
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/SECRET", got
    finally:
        hold.set()
        server.shutdown()
        server.server_close()


def test_post_delivers_the_json() -> None:
    with _receiver() as (url, got):
        assert notify.post(url, {"text": "hello"}) is None
    assert got == [{"text": "hello"}]


def test_failed_posts_are_one_line_without_the_secret_url() -> None:
    errors = []
    with _receiver(500) as (url, got):
        errors.append(notify.post(url, {"text": "x"}))
    assert errors[-1] == "HTTP 500 Internal Server Error" and got == [{"text": "x"}]
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/SECRET"
    errors.append(notify.post(closed, {"text": "x"}))
    assert errors[-1] is not None and "refused" in errors[-1].lower()
    with _receiver(answer=False) as (url, _):
        errors.append(notify.post(url, {"text": "x"}, timeout=0.5))
    assert errors[-1] is not None and "timed out" in errors[-1].lower()
    for line in errors:
        assert line is not None and "SECRET" not in line and "\n" not in line


def test_run_link_only_inside_github_actions() -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42"}
    assert notify.run_link(env) == "https://github.com/o/r/actions/runs/42"
    assert notify.run_link(env | {"GITHUB_RUN_ID": ""}) is None
    assert notify.run_link({}) is None


def test_send_says_what_happened_in_one_line_naming_only_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    with _receiver() as (url, got):
        assert notify.send(url, None) is None
        assert notify.send(url, {"text": "x"}) is True
    with _receiver(404) as (url, _):
        assert notify.send(url, {"text": "x"}) is False
    out, err = capsys.readouterr()
    assert got == [{"text": "x"}]
    assert out.splitlines() == [
        "webhook: nothing significant, nothing posted to 127.0.0.1",
        "webhook: findings posted to 127.0.0.1",
    ]
    assert err == "benchlab: webhook to 127.0.0.1 not delivered: HTTP 404 Not Found\n"
