"""The report renderers on hand-built data: escaping, JUnit failures, the CI summary limit, SLI guidance."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from benchlab.runners.analysis.compare import Comparison, MetricResult
from benchlab.runners.analysis.slo import Check, parse_criterion
from benchlab.runners.report import guidance, html, junit, markdown, output, summary_ci
from benchlab.runners.report.data import EndpointRow, ReportData, RunInfo, Timeline
from benchlab.runners.reporting import chart_window

NASTY = "<script>alert(1)</script>"


def _result(endpoint: str, metric: str, verdict: str, *, gating: bool = True, change: float = 0.3) -> MetricResult:
    return MetricResult(
        endpoint=endpoint,
        method="GET" if endpoint else "",
        metric=metric,
        subject="",
        baseline=20.0,
        candidate=26.0,
        change=change,
        change_kind="relative",
        ci_low=change - 0.05,
        ci_high=change + 0.05,
        threshold=0.2,
        noise_floor=None,
        p_value=0.001,
        q_value=0.002,
        verdict=verdict,
        gating=gating,
    )


def _data() -> ReportData:
    info = RunInfo(
        run_id=7,
        scenario="checkout",
        test_type="load",
        app_version="1.1",
        environment="test",
        host="http://127.0.0.1:1",
        users=10,
        workers=0,
        status="completed",
        started_at="2026-01-01T00:00:00+00:00",
        duration_s=60.0,
        git_commit=None,
        benchlab_version="0.1.0",
        locustfile="x.py",
    )
    rows = tuple(
        EndpointRow(
            name=name,
            method=method,
            requests=100,
            failures=2,
            rps=10.0,
            mean_ms=12,
            p50_ms=10,
            p95_ms=41,
            p99_ms=60,
            max_ms=90,
        )
        for name, method in ((NASTY, "GET"), ("", ""))
    )
    comparison = Comparison(
        results=(
            _result(NASTY, "p95_ms", "regression"),
            _result(NASTY, "mean_ms", "regression", gating=False),
            _result("", "p95_ms", "inconclusive"),
            _result("", "rps", "unchanged", change=0.0),
        ),
        overall="regression",
        method={"name": "windowed stationary block bootstrap", "interval": "95%", "multiple_testing": "BH"},
        warnings=(),
    )
    checks = (
        Check(
            operation="all", endpoint="", method="", criterion=parse_criterion("p95 < 30ms"), value=41.0, passed=False
        ),
        Check(operation="all", endpoint="", method="", criterion=parse_criterion("rps > 5"), value=10.0, passed=True),
    )
    timeline = Timeline(
        run_id=7,
        version="1.1",
        window_s=1.0,
        t=(0.0, 1.0, 2.0),
        p50=(10, 11, 9),
        p95=(40, 42, math.nan),
        p99=(60, 61, 62),
        rps=(10, 10, 10),
        fails=(0, 1, 0),
    )
    return ReportData(
        title=f"checkout: 1.1 against 1.0 {NASTY}",
        generated_at="2026-01-01T00:01:00+00:00",
        candidate=(info,),
        baseline=(info,),
        candidate_label="1.1",
        baseline_label="1.0",
        endpoints=rows,
        comparison=comparison,
        checks=checks,
        timelines=(timeline,),
    )


def test_html_escapes_names_and_marks_verdicts_in_text() -> None:
    page = html.render(_data())
    assert NASTY not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "✗ REGRESSION" in page and "? inconclusive?" in page and "✓ ok" in page
    assert "✗ FAIL" in page and "✓ PASS" in page
    assert 'data-chart="timeline"' in page and "<svg" in page
    assert "http://" not in page.replace("http://127.0.0.1:1", "").replace("http://www.w3.org", "")


def test_markdown_escapes_names() -> None:
    text = markdown.render(_data())
    assert NASTY not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "## SLI recommendations" in text and "## Alert thresholds" in text and "## Capacity planning" in text


def test_junit_failures_are_the_gating_regressions_and_slo_breaches() -> None:
    xml = JUnitXml.fromstring(junit.render(_data()).split("\n", 1)[1])
    outcome = {}
    for suite in xml:
        for case in suite:
            kinds = [type(r).__name__ for r in case.result]
            outcome[case.name] = kinds[0] if kinds else "passed"
            for r in case.result:
                if isinstance(r, Failure) and r.type == "regression":
                    assert "baseline=20" in (r.text or "") and "interval=[0.25, 0.35]" in (r.text or "")
                    assert "threshold=0.2" in (r.text or "")
    assert outcome == {
        "all: p95 < 30ms on all endpoints": "Failure",
        "all: rps > 5 on all endpoints": "passed",
        f"p95_ms of GET {NASTY}": "Failure",
        "p95_ms of all endpoints": "Skipped",
        "rps of all endpoints": "passed",
    }


def test_ci_summary_stays_under_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("x" * 1000 + "\n")
    big = "\n".join(f"| row {i} | {'é' * 50} |" for i in range(40_000))
    assert summary_ci.append(big, {"GITHUB_STEP_SUMMARY": str(path)}) == path
    assert path.stat().st_size <= summary_ci.LIMIT
    assert path.read_text().startswith("x" * 1000) and "1 MiB" in path.read_text()
    assert summary_ci.append("small", {}) is None


def test_guidance_rounds_up_with_headroom() -> None:
    assert guidance.nice_ceil(41) == 45 and guidance.nice_ceil(0.0021) == pytest.approx(0.0025)
    row = EndpointRow(
        name="/a",
        method="GET",
        requests=100,
        failures=1,
        rps=50,
        mean_ms=30,
        p50_ms=25,
        p95_ms=80,
        p99_ms=120,
        max_ms=300,
    )
    rec = guidance.recommend(row)
    assert rec.p95_warning_ms == 100 and rec.p95_critical_ms == rec.p95_objective_ms == 120
    assert rec.error_objective == pytest.approx(0.02) and rec.error_warning < rec.error_critical
    assert rec.rps_objective == pytest.approx(40)


def test_formats_and_chart_windows() -> None:
    assert output.parse_formats("html, md,html") == ("html", "md")
    with pytest.raises(ValueError, match="bad --format"):
        output.parse_formats("html,pdf")
    assert chart_window(30) == 1 and chart_window(24 * 3600) == 144
