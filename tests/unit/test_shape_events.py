"""Unit tests of benchlab.runners.shape's ticks: the end of the run and the events noted once each (no services)."""

from __future__ import annotations

import logging

import pytest
from shape_fixture import Recorder, clocked, fake_runner, run_ticks, settings

from benchlab.runners.shape import SHAPES, make_shape


@pytest.mark.parametrize("test_type", sorted(SHAPES))
def test_tick_returns_none_after_the_planned_end(test_type: str) -> None:
    shape = make_shape(settings(test_type, run_time=12.0))
    clock, _ = clocked(shape)
    clock.now = 11.9
    assert shape.tick() is not None
    clock.now = 12.0
    assert shape.tick() is None
    clock.now = 100.0
    assert shape.tick() is None


def test_tick_with_the_real_clock() -> None:
    shape = make_shape(settings("load", run_time=5.0))
    shape.note = Recorder()
    assert shape.tick() == (10, 2.0)
    shape.start_time -= 6.0
    assert shape.tick() is None


def test_reset_time_restarts_the_plan_and_its_events() -> None:
    shape = make_shape(settings("load", run_time=10.0))
    clock, recorder = clocked(shape)
    run_ticks(shape, clock, until=11.0)
    shape.reset_time()
    clock.now = 0.0
    assert shape.tick() == (10, 2.0)
    assert recorder.events[-1] == ("stage", "ramp", 10)
    assert recorder.kinds().count("stage") == 3


# --- events -------------------------------------------------------------------------------------------


def test_load_events_each_once() -> None:
    shape = make_shape(settings("load", users=10, spawn_rate=2.0, run_time=10.0))
    clock, recorder = clocked(shape)
    run_ticks(shape, clock, until=12.0)
    assert recorder.events == [("stage", "ramp", 10), ("stage", "hold", 10)]


def test_baseline_events_each_once() -> None:
    shape = make_shape(settings("baseline", users=5, run_time=10.0))
    clock, recorder = clocked(shape)
    run_ticks(shape, clock, until=12.0)
    assert recorder.events == [("stage", "start", 5), ("stage", "hold", 5)]


def test_stress_step_events_each_once_in_order() -> None:
    shape = make_shape(settings("stress", users=10, run_time=25.0, stress_steps=5))
    clock, recorder = clocked(shape)
    results = run_ticks(shape, clock, until=26.0)
    assert recorder.events == [("stress_step", f"step {i}/5 users={2 * i}", 2 * i) for i in range(1, 6)]
    assert [r for t, r in results if t in (2.0, 7.0, 24.5)] == [(2, 2.0), (4, 2.0), (10, 2.0)]


def test_spike_events_each_once_with_user_counts() -> None:
    shape = make_shape(settings("spike", users=2, run_time=9.0, spike_factor=3.0))
    clock, recorder = clocked(shape)
    run_ticks(shape, clock, until=10.0, step=0.25)
    assert recorder.kinds() == ["stage", "stage", "spike_start", "spike_end"]
    assert recorder.events[2] == ("spike_start", "spike to 6 users (x3) for 2s", 6)
    assert recorder.events[3] == ("spike_end", "back to 2 users", 2)


def test_skipped_ticks_still_note_every_transition_once() -> None:
    shape = make_shape(settings("spike", users=2, run_time=9.0, spike_factor=3.0))
    clock, recorder = clocked(shape)
    clock.now = 6.0
    assert shape.tick() == (2, 6.0)
    assert recorder.kinds() == ["stage", "stage", "spike_start", "spike_end"]
    shape.tick()
    assert len(recorder.events) == 4


def test_soak_checkpoints_each_once_with_live_users() -> None:
    shape = make_shape(settings("soak", users=10, run_time=100.0))
    clock, recorder = clocked(shape)
    shape.runner = fake_runner(users=7)  # type: ignore[assignment]
    run_ticks(shape, clock, until=101.0)
    checkpoints = [e for e in recorder.events if e[0] == "soak_checkpoint"]
    assert checkpoints == [("soak_checkpoint", f"checkpoint {k}/10 t={10 * k}s", 7) for k in range(1, 10)]
    assert recorder.kinds()[:2] == ["stage", "stage"]


def test_soak_checkpoint_without_runner_uses_the_planned_users() -> None:
    shape = make_shape(settings("soak", users=10, spawn_rate=1.0, run_time=100.0))
    clock, recorder = clocked(shape)
    clock.now = 10.0
    shape.tick()
    assert recorder.events[-1] == ("soak_checkpoint", "checkpoint 1/10 t=10s", 10)


def test_failing_callback_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    shape = make_shape(settings("load"))
    clocked(shape)

    def broken(kind: str, message: str, users: int) -> None:
        raise RuntimeError("listener down")

    shape.note = broken
    with caplog.at_level(logging.ERROR, logger="benchlab.runners.shape"):
        assert shape.tick() == (10, 2.0)
    assert "listener down" in caplog.text


def test_without_callback_events_are_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    shape = make_shape(settings("load"))
    clocked(shape)
    shape.note = None
    with caplog.at_level(logging.INFO, logger="benchlab.runners.shape"):
        shape.tick()
    assert "stage: ramp (users=10)" in caplog.text
