"""Unit tests of benchlab.runners.shape: plans, ticks, events, the stress SLO break and validation (no services)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from benchlab.runners.settings import ShapeSettings
from benchlab.runners.shape import (
    SHAPES,
    BaselineShape,
    BenchShape,
    LoadShape,
    SoakShape,
    SpikeShape,
    StressShape,
    make_shape,
    plan,
    profile,
)


@dataclass
class Clock:
    """A settable run clock that replaces a shape's get_run_time."""

    now: float = 0.0


@dataclass
class Recorder:
    """An event callback that keeps every (kind, message, user_count)."""

    events: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, kind: str, message: str, users: int) -> None:
        self.events.append((kind, message, users))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]


class FakeTotal:
    """Stand-in for RequestStats.total with settable current p95 and failure ratio."""

    def __init__(self) -> None:
        self.p95: float | None = None
        self.fail_ratio = 0.0

    def get_current_response_time_percentile(self, percent: float) -> float | None:
        assert percent == 0.95
        return self.p95


def fake_runner(users: int = 0) -> SimpleNamespace:
    return SimpleNamespace(stats=SimpleNamespace(total=FakeTotal()), user_count=users)


def settings(test_type: str, **overrides: object) -> ShapeSettings:
    values: dict[str, object] = {"users": 10, "spawn_rate": 2.0, "run_time": 30.0}
    values.update(overrides)
    return ShapeSettings(test_type=test_type, **values)  # type: ignore[arg-type]


def clocked(shape: BenchShape) -> tuple[Clock, Recorder]:
    clock, recorder = Clock(), Recorder()
    shape.get_run_time = lambda: clock.now  # type: ignore[method-assign]
    shape.note = recorder
    return clock, recorder


def run_ticks(
    shape: BenchShape, clock: Clock, until: float, step: float = 0.5
) -> list[tuple[float, tuple[int, float] | None]]:
    """Tick every `step` seconds from 0 to `until`, returning (t, tick result)."""
    results = []
    for k in range(int(until / step) + 1):
        clock.now = k * step
        results.append((clock.now, shape.tick()))
    return results


def users_of(points: list[tuple[float, int]]) -> list[int]:
    return [users for _, users in points]


# --- plans and profiles -------------------------------------------------------------------------------


def test_baseline_profile_starts_all_users_within_a_second_then_holds() -> None:
    points = profile(settings("baseline", users=4, spawn_rate=1.0, run_time=10.0))
    assert points == [(float(t), 0 if t == 0 else 4) for t in range(11)]


def test_load_profile_ramps_at_spawn_rate_then_holds() -> None:
    points = profile(settings("load", users=10, spawn_rate=2.0, run_time=10.0))
    assert users_of(points) == [0, 2, 4, 6, 8, 10, 10, 10, 10, 10, 10]


def test_soak_profile_matches_load_with_its_own_stage_names() -> None:
    soak = settings("soak", run_time=20.0)
    assert users_of(profile(soak)) == users_of(profile(settings("load", run_time=20.0)))
    assert [stage.name for stage in plan(soak)] == ["warmup", "soak"]


def test_stress_profile_steps_to_the_maximum() -> None:
    s = settings("stress", users=10, spawn_rate=100.0, run_time=50.0, stress_steps=5)
    levels = dict(profile(s))
    assert [levels[t] for t in (5.0, 15.0, 25.0, 35.0, 45.0, 50.0)] == [2, 4, 6, 8, 10, 10]
    steps = plan(s)
    assert [(st.start, st.end) for st in steps] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    assert steps[-1].users == 10


def test_stress_steps_round_up_and_end_at_the_maximum() -> None:
    steps = plan(settings("stress", users=10, stress_steps=3))
    assert [st.users for st in steps] == [4, 7, 10]
    assert [st.users for st in plan(settings("stress", users=2, stress_steps=5))] == [1, 1, 2, 2, 2]


