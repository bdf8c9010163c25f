"""Load shapes per test type on Locust's `LoadTestShape`, with one plan shared by tick() and profile().

A shape's plan is a list of contiguous `Stage`s (target users, spawn rate, start, end). `tick()` returns the
target of the stage the run is in, notes each stage transition once as a run event, and returns None after
the plan ends. `profile()` samples the user count expected from the same plan, without a runner. Whether
benchlab's shape or the locustfile's own drives a run is `runners.choice`.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

from locust import LoadTestShape

from benchlab.runners.settings import ShapeSettings

logger = logging.getLogger(__name__)

SETTLE_S: Final = 5.0
"""Seconds a stress step runs before its SLO is judged (at most half the step)."""
CHECKPOINTS: Final = 10
"""A soak run notes a checkpoint every 1/CHECKPOINTS of its run time."""

Note = Callable[[str, str, int], None]
"""Event callback: (kind, message, user_count)."""


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One constant-target segment of a shape's plan."""

    name: str
    """Stage name: ramp, hold, start, base, spike, recover, warmup, soak, or `step i/n`."""
    kind: str
    """Event kind noted when the stage begins: stage, stress_step, spike_start or spike_end."""
    message: str
    """Event message noted when the stage begins."""
    users: int
    """Target user count."""
    spawn_rate: float
    """Users started or stopped per second on the way to the target."""
    start: float
    """Run time in seconds at which the stage begins."""
    end: float
    """Run time in seconds at which the stage ends."""


def validate(settings: ShapeSettings) -> None:
    """Raise ValueError with a one-line message naming the first invalid field of `settings`."""
    checks: list[tuple[str, bool, str]] = [
        ("users", settings.users >= 1, ">= 1"),
        ("spawn_rate", _finite(settings.spawn_rate) and settings.spawn_rate > 0, "> 0"),
        ("run_time", _finite(settings.run_time) and settings.run_time > 0, "> 0"),
        ("stress_steps", settings.stress_steps >= 1, ">= 1"),
        ("spike_factor", _finite(settings.spike_factor) and settings.spike_factor > 1, "> 1"),
        ("slo_p95_ms", _finite(settings.slo_p95_ms) and settings.slo_p95_ms > 0, "> 0"),
        ("slo_error_rate", 0 <= settings.slo_error_rate <= 1, "between 0 and 1"),
    ]
    for field, ok, rule in checks:
        if not ok:
            raise ValueError(f"shape setting {field} must be {rule}, got {getattr(settings, field)!r}")


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _stage(
    name: str, users: int, rate: float, span: tuple[float, float], kind: str = "stage", message: str = ""
) -> Stage:
    """A stage over `span` (start, end) whose event message defaults to its name."""
    start, end = span
    return Stage(name=name, kind=kind, message=message or name, users=users, spawn_rate=rate, start=start, end=end)


def _ramp_hold(names: tuple[str, str], users: int, rate: float, end: float) -> list[Stage]:
    """Reach `users` at `rate` from 0, then hold until `end`; a stage of zero length is left out."""
    ramp_end = min(users / rate, end)
    stages = [_stage(names[0], users, rate, (0.0, ramp_end))]
    if ramp_end < end:
        stages.append(_stage(names[1], users, rate, (ramp_end, end)))
    return stages


def burst_rate(settings: ShapeSettings, users: int) -> float:
    """Spawn rate that reaches `users` within about one second (never below the configured rate)."""
    return max(settings.spawn_rate, float(users))


def spike_users(settings: ShapeSettings) -> int:
    """Spike height: round(users * spike_factor), at least one user above the base."""
    return max(round(settings.users * settings.spike_factor), settings.users + 1)


def _approach(level: float, target: int, amount: float) -> float:
    """Move `level` towards `target` by at most `amount`."""
    if level < target:
        return min(float(target), level + amount)
    return max(float(target), level - amount)


def expected_users(stages: list[Stage], t: float) -> int:
    """User count expected at run time `t` when each stage ramps to its target at its spawn rate."""
    level = 0.0
    for stage in stages:
        if t <= stage.start:
            break
        level = _approach(level, stage.users, stage.spawn_rate * (min(t, stage.end) - stage.start))
    return math.floor(level + 0.5)


