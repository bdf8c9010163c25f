"""Requests per second over the load phase: first to last stored sample, not the run's wall time.

With `--workers N` the run's duration includes the workers' start-up and the final flush; dividing by it
understated the rate (by about 17% on a 15 s run). The samples here are stored by two workers in a real SQLite
store and summarised by the same query `benchlab run` uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from run_meta import run_meta

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.query import endpoint_stats
from benchlab.metrics.store.sample import Sample
from benchlab.runners.analysis.summary import Totals, load_seconds, run_columns
from benchlab.runners.report.summary import as_json

META = run_meta(scenario="rate", users=4, spawn_rate=4.0, planned_duration_s=15.0, workers=2)
T0 = 1.7e9


def _samples(start: float, stop: float, count: int, name: str) -> list[Sample]:
    step = (stop - start) / (count - 1)
    return [(T0 + start + i * step, name, "GET", 5.0, 10, 0, 200, True, None) for i in range(count)]


def _totals(run_id: int, duration: float, stored: int) -> Totals:
    return Totals(run_id, "completed", duration, stored, 0, stored, 0, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(settings=StoreSettings(url=f"sqlite:///{tmp_path / 'rate.db'}", spool_dir=tmp_path / "spool")).open()


def test_rps_with_workers_counts_the_load_phase_only(store: Store) -> None:
    run_id = store.start_run(META)
    # Two workers: w1 from 0 to 15 s, w2 from 0.5 to 14.5 s (it connected later); the master's clock ran 18.2 s
    # from its start (workers starting, connecting) to the end of the final flush.
    store.write_samples(run_id, "w1", _samples(0.0, 15.0, 1501, "/a"))
    store.write_samples(run_id, "w2", _samples(0.5, 14.5, 1400, "/b"))
    rows = endpoint_stats(store, run_id)
    totals = _totals(run_id, 18.2, 2901)
    assert load_seconds(rows, totals) == pytest.approx(15.0)
    cols = run_columns(rows, totals)
    assert cols["rps"] == pytest.approx(2901 / 15.0)
    assert cols["rps"] > 2901 / 18.2 * 1.2  # the wall-time rate understated it by 18%
    out = as_json(rows, totals)
    assert out["rps"] == cols["rps"] and out["load_s"] == 15.0 and out["duration_s"] == 18.2
    by_name = {e["name"]: e["rps"] for e in out["endpoints"]}
    assert by_name == pytest.approx({"/a": 1501 / 15.0, "/b": 1400 / 15.0})
    assert sum(by_name.values()) == pytest.approx(out["rps"])


def test_rps_falls_back_to_the_duration_without_a_span(store: Store) -> None:
    run_id = store.start_run(META)
    store.write_samples(run_id, "w1", [(T0, "/a", "GET", 5.0, 10, 0, 200, True, None)])
    rows = endpoint_stats(store, run_id)
    assert run_columns(rows, _totals(run_id, 4.0, 1))["rps"] == pytest.approx(0.25)
    assert run_columns([], _totals(run_id, 4.0, 0))["rps"] == 0.0
    assert run_columns([], _totals(run_id, 0.0, 0))["rps"] == 0.0
