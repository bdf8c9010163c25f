"""Unit tests of benchlab.runners.shape's stress test: the step that breaks the p95 or failure SLO ends it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from shape_fixture import Clock, Recorder, clocked, fake_runner, run_ticks, settings

from benchlab.runners.shape import StressShape, make_shape


def stress_with_runner(**overrides: object) -> tuple[StressShape, Clock, Recorder, SimpleNamespace]:
    values: dict[str, object] = {"users": 10, "run_time": 50.0, "stress_steps": 5, "slo_p95_ms": 500.0}
    values.update(overrides)
    shape = make_shape(settings("stress", **values))
    assert isinstance(shape, StressShape)
    clock, recorder = clocked(shape)
    runner = fake_runner()
    shape.runner = runner  # type: ignore[assignment]
    return shape, clock, recorder, runner


def test_stress_stops_at_the_step_that_breaks_the_p95_slo() -> None:
    shape, clock, recorder, runner = stress_with_runner()
    results = []
    for k in range(0, 101):
        clock.now = k * 0.5
        runner.user_count = shape.current_stage().users
        runner.stats.total.p95 = 100.0 * runner.user_count  # 600 ms from step 3 (6 users)
        results.append(shape.tick())
    breaks = [e for e in recorder.events if e[0] == "slo_break"]
    assert breaks == [
        (
            "slo_break",
            "step 3/5 users=6: p95_ms=600.0 fail_ratio=0.0000 (slo p95_ms<=500 fail_ratio<=0.05)",
            6,
        )
    ]
    assert recorder.kinds() == ["stress_step"] * 3 + ["slo_break"]
    first_none = results.index(None)
    assert first_none * 0.5 == 25.0  # step 3 starts at 20 s and is judged after 5 s
    assert all(r is None for r in results[first_none:])


def test_stress_breaks_on_the_failure_ratio() -> None:
    shape, clock, recorder, runner = stress_with_runner()
    runner.user_count = 2
    runner.stats.total.fail_ratio = 0.2
    clock.now = 6.0
    assert shape.tick() is None
    assert recorder.events[-1][0] == "slo_break"
    assert "fail_ratio=0.2000" in recorder.events[-1][1]
    assert recorder.events[-1][2] == 2


def test_stress_does_not_judge_a_step_before_it_settles() -> None:
    shape, clock, recorder, runner = stress_with_runner()
    runner.stats.total.p95 = 9999.0
    for now in (0.0, 1.0, 4.5, 10.0, 14.9):
        clock.now = now
        assert shape.tick() is not None
    assert "slo_break" not in recorder.kinds()
    clock.now = 15.0
    assert shape.tick() is None


def test_short_stress_steps_settle_after_half_a_step() -> None:
    shape, clock, _, runner = stress_with_runner(run_time=10.0)
    runner.stats.total.p95 = 9999.0
    clock.now = 0.9
    assert shape.tick() is not None
    clock.now = 1.0
    assert shape.tick() is None


@pytest.mark.parametrize("p95", [None, 0])
def test_stress_ignores_a_missing_p95(p95: float | None) -> None:
    shape, clock, recorder, runner = stress_with_runner()
    runner.stats.total.p95 = p95
    for now in range(50):
        clock.now = float(now)
        assert shape.tick() is not None
    assert "slo_break" not in recorder.kinds()


def test_stress_without_runner_follows_the_plan() -> None:
    shape = make_shape(settings("stress", run_time=10.0))
    clock, recorder = clocked(shape)
    results = run_ticks(shape, clock, until=10.0)
    assert all(r is not None for _, r in results[:-1]) and results[-1][1] is None
    assert "slo_break" not in recorder.kinds()


def test_stress_unreadable_stats_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    shape, clock, _, runner = stress_with_runner()

    def refuse(percent: float) -> float:
        raise ValueError("use_response_times_cache must be set to True")

    runner.stats.total.get_current_response_time_percentile = refuse
    with caplog.at_level(logging.WARNING, logger="benchlab.runners.shape"):
        for now in (6.0, 7.0, 8.0):
            clock.now = now
            assert shape.tick() is not None
    assert caplog.text.count("cannot read live stats") == 1
