"""Unit tests of benchlab.runners.shape: plans and profiles per test type, construction and validation (no services)."""

from __future__ import annotations

import pytest
from shape_fixture import clocked, settings

from benchlab.runners.shape import (
    SHAPES,
    BaselineShape,
    LoadShape,
    SoakShape,
    SpikeShape,
    StressShape,
    make_shape,
    plan,
    profile,
)


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