class BenchShape(LoadTestShape):
    """Base of benchlab's shapes: follows `build_stages(settings)` and notes stage changes as run events."""

    abstract: ClassVar[bool] = True
    test_type: ClassVar[str] = ""
    """The --test-type this class implements."""

    def __init__(self, *, settings: ShapeSettings) -> None:
        """Validate `settings` (whose test_type must be this class's) and build the plan."""
        validate(settings)
        if settings.test_type != self.test_type:
            name = type(self).__name__
            raise ValueError(f"{name} runs test type {self.test_type!r}, not {settings.test_type!r}")
        super().__init__()
        self.settings: ShapeSettings = settings
        """Parameters of this run's shape."""
        self.stages: list[Stage] = self.build_stages(settings)
        """The plan: contiguous stages from 0 to `planned_duration()`."""
        self.note: Note | None = None
        """Event callback (kind, message, user_count), set by the runner; None logs at INFO."""
        self._noted = -1
        self._stopped = False

    @classmethod
    @abstractmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """The plan of this test type for `settings`."""

    def planned_duration(self) -> float:
        """Seconds from start to the end of the plan."""
        return self.stages[-1].end

    def reset_time(self) -> None:
        """Restart the clock (Locust calls this when the shape starts) and re-arm the events."""
        super().reset_time()
        self._noted = -1
        self._stopped = False

    def tick(self) -> tuple[int, float] | None:
        """Target (users, spawn_rate) of the current stage, noting stage changes; None once the plan ends."""
        t = self.get_run_time()
        if self._stopped or t >= self.planned_duration():
            self._stopped = True
            return None
        index = self._stage_index(t)
        for passed in range(self._noted + 1, index + 1):
            stage = self.stages[passed]
            self._emit(stage.kind, stage.message, stage.users)
        self._noted = max(self._noted, index)
        stage = self.stages[index]
        return stage.users, stage.spawn_rate

    def current_stage(self) -> Stage:
        """The stage the run is in now (the last one after the plan ends)."""
        return self.stages[self._stage_index(self.get_run_time())]

    def live_users(self) -> int:
        """The runner's live user count, or the planned count when no runner is attached."""
        if self.runner is not None:
            return int(self.runner.user_count)
        return expected_users(self.stages, self.get_run_time())

    def _stage_index(self, t: float) -> int:
        index = 0
        for i, stage in enumerate(self.stages):
            if stage.start <= t:
                index = i
        return index

    def _emit(self, kind: str, message: str, users: int) -> None:
        """Pass one event to `note`; a failing callback is logged and never stops the run."""
        if self.note is None:
            logger.info("shape event %s: %s (users=%d)", kind, message, users)
            return
        try:
            self.note(kind, message, users)
        except Exception:
            logger.exception("shape event callback failed for %s: %s", kind, message)


class BaselineShape(BenchShape):
    """Steady `users`, all started within about a second, held for the run time."""

    test_type = "baseline"

    @classmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """Stages `start` (burst to users) and `hold`."""
        rate = burst_rate(settings, settings.users)
        return _ramp_hold(("start", "hold"), settings.users, rate, settings.run_time)


class LoadShape(BenchShape):
    """Ramp to `users` at spawn_rate, then hold until the run time."""

    test_type = "load"

    @classmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """Stages `ramp` and `hold`."""
        return _ramp_hold(("ramp", "hold"), settings.users, settings.spawn_rate, settings.run_time)