def test_spike_profile_base_jump_and_recovery() -> None:
    s = settings("spike", users=2, spawn_rate=1.0, run_time=9.0, spike_factor=3.0)
    assert users_of(profile(s)) == [0, 2, 2, 2, 6, 6, 2, 2, 2, 2]
    names = [(st.name, st.users, st.start, st.end) for st in plan(s)]
    assert names == [
        ("start", 2, 0.0, 1.0),
        ("base", 2, 1.0, 3.0),
        ("spike", 6, 3.0, 5.0),
        ("recover", 2, 5.0, 9.0),
    ]


def test_spike_window_is_a_fifth_of_long_runs() -> None:
    spike = next(st for st in plan(settings("spike", run_time=60.0)) if st.name == "spike")
    assert (spike.start, spike.end, spike.users, spike.spawn_rate) == (20.0, 32.0, 50, 50.0)


def test_spike_height_is_above_the_base_even_for_a_small_factor() -> None:
    spike = next(st for st in plan(settings("spike", users=1, spike_factor=1.2)) if st.name == "spike")
    assert spike.users == 2


def test_ramp_longer_than_the_run_has_no_hold_stage() -> None:
    s = settings("load", users=100, spawn_rate=1.0, run_time=10.0)
    assert [st.name for st in plan(s)] == ["ramp"]
    assert profile(s)[-1] == (10.0, 10)


def test_profile_step_and_end_sample() -> None:
    points = profile(settings("load", run_time=3.0), step=0.5)
    assert [t for t, _ in points] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    with pytest.raises(ValueError, match="step"):
        profile(settings("load"), step=0)


@pytest.mark.parametrize("test_type", sorted(SHAPES))
def test_tick_follows_the_same_plan_as_profile(test_type: str) -> None:
    s = settings(test_type, run_time=20.0)
    shape = make_shape(s)
    clock, _ = clocked(shape)
    for stage in plan(s):
        clock.now = (stage.start + stage.end) / 2
        assert shape.tick() == (stage.users, stage.spawn_rate)
    assert shape.planned_duration() == 20.0


# --- end of the run -----------------------------------------------------------------------------------


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


# --- stress SLO ---------------------------------------------------------------------------------------


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


# --- construction and validation ----------------------------------------------------------------------


def test_shapes_map_each_test_type_to_its_class() -> None:
    expected = {
        "baseline": BaselineShape,
        "load": LoadShape,
        "stress": StressShape,
        "spike": SpikeShape,
        "soak": SoakShape,
    }
    assert expected == SHAPES
    for test_type, cls in expected.items():
        shape = make_shape(settings(test_type))
        assert type(shape) is cls and shape.note is None and shape.settings.test_type == test_type


def test_make_shape_rejects_complete_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="'complete' is not a shape"):
        make_shape(settings("complete"))
    with pytest.raises(ValueError, match="unknown test type 'ramp'"):
        make_shape(settings("ramp"))
    with pytest.raises(ValueError, match="unknown test type"):
        plan(settings("ramp"))


def test_constructor_is_keyword_only_and_checks_the_test_type() -> None:
    with pytest.raises(TypeError):
        LoadShape(settings("load"))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="LoadShape runs test type 'load', not 'spike'"):
        LoadShape(settings=settings("spike"))


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("users", 0),
        ("spawn_rate", 0.0),
        ("spawn_rate", float("nan")),
        ("run_time", -1.0),
        ("run_time", float("inf")),
        ("stress_steps", 0),
        ("spike_factor", 1.0),
        ("slo_p95_ms", 0.0),
        ("slo_error_rate", 1.5),
    ],
)
def test_invalid_settings_name_the_field(field_name: str, value: object) -> None:
    bad = settings("load", **{field_name: value})
    with pytest.raises(ValueError, match=f"shape setting {field_name} must be") as info:
        make_shape(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=field_name):
        profile(bad)
