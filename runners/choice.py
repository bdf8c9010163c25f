"""Which shape drives a run: benchlab's for the test type, or the locustfile's own LoadTestShape (and its deadline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from locust import LoadTestShape

from benchlab.runners.settings import ShapeSettings

FILE_SHAPE_TAG: Final = ("shape", "file")
"""Tag (key, value) of a run driven by its locustfile's own LoadTestShape; its test type is the class name."""


@dataclass(frozen=True)
class ShapeChoice:
    """Which shape drives a run: the locustfile's own LoadTestShape, or benchlab's for the test type."""

    file_shape: LoadTestShape | None
    """The locustfile's shape instance that drives the run; None: benchlab's shape for `test_type`."""
    test_type: str
    """Test type recorded with the run: the given one, or the file's shape class name."""
    note: str | None
    """One line saying which shape applies, when the file defines one; None when it defines none."""


def choose(file_shapes: Sequence[LoadTestShape], settings: ShapeSettings) -> ShapeChoice:
    """A file's shape drives the run unless --test-type (or TEST_TYPE) was given; ValueError for several shapes.

    This follows Locust, whose headless run uses the file's shape over -u/-r, while an explicit --test-type is
    the more specific request and wins.
    """
    names = [type(s).__name__ for s in file_shapes]
    if not names:
        return ShapeChoice(None, settings.test_type, None)
    listed = ", ".join(names)
    if settings.test_type_given:
        note = f"--test-type {settings.test_type} given: benchlab's shape drives the run, not the locustfile's {listed}"
        return ShapeChoice(None, settings.test_type, note)
    if len(names) > 1:
        raise ValueError(
            f"the locustfile defines {len(names)} LoadTestShape classes ({listed}): keep one, or pass --test-type"
        )
    until = (
        f"until its tick() returns None or --run-time {settings.run_time:g}s"
        if settings.run_time_given
        else ("until its tick() returns None")
    )
    note = (
        f"the locustfile's shape {names[0]} drives the run {until} (test type {names[0]}, tag shape=file;"
        " --users and --spawn-rate do not apply; pass --test-type for benchlab's shapes)"
    )
    return ShapeChoice(file_shapes[0], names[0], note)


def file_deadline(settings: ShapeSettings) -> float | None:
    """When a run driven by a file's shape is stopped regardless: the run time if one was given, else never."""
    return settings.run_time if settings.run_time_given else None
