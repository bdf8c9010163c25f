"""End-of-run summary: JSON keys, run columns and the table."""

from __future__ import annotations

from benchlab.metrics.store.stats import EndpointStats
from benchlab.runners.analysis.summary import Totals, run_columns
from benchlab.runners.report.summary import as_json
from benchlab.runners.report.table import table

ROWS = [
    EndpointStats("/a", "GET", 90, 9, 10.0, 8.0, 20.0, 30.0, 1.0, 40.0, 900, 0, 0.0, 9.0, {"200": 81, "500": 9}),
    EndpointStats("", "", 90, 9, 10.0, 8.0, 20.0, 30.0, 1.0, 40.0, 900, 0, 0.0, 9.0, {"200": 81, "500": 9}),
]
TOTALS = Totals(
    run_id=4,
    status="completed",
    duration_s=9.0,
    total_requests=90,
    failures=9,
    stored_samples=90,
    spooled=5,
    replayed=5,
    pending=0,
)


def test_json_has_the_promised_keys() -> None:
    data = as_json(ROWS, TOTALS)
    for key in (
        "run_id",
        "status",
        "total_requests",
        "stored_samples",
        "failures",
        "rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
    ):
        assert key in data
    assert data["rps"] == 10.0 and data["error_rate"] == 0.1 and data["endpoints"][0]["status_counts"]["500"] == 9


def test_run_columns_and_table() -> None:
    cols = run_columns(ROWS, TOTALS)
    assert (cols["p95_ms"], cols["spooled_samples"], cols["replayed_samples"], cols["total_failures"]) == (
        20.0,
        5,
        5,
        9,
    )
    text = table(ROWS, TOTALS)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["Method", "Name", "Reqs", "Fails"]
    assert "Aggregated" in lines[-2] and "200:81 500:9" in lines[-2]
    assert "5 spooled, 5 replayed, 0 pending" in lines[-1]


def test_empty_run_says_so() -> None:
    assert "no samples stored" in table([], TOTALS)
