"""A settable clock, an event recorder and fake live stats for driving benchlab.runners.shape's shapes by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from benchlab.runners.settings import ShapeSettings
from benchlab.runners.shape import BenchShape


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
    """A stand-in for a Locust runner: live stats (FakeTotal) and a user count."""
    return SimpleNamespace(stats=SimpleNamespace(total=FakeTotal()), user_count=users)


def settings(test_type: str, **overrides: object) -> ShapeSettings:
    """Shape settings of `test_type`: 10 users at 2/s for 30 s unless overridden."""
    values: dict[str, object] = {"users": 10, "spawn_rate": 2.0, "run_time": 30.0}
    values.update(overrides)
    return ShapeSettings(test_type=test_type, **values)  # type: ignore[arg-type]


def clocked(shape: BenchShape) -> tuple[Clock, Recorder]:
    """Give `shape` a settable clock and an event recorder."""
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
