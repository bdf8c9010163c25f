"""Issue 3 through the runner: every load-test file and every shape, against the demo target, into the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import benchlab
from target_fixture import Target, running_target
from test_load_tests_plain import EXPECTED, FILES

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store


@pytest.fixture(scope="module")
def short_token_target() -> Iterator[Target]:
    """A 1.0 target whose access tokens expire after 2 s, so sessions must refresh."""
    with running_target(version="1.0", token_ttl=2.0) as target:
        yield target


@pytest.mark.parametrize("name", FILES)
def test_each_load_test_file_hits_all_its_endpoints_without_errors(
    name: str, short_token_target: Target, sqlite_url: str, tmp_path: Path
) -> None:
    res = benchlab(
        "run",
        "-f",
        f"{name}.py",
        "--host",
        short_token_target.url,
        "-u",
        "15",
        "-r",
        "15",
        "-t",
        "7s",
        "--test-type",
        "baseline",
        "--db",
        sqlite_url,
        "--json",
        "-q",
        cwd=tmp_path,
    )
    assert res.code == 0, res.stderr
    s = res.summary
    assert s["failures"] == 0, [e for e in s["endpoints"] if e["failures"]]
    assert s["stored_samples"] == s["total_requests"]
    store = Store(settings=StoreSettings(url=sqlite_url))
    seen = {(row["method"], row["name"]) for row in store.iter_samples(s["run_id"])}
    wanted = set().union(*EXPECTED[name].values())
    assert wanted <= seen, wanted - seen


def _user_counts(events: list[dict]) -> list[int]:
    return [e["user_count"] for e in events if e["kind"] == "users"]


def _collapse(values: list[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_complete_suite_runs_every_shape_with_its_profile(demo_target: Target, pg_url: str, tmp_path: Path) -> None:
    res = benchlab(
        "run",
        "-f",
        "locustfile.py",
        "--user-class",
        "HealthCheckUser",
        "--host",
        demo_target.url,
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "9s",
        "--test-type",
        "complete",
        "--stress-steps",
        "2",
        "--spike-factor",
        "3",
        "--slo-p95-ms",
        "5000",
        "--db",
        pg_url,
        "--json",
        "-q",
        cwd=tmp_path,
        timeout=300,
    )
    assert res.code == 0, res.stderr
    suite = res.summary["suite_runs"]
    assert [r["test_type"] for r in suite] == ["baseline", "load", "stress", "spike", "soak"]
    store = Store(settings=StoreSettings(url=pg_url))
    runs = {r["test_type"]: store.get_run(r["run_id"]) for r in suite}
    assert len({run.suite_id for run in runs.values() if run}) == 1
    events = {t: store.events(r["run_id"]) for t, r in zip(runs, suite, strict=True)}
    for test_type, evs in events.items():
        counts = _collapse(_user_counts(evs))
        assert max(counts) >= 4 if test_type != "spike" else max(counts) == 12, (test_type, counts)
        assert all(r["stored_samples"] == r["total_requests"] > 0 for r in suite)
    stress = _collapse(_user_counts(events["stress"]))
    assert stress == sorted(stress) and 2 in stress and stress[-1] == 4, stress
    steps = [e["message"] for e in events["stress"] if e["kind"] == "stress_step"]
    assert steps == ["step 1/2 users=2", "step 2/2 users=4"]
    spike = _collapse(_user_counts(events["spike"]))
    top = spike.index(12)
    assert 4 in spike[:top] and spike[-1] == 4, spike
    kinds = [e["kind"] for e in events["spike"]]
    assert kinds.count("spike_start") == 1 and kinds.count("spike_end") == 1
    assert kinds.index("spike_start") < kinds.index("spike_end")
    load = _collapse(_user_counts(events["load"]))
    assert load == sorted(load) and load[-1] == 4
    assert any(e["kind"] == "soak_checkpoint" for e in events["soak"])
