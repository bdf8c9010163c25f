"""A spike shape driving a real in-process Locust runner: the live user count follows the planned profile."""

from __future__ import annotations

import time

import gevent
from locust import User, constant, task
from locust.env import Environment
from locust.runners import STATE_STOPPED

from benchlab.runners.settings import ShapeSettings
from benchlab.runners.shape import make_shape, profile


class Idle(User):
    """A user whose task only sleeps: no target needed."""

    wait_time = constant(0.1)

    @task
    def idle(self) -> None:
        gevent.sleep(0.1)


def test_spike_shape_drives_a_local_runner() -> None:
    settings = ShapeSettings(test_type="spike", users=2, spawn_rate=1.0, run_time=9.0, spike_factor=3.0)
    shape = make_shape(settings)
    events: list[tuple[str, str, int]] = []
    shape.note = lambda kind, message, users: events.append((kind, message, users))
    env = Environment(user_classes=[Idle], shape_class=shape)
    runner = env.create_local_runner()
    runner.start_shape()
    samples: list[tuple[float, int]] = []
    deadline = time.perf_counter() + 14.0
    try:
        while runner.state != STATE_STOPPED and time.perf_counter() < deadline:
            samples.append((shape.get_run_time(), runner.user_count))
            gevent.sleep(0.5)
    finally:
        runner.quit()

    assert runner.state == STATE_STOPPED, "the shape did not stop the run after its planned end"
    assert samples[-1][0] < 11.0
    planned = profile(settings, step=0.1)
    for t, users in samples:
        # Ticks come once a second, so the live count may lag the plan by a tick plus a spawn; Locust
        # starts each spawn batch at the beginning of its interval, so it may also lead by up to a second.
        window = [n for pt, n in planned if t - 1.6 <= pt <= t + 1.0]
        assert min(window) <= users <= max(window), f"{users} users at t={t:.1f}s, plan allows {window}"
    counts = [users for _, users in samples]
    assert counts.count(6) >= 2, counts
    top = counts.index(6)
    assert all(n == 2 for t, n in samples[: top - 1] if t > 1.5), counts
    assert all(n == 2 for t, n in samples if 6.6 <= t <= 8.9), counts
    assert [kind for kind, _, _ in events] == ["stage", "stage", "spike_start", "spike_end"]
