"""`benchlab prune` on Postgres and SQLite: old runs lose their raw request samples and keep their summaries and
rollups; what needs raw samples names the pruned run; `benchlab rollup` fills in runs that have no rollups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from run_meta import run_meta
from sqlalchemy import delete, func, select

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import EndpointRollup, RequestSample, ResourceSample, RunRollup, WindowRollup
from benchlab.metrics.store.rollup import TABLES, write_rollup
from benchlab.runners.cli import main
from benchlab.runners.prune import parse_age

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=100)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'prune.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(settings=StoreSettings(url=url, spool_dir=tmp_path / "spool")).open()
    yield s
    s.close()


def _run(store: Store, version: str, start: datetime, samples: int = 300, *, finish: bool = True) -> int:
    meta = run_meta(scenario="prune", app_version=version, planned_duration_s=30.0)
    run_id = store.start_run(meta, started_at=start)
    t0 = start.timestamp()
    rows = [
        (t0 + i * 0.1, "/health" if i % 2 else "/items", "GET", 5.0 + i % 17, 100, None, 200, True, None)
        for i in range(samples)
    ]
    store.write_samples(run_id, None, rows)
    if finish:
        store.finish_run(run_id, status="completed", summary={}, ended_at=start + timedelta(seconds=30))
        if not store.is_postgres:  # SQLite runs are rolled up on demand (`benchlab rollup`), not as they end
            write_rollup(store, run_id)
    return run_id


def _count(store: Store, model: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def _cli(store: Store, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, "--db", store.settings.url, "--spool-dir", str(store.settings.spool_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_keeps_rollups_and_summaries_and_names_pruned_runs(
    store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = _run(store, "1.0", OLD)
    kept_version = _run(store, "0.9", OLD)
    recent = _run(store, "1.0", NOW - timedelta(days=3))
    running = _run(store, "1.0", OLD, finish=False)
    unrolled = _run(store, "1.0", OLD + timedelta(hours=1))
    with store.engine.begin() as conn:  # stored by a benchlab without rollups
        for model in (*TABLES, RunRollup):
            conn.execute(delete(model).where(model.__table__.c.run_id == unrolled))
    readings = [{"ts": ts, "service": "target", "process_count": 1, "restarts": 0} for ts in (OLD, NOW)]
    store.write_resource_samples([{**r, "run_id": None} for r in readings] + [{**readings[0], "run_id": old}])
    before = {r["name"]: r for r in _rows(store, EndpointRollup, old)}

    code, out, _ = _cli(store, capsys, "prune", "--older-than", "90d", "--keep-versions", "0.9", "--dry-run")
    assert code == 0
    assert [line.split()[3] for line in out.splitlines()[:-1]] == [str(old), str(unrolled)]
    assert out.splitlines()[-1].startswith("would prune 2 runs") and "600 request samples, 1 sidecar" in out
    assert _count(store, RequestSample) == 1500 and _count(store, RunRollup, RunRollup.pruned_at.is_not(None)) == 0

    code, out, _ = _cli(store, capsys, "prune", "--older-than", "90d", "--keep-versions", "0.9")
    assert code == 0 and f"pruned run {old} " in out and "pruned 2 runs" in out
    for run_id, left in ((old, 0), (unrolled, 0), (kept_version, 300), (recent, 300), (running, 300)):
        assert _count(store, RequestSample, RequestSample.run_id == run_id) == left, run_id
    marks = {r["run_id"]: r for r in _all(store, RunRollup) if r["pruned_at"] is not None}
    assert set(marks) == {old, unrolled} and marks[old]["pruned_samples"] == 300
    assert {r["name"]: r for r in _rows(store, EndpointRollup, old)} == before, "the rollups stay as they were"
    assert {r["name"]: r["requests"] for r in _rows(store, EndpointRollup, unrolled)} == {
        "": 300,
        "/health": 150,
        "/items": 150,
    }, "rolled up from its raw samples before they went"
    assert sum(r["requests"] for r in _rows(store, WindowRollup, unrolled)) == 300
    assert _count(store, ResourceSample, ResourceSample.run_id.is_(None)) == 1, "the old reading outside runs"
    assert _count(store, ResourceSample, ResourceSample.run_id == old) == 1, "a pruned run's readings stay"
    assert store.get_run(old).status == "completed"

    code, _, err = _cli(store, capsys, "compare", "--run", str(recent), "--baseline-run", str(old), "--no-save")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"run {old} (1.0, started" in err and "pruned" in err and "compare/report" in err
    code, _, err = _cli(store, capsys, "export", "--run", str(old), "--csv", str(tmp_path / "old.csv"))
    assert code == 2 and f"run {old} " in err and not (tmp_path / "old.csv").exists()
    code, _, err = _cli(store, capsys, "analyze", "--run", str(unrolled))
    assert code == 2 and f"run {unrolled} " in err

    code, out, _ = _cli(store, capsys, "prune", "--older-than", "90d")
    assert code == 0 and f"pruned run {kept_version} " in out and "pruned 1 runs" in out


def test_rollup_command_fills_in_runs_without_rollups(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    with_rollups = _run(store, "1.0", NOW - timedelta(days=1))
    without = _run(store, "1.0", NOW - timedelta(days=2), samples=40)
    _run(store, "1.0", NOW, finish=False)
    with store.engine.begin() as conn:
        for model in (*TABLES, RunRollup):
            conn.execute(delete(model).where(model.__table__.c.run_id == without))
    code, out, _ = _cli(store, capsys, "rollup")
    assert code == 0 and out.splitlines() == [f"run {without}: 40 samples rolled up", "rolled up 1 runs"]
    assert _count(store, EndpointRollup, EndpointRollup.run_id == without) == 3
    code, out, _ = _cli(store, capsys, "rollup", "--run", str(with_rollups))
    assert code == 0 and f"run {with_rollups}: 300 samples rolled up" in out
    code, _, err = _cli(store, capsys, "rollup", "--run", "999")
    assert code == 2 and "run 999 not found or still running" in err


@pytest.mark.parametrize("age", ["90x", "0d", "-5d", "d", "1.5d"])
def test_a_bad_age_exits_2(age: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["prune", "--older-than", age, "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--older-than" in err
    assert not (tmp_path / "x.db").exists()


def test_ages_read_as_their_unit() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(days=14)
    assert parse_age("30m") == timedelta(minutes=30)


def _rows(store: Store, model: Any, run_id: int) -> list[dict[str, Any]]:
    table = model.__table__
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(table.c.run_id == run_id)).mappings()]


def _all(store: Store, model: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(model.__table__)).mappings()]
