"""General API load test of the demo target: five user patterns, weighted like real traffic.

- HealthCheckUser: monitoring polls of /health, /api/v1/status and /metrics.
- ContentGenerationUser: generates simple, medium and complex content and reads it back.
- APIExplorationUser: visits reading templates, catalogue items by id, an unknown id and status.
- HeavyWorkloadUser: concurrent bursts of heavy generation and jobs, little think time.
- MixedWorkloadUser: a logged-in user mixing everything, with think time.

Run: `locust -f load_tests/locustfile.py --headless -u 50 -r 10 -t 1m --host http://127.0.0.1:8000`.
"""

from __future__ import annotations

import random

import gevent
from checks import (
    CONTENT_TYPES,
    JOB_KINDS,
    ContentTasks,
    TokenSession,
    enqueue_job,
    expect_text,
    generate,
    get_json,
    job_status,
    read_content,
)
from gevent.pool import Group
from locust import FastHttpUser, between, task

STATUS_KEYS = ("status", "version")


def catalogue_size(client: object) -> int:
    """How many catalogue items (ids 1..N) the target has, from /api/v1/status."""
    body = get_json(client, "/api/v1/status", keys=(*STATUS_KEYS, "catalogue_size"))
    return int(body["catalogue_size"]) if body else 1


class HealthCheckUser(FastHttpUser):
    """A monitoring system: each poll checks health, status and scrapes the metrics."""

    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def poll(self) -> None:
        get_json(self.client, "/health", keys=STATUS_KEYS)
        get_json(self.client, "/api/v1/status", keys=STATUS_KEYS)
        with self.client.get("/metrics", catch_response=True) as response:
            expect_text(response, contains="http_requests_total")


class ContentGenerationUser(FastHttpUser):
    """Core use: generate content of each type and fetch what was generated."""

    weight = 3
    wait_time = between(1, 3)
    tasks = [ContentTasks]


class APIExplorationUser(FastHttpUser):
    """Browses the read endpoints: each visit reads templates, a few items, a stale link and status."""

    weight = 3
    wait_time = between(0.5, 2)
    catalogue = 1

    def on_start(self) -> None:
        self.catalogue = catalogue_size(self.client)

    @task
    def visit(self) -> None:
        get_json(self.client, "/api/v1/templates", keys=("templates",))
        for content_id in random.sample(range(1, self.catalogue + 1), k=min(self.catalogue, random.randint(1, 3))):
            read_content(self.client, content_id)
        missing = 10_000_000 + random.randint(0, 1_000_000)
        get_json(
            self.client, f"/api/v1/content/{missing}", name="/api/v1/content/[unknown]", status=404, keys=("error",)
        )
        get_json(self.client, "/api/v1/status", keys=STATUS_KEYS)


class HeavyWorkloadUser(FastHttpUser):
    """High intensity: concurrent bursts of heavy generation and job submissions."""

    weight = 1
    wait_time = between(0, 0.5)
    concurrency = 4

    def _together(self, *calls: tuple) -> None:
        """Run `(function, *args)` calls concurrently on this user's connection pool."""
        group = Group()
        for function, *args in calls:
            group.spawn(function, self.client, *args)
        try:
            group.join()
        finally:
            group.kill(block=False)

    @task(3)
    def generation_burst(self) -> None:
        self._together((generate, "complex"), (generate, "medium"), (generate, "complex"))

    @task(2)
    def job_burst(self) -> None:
        job_ids = [enqueue_job(self.client, random.choice(JOB_KINDS)) for _ in range(3)]
        first = next((job_id for job_id in job_ids if job_id), None)
        for _ in range(10):
            if first is None or job_status(self.client, first) in ("done", "failed", None):
                return
            gevent.sleep(0.1)


class MixedWorkloadUser(FastHttpUser):
    """A logged-in user doing a realistic mix of reads, generation, jobs and token checks."""

    weight = 4
    wait_time = between(1, 3)
    catalogue = 1

    def on_start(self) -> None:
        self.session = TokenSession(self.client)
        if self.session.login():
            self.session.verify()
        self.catalogue = catalogue_size(self.client)

    @task(1)
    def health(self) -> None:
        get_json(self.client, "/health", keys=STATUS_KEYS)

    @task(2)
    def templates(self) -> None:
        get_json(self.client, "/api/v1/templates", keys=("templates",))

    @task(3)
    def content(self) -> None:
        read_content(self.client, random.randint(1, self.catalogue))

    @task(6)
    def generation(self) -> None:
        generate(self.client, random.choices(CONTENT_TYPES, weights=(3, 2, 1))[0])

    @task(2)
    def verify(self) -> None:
        self.session.verify()

    @task(1)
    def job(self) -> None:
        enqueue_job(self.client, random.choice(JOB_KINDS))
