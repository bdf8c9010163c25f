"""`benchlab report` on stored runs (SQLite and Postgres): every format, the HTML in headless Chromium, the
notebook executed, the JUnit XML parsed back, bad input, the CI summary; and the report after `benchlab run`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, benchlab
from junitparser import Failure, JUnitXml
from report_fixture import NASTY, open_in_chromium, seed_store

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store

FORMATS = "html,md,ipynb,junit,json"
EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=False).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, tuple[int, int, int]]]:
    """A store URL with a baseline, a candidate and a stress run."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else request.getfixturevalue("sqlite_url")
    store = Store(settings=StoreSettings(url=url, spool_dir=tmp_path / "spool")).open()
    try:
        ids = seed_store(store)
    finally:
        store.close()
    yield url, ids


def test_comparison_report_every_format(seeded: tuple[str, tuple[int, int, int]], tmp_path: Path) -> None:
    url, (base, cand, _) = seeded
    out = tmp_path / "reports"
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    slo = tmp_path / "slo.json"
    slo.write_text(
        '{"all": {"match": ["synthetic"], "scope": "scenario", "criteria": ["p95 < 30ms", "error_rate < 5%"]}}'
    )
    args = ("report", "--run", str(cand), "--baseline-run", str(base), "--format", FORMATS, "--out", str(out))
    res = benchlab(*args, "--slo", str(slo), "--db", url, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.code == 0, res.stderr
    paths = [Path(line) for line in res.stdout.split()]
    assert sorted(p.suffix for p in paths) == [".html", ".ipynb", ".json", ".md", ".xml"]
    assert all(p.exists() and p.parent == out for p in paths)
    assert not list(out.glob(".*tmp"))
    by = {p.suffix: p for p in paths}

    page = open_in_chromium(by[".html"])
    assert page.requests == [by[".html"].resolve().as_uri()], "a request left the page"
    assert page.console == [] and page.dialogs == []
    assert {"endpoints", "verdicts", "slo", "error-table"} <= set(page.tables)
    assert {"timeline", "distribution", "resources", "history", "capacity"} <= set(page.charts)
    assert NASTY in page.endpoint_text, "the endpoint name must render as text"
    assert page.distinct_colours > 50, "blank screenshot"
    assert not page.narrow_overflow, "the page scrolls sideways on a narrow screen"
    html = by[".html"].read_text()
    assert NASTY not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert by[".html"].stat().st_size < 3_000_000

    md = by[".md"].read_text()
    assert NASTY not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    for heading in (
        "Performance summary",
        "SLI recommendations",
        "Alert thresholds",
        "Trend over",
        "Capacity planning",
    ):
        assert f"## {heading}" in md
    assert "maximum sustainable load" in md
    assert summary.read_text().startswith("earlier step\n") and "## Performance summary" in summary.read_text()

    verdicts = json.loads(by[".json"].read_text())
    _junit_matches(by[".xml"], verdicts)


def _junit_matches(path: Path, verdicts: dict[str, object]) -> None:
    """Failures in the XML are exactly the gating regressions and failed SLO checks, with their numbers."""
    xml = JUnitXml.fromfile(str(path))
    failed = {}
    cases = 0
    for suite in xml:
        for case in suite:
            cases += 1
            for result in case.result:
                if isinstance(result, Failure):
                    failed[case.name] = result
    results = [r for r in verdicts["results"] if r["gating"]]  # type: ignore[attr-defined]
    checks = verdicts["slo"]  # type: ignore[index]
    assert cases == len(results) + len(checks)  # type: ignore[arg-type]
    expected = {
        f"{r['metric']} of {r['subject'] or (r['method'] + ' ' + r['endpoint']).strip() or 'all endpoints'}"
        for r in results
        if r["verdict"] == "regression"
    }
    regressions = {n for n in failed if failed[n].type == "regression"}
    assert regressions == expected
    assert regressions, "the 30% slower candidate must regress"
    breaches = [n for n in failed if failed[n].type == "slo_breach"]
    assert len(breaches) == sum(1 for c in checks if c["passed"] is False) == 1  # type: ignore[attr-defined]
    assert breaches[0].startswith("all: p95 < 30ms")
    for name in regressions:
        text = failed[name].text or ""
        for key in ("baseline=", "candidate=", "change=", "interval=[", "threshold="):
            assert key in text, (name, text)


def test_stress_report_has_breaking_point(tmp_path: Path, sqlite_url: str) -> None:
    url = sqlite_url
    store = Store(settings=StoreSettings(url=url, spool_dir=tmp_path / "spool")).open()
    _, _, stress = seed_store(store)
    store.close()
    res = benchlab("report", "--run", str(stress), "--format", "html,md", "--out", str(tmp_path), "--db", url)
    assert res.code == 0, res.stderr
    html = next(tmp_path.glob("run-*.html"))
    page = open_in_chromium(html)
    assert page.console == [] and len(page.requests) == 1
    assert {"timeline", "capacity"} <= set(page.charts)
    md = next(tmp_path.glob("run-*.md")).read_text()
    assert "SLO broke at" in md or "the SLO broke at" in md


def test_notebook_executes(tmp_path: Path, sqlite_url: str) -> None:
    store = Store(settings=StoreSettings(url=sqlite_url, spool_dir=tmp_path / "spool")).open()
    base, cand, _ = seed_store(store)
    store.close()
    res = benchlab(
        "report",
        "--run",
        str(cand),
        "--baseline-run",
        str(base),
        "--format",
        "ipynb",
        "--out",
        str(tmp_path),
        "--db",
        sqlite_url,
    )
    assert res.code == 0, res.stderr
    done = tmp_path / "executed.ipynb"
    # In a fresh interpreter: the test process is gevent-patched (Locust), which jupyter_client's threads dislike.
    proc = subprocess.run(
        [sys.executable, "-c", EXECUTE, res.stdout.strip(), str(done)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(done, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, "latency, throughput, resources and the comparison are plotted"
    text = "".join(o.get("text", "") for o in outputs)
    assert f"run {cand}" in text and "verdict" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--run", "999"), "run 999 not found"),
        (("--run", "1", "--format", "html,pdf"), "bad --format"),
        ((), "nothing to report"),
        (("--run", "1", "--baseline-version", "9.9"), "no completed run of version '9.9'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, sqlite_url: str, args: tuple[str, ...], message: str
) -> None:
    store = Store(settings=StoreSettings(url=sqlite_url, spool_dir=tmp_path / "spool")).open()
    seed_store(store)
    store.close()
    out = tmp_path / "out"
    res = benchlab("report", *args, "--out", str(out), "--db", sqlite_url)
    assert res.code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr
    assert not out.exists() or not any(out.iterdir())


def test_run_writes_the_html_report(demo_target: object, locustfile: Path, tmp_path: Path, sqlite_url: str) -> None:
    host = demo_target.url  # type: ignore[attr-defined]
    common = ("run", "-f", str(locustfile), "--host", host, "-u", "5", "-r", "5", "-t", "5s", "-q", "--db", sqlite_url)
    res = benchlab(*common, "--app-version", "1.0", "--report-dir", str(tmp_path / "r"), "--json", cwd=REPO)
    assert res.code == 0, res.stderr
    printed = [line.split("report: ", 1)[1] for line in res.stdout.splitlines() if line.startswith("report: ")]
    assert len(printed) == 1 and Path(printed[0]).exists() and printed[0].endswith(".html")
    assert res.summary["run_id"] > 0, "the JSON summary stays the last stdout line"
    res = benchlab(*common, "--app-version", "1.0", "--no-report", "--report-dir", str(tmp_path / "none"), cwd=REPO)
    assert res.code == 0, res.stderr
    assert "report: " not in res.stdout and not (tmp_path / "none").exists()
