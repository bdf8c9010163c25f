"""Stored comparisons and noise floors on real Postgres and SQLite: round trip, cascade delete, newest floor wins."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Comparison, ComparisonResult
from benchlab.metrics.store.verdict import get_comparison, latest_noise_floors, save_comparison, save_noise_floors

HEADER: dict[str, Any] = {
    "scenario": "checkout",
    "test_type": "load",
    "baseline_version": "1.0",
    "candidate_version": "1.1",
    "baseline_run_ids": [3, 1],
    "candidate_run_ids": [7],
    "method": "block-bootstrap",
    "overall": "regression",
    "details": {"method": {"replicates": 2000, "block": 5.5}, "warnings": ["few runs"], "settings": {"seed": 1}},
}


def _result(endpoint: str, metric: str, verdict: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "endpoint": endpoint,
        "http_method": "GET" if endpoint else "",
        "metric": metric,
        "baseline_value": 120.5,
        "candidate_value": 150.25,
        "change": 0.2469,
        "change_kind": "relative",
        "threshold": 0.1,
        "verdict": verdict,
        "gating": True,
    }
    return row | extra


RESULTS = [
    _result(
        "/health", "p95_ms", "regression", ci_low=0.12, ci_high=0.38, noise_floor=0.03, p_value=0.001, q_value=0.004
    ),
    _result("", "error_rate", "unchanged", change=0.002, change_kind="absolute", baseline_value=0.01, gating=False),
    _result("", "cpu_percent", "inconclusive", subject="target", ci_low=-0.05, ci_high=0.4, p_value=math.nan),
]


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An opened store on a fresh database of each backend."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else request.getfixturevalue("sqlite_url")
    opened = Store(settings=StoreSettings(url=url, spool_dir=tmp_path / "spool")).open()
    yield opened
    opened.close()


def _count(store: Store, model: type[Any]) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_comparison_round_trip(store: Store) -> None:
    comparison_id = save_comparison(store, HEADER, RESULTS)
    stored = get_comparison(store, comparison_id)
    assert stored is not None
    head, results = stored
    assert {k: head[k] for k in HEADER} == HEADER
    assert head["id"] == comparison_id and isinstance(head["created_at"], datetime)
    assert [(r["endpoint"], r["http_method"], r["metric"], r["subject"]) for r in results] == [
        ("/health", "GET", "p95_ms", None),
        ("", "", "error_rate", None),
        ("", "", "cpu_percent", "target"),
    ]
    first, second, third = results
    assert first["comparison_id"] == comparison_id
    assert (first["ci_low"], first["ci_high"], first["noise_floor"], first["q_value"]) == (0.12, 0.38, 0.03, 0.004)
    assert (first["baseline_value"], first["candidate_value"], first["gating"]) == (120.5, 150.25, True)
    assert (second["change_kind"], second["change"], second["ci_low"]) == ("absolute", 0.002, None)
    assert second["gating"] is False
    assert third["p_value"] is None and third["q_value"] is None, "NaN is stored as NULL on both backends"
    assert get_comparison(store, comparison_id + 1) is None
    odd = {"details": {"method": {"block": math.nan, "sizes": [1.0, math.inf]}}, "candidate_run_ids": (7, 8)}
    second = save_comparison(store, HEADER | {"overall": "unchanged"} | odd, [])
    assert second == comparison_id + 1
    stored = get_comparison(store, second)
    assert stored is not None and stored[1] == []
    assert stored[0]["details"] == {"method": {"block": None, "sizes": [1.0, None]}} and stored[0][
        "candidate_run_ids"
    ] == [7, 8]


def test_deleting_a_comparison_deletes_its_results(store: Store) -> None:
    keep = save_comparison(store, HEADER, RESULTS[:1])
    drop = save_comparison(store, HEADER, RESULTS)
    assert _count(store, ComparisonResult) == 4
    with store.engine.begin() as conn:
        conn.execute(delete(Comparison).where(Comparison.id == drop))
    assert _count(store, ComparisonResult) == 1
    stored = get_comparison(store, keep)
    assert stored is not None and len(stored[1]) == 1


def test_bad_rows_store_nothing(store: Store) -> None:
    renamed = {k: v for k, v in RESULTS[0].items() if not k.endswith("_value")} | {"baseline": 1.0, "candidate": 2.0}
    with pytest.raises(ValueError, match=r"unknown baseline, candidate"):
        save_comparison(store, HEADER, [renamed])
    with pytest.raises(ValueError, match=r"missing .* overall"):
        save_comparison(store, {k: v for k, v in HEADER.items() if k != "overall"}, RESULTS)
    with pytest.raises(ValueError, match=r"missing .* verdict"):
        save_comparison(store, HEADER, [{k: v for k, v in RESULTS[0].items() if k != "verdict"}])
    nan_id = save_comparison(store, HEADER, [RESULTS[0] | {"change": math.nan}])  # a change that cannot be known
    stored = get_comparison(store, nan_id)
    assert stored is not None and stored[1][0]["change"] is None
    with pytest.raises(IntegrityError):
        save_comparison(store, HEADER | {"overall": "worse"}, RESULTS)
    with pytest.raises(IntegrityError):  # the header went in first: one transaction takes it back out
        save_comparison(store, HEADER, [*RESULTS, _result("/x", "rps", "unchanged", change_kind="percent")])
    assert _count(store, Comparison) == 1 and _count(store, ComparisonResult) == 1, "only the NaN comparison"


def _floor(metric: str, spread: float, created_at: datetime, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "created_at": created_at,
        "app_version": "1.0",
        "scenario": "checkout",
        "test_type": "load",
        "endpoint": "/health",
        "http_method": "GET",
        "metric": metric,
        "change_kind": "relative",
        "runs": 5,
        "run_ids": [1, 2, 3, 4, 5],
        "mean_value": 12.5,
        "spread": spread,
    }
    return row | extra


def test_latest_noise_floor_wins(store: Store) -> None:
    t0 = datetime(2024, 5, 6, 12, tzinfo=UTC)
    later = t0 + timedelta(days=1)
    save_noise_floors(
        store,
        [
            _floor("p95_ms", 0.10, t0),
            _floor("p95_ms", 0.04, later, run_ids=[6, 7, 8], runs=3),
            _floor("p50_ms", 0.02, t0),
            _floor("cpu_percent", 0.20, later, endpoint="", http_method="", subject="target"),
            _floor("cpu_percent", 0.30, t0, endpoint="", http_method="", subject="target"),
            _floor("cpu_percent", 0.25, t0, endpoint="", http_method="", subject="redis"),
            _floor("error_rate", 0.004, t0, endpoint="", http_method="", change_kind="absolute"),
            _floor("p95_ms", 0.50, later + timedelta(days=1), app_version="1.1"),
            _floor("p95_ms", 0.60, later + timedelta(days=1), scenario="search"),
        ],
    )
    save_noise_floors(store, [_floor("error_rate", 0.001, t0, endpoint="", http_method="", change_kind="absolute")])
    save_noise_floors(store, [])
    rows = latest_noise_floors(store, version="1.0", scenario="checkout", test_type="load")
    spread = {(r["endpoint"], r["http_method"], r["metric"], r["subject"]): r["spread"] for r in rows}
    assert spread == {
        ("/health", "GET", "p95_ms", None): 0.04,
        ("/health", "GET", "p50_ms", None): 0.02,
        ("", "", "cpu_percent", "target"): 0.20,
        ("", "", "cpu_percent", "redis"): 0.25,
        ("", "", "error_rate", None): 0.001,  # same created_at: the row stored last wins
    }
    newest = next(r for r in rows if r["metric"] == "p95_ms")
    assert (newest["runs"], newest["run_ids"], newest["mean_value"]) == (3, [6, 7, 8], 12.5)
    assert latest_noise_floors(store, version="1.0", scenario="checkout", test_type="soak") == []
    save_noise_floors(store, [_floor("p50_ms", 0.07, t0) | {"created_at": None}])
    rows = latest_noise_floors(store, version="1.0", scenario="checkout", test_type="load")
    assert [r["spread"] for r in rows if r["metric"] == "p50_ms"] == [0.07], "created_at left to the store: now"