class SoakShape(BenchShape):
    """A long hold: ramp at spawn_rate, then hold until the run time, noting periodic checkpoints."""

    test_type = "soak"

    def __init__(self, *, settings: ShapeSettings) -> None:
        """Build the plan and arm the checkpoints."""
        super().__init__(settings=settings)
        self._checkpoints = 0

    @classmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """Stages `warmup` and `soak`."""
        return _ramp_hold(("warmup", "soak"), settings.users, settings.spawn_rate, settings.run_time)

    def checkpoint_interval(self) -> float:
        """Seconds between two soak checkpoints."""
        return self.settings.run_time / CHECKPOINTS

    def reset_time(self) -> None:
        """Restart the clock and re-arm stage events and checkpoints."""
        super().reset_time()
        self._checkpoints = 0

    def tick(self) -> tuple[int, float] | None:
        """As the base tick, plus a `soak_checkpoint` event each time a checkpoint time is passed."""
        target = super().tick()
        if target is None:
            return None
        interval = self.checkpoint_interval()
        due = min(int(self.get_run_time() // interval), CHECKPOINTS - 1)
        for k in range(self._checkpoints + 1, due + 1):
            message = f"checkpoint {k}/{CHECKPOINTS} t={k * interval:g}s"
            self._emit("soak_checkpoint", message, self.live_users())
        self._checkpoints = max(self._checkpoints, due)
        return target


class SpikeShape(BenchShape):
    """Steady `users`, a sudden jump to the spike height for a short window, then back to `users`."""

    test_type = "spike"

    @classmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """Stages `start`, `base` (to run_time/3), `spike`, `recover` (to the end).

        The spike lasts max(2 s, run_time/5), at most run_time/3, and both jumps use the spike height per
        second as spawn rate.
        """
        users, run_time = settings.users, settings.run_time
        high = spike_users(settings)
        rate = burst_rate(settings, high)
        begin = run_time / 3
        end = begin + min(max(2.0, run_time / 5), run_time / 3)
        spike = f"spike to {high} users (x{settings.spike_factor:g}) for {end - begin:g}s"
        return [
            *_ramp_hold(("start", "base"), users, burst_rate(settings, users), begin),
            _stage("spike", high, rate, (begin, end), "spike_start", spike),
            _stage("recover", users, rate, (end, run_time), "spike_end", f"back to {users} users"),
        ]


class StressShape(BenchShape):
    """Users stepped up in equal steps to the maximum, stopping early once the SLO breaks."""

    test_type = "stress"

    def __init__(self, *, settings: ShapeSettings) -> None:
        """Build the plan; the SLO is read from the runner's live stats."""
        super().__init__(settings=settings)
        self._stats_warned = False

    @classmethod
    def build_stages(cls, settings: ShapeSettings) -> list[Stage]:
        """Stages `step i/n`, each run_time/n long, at ceil(users*i/n) users reached at spawn_rate."""
        n = settings.stress_steps
        length = settings.run_time / n
        stages = []
        for i in range(1, n + 1):
            users = -(-settings.users * i // n)
            name = f"step {i}/{n}"
            span = ((i - 1) * length, settings.run_time if i == n else i * length)
            stages.append(_stage(name, users, settings.spawn_rate, span, "stress_step", f"{name} users={users}"))
        return stages

    def tick(self) -> tuple[int, float] | None:
        """As the base tick, but None (after a `slo_break` event) once a settled step breaks the SLO."""
        target = super().tick()
        if target is None:
            return None
        stage = self.current_stage()
        settle = min(SETTLE_S, (stage.end - stage.start) / 2)
        if self.get_run_time() - stage.start < settle:
            return target
        breach = self._slo_breach()
        if breach is None:
            return target
        users = self.live_users()
        self._emit("slo_break", f"{stage.name} users={users}: {breach}", users)
        self._stopped = True
        return None

    def _slo_breach(self) -> str | None:
        """Describe the measured p95 and failure ratio if they break the SLO, else None."""
        if self.runner is None:
            return None
        try:
            total = self.runner.stats.total
            p95 = total.get_current_response_time_percentile(0.95)
            fail_ratio = float(total.fail_ratio)
        except Exception:
            if not self._stats_warned:
                logger.warning("stress shape cannot read live stats; SLO not checked", exc_info=True)
                self._stats_warned = True
            return None
        slow = bool(p95) and float(p95 or 0) > self.settings.slo_p95_ms
        failing = fail_ratio > self.settings.slo_error_rate
        if not (slow or failing):
            return None
        return (
            f"p95_ms={p95} fail_ratio={fail_ratio:.4f} "
            f"(slo p95_ms<={self.settings.slo_p95_ms:g} fail_ratio<={self.settings.slo_error_rate:g})"
        )


SHAPES: dict[str, type[BenchShape]] = {
    cls.test_type: cls for cls in (BaselineShape, LoadShape, StressShape, SpikeShape, SoakShape)
}
"""Test type → shape class."""


def _shape_class(test_type: str) -> type[BenchShape]:
    """The class for `test_type`, or ValueError naming it."""
    if test_type == "complete":
        raise ValueError("test type 'complete' is not a shape: it runs the five shapes in turn elsewhere")
    if test_type not in SHAPES:
        raise ValueError(f"unknown test type {test_type!r}; expected one of: {', '.join(SHAPES)}")
    return SHAPES[test_type]


def make_shape(settings: ShapeSettings) -> BenchShape:
    """The shape instance for `settings.test_type`; ValueError for an unknown type or invalid settings."""
    return _shape_class(settings.test_type)(settings=settings)


def plan(settings: ShapeSettings) -> list[Stage]:
    """The validated plan for `settings` (SLO assumed held), as used by the shape's tick()."""
    validate(settings)
    return _shape_class(settings.test_type).build_stages(settings)


def profile(settings: ShapeSettings, step: float = 1.0) -> list[tuple[float, int]]:
    """Expected (t, users) every `step` seconds from 0 to the planned end, SLO assumed held."""
    if not (_finite(step) and step > 0):
        raise ValueError(f"profile step must be > 0, got {step!r}")
    planned = plan(settings)
    count = int(planned[-1].end / step + 1e-9) + 1
    return [(k * step, expected_users(planned, k * step)) for k in range(count)]
