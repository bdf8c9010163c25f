"""Two versions of the demo target, the candidate slower on /api/ only, and the Locust file that drives both.

Shared by the verdict tests (`benchlab run` and `compare`) and the `benchlab ci` tests. Health and generate requests
come from separate user classes, so the slower endpoint does not slow the other one's closed loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from target_fixture import Target, running_target

TWO_CLASS_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Health(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def health(self):
        self.client.get("/health")


class Generate(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def generate(self):
        self.client.post("/api/v1/content/generate", json={"type": "simple", "topic": "bench"})
"""


@contextmanager
def version_pair(delay_ms: int) -> Iterator[tuple[Target, Target]]:
    """The baseline (1.0) and a candidate (1.1 on the 1.0 profile) whose /api/ requests wait `delay_ms` more."""
    with (
        running_target(version="1.0") as base,
        running_target(version="1.1", profile="1.0", delay_ms=delay_ms) as slow,
    ):
        yield base, slow
