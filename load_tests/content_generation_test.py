"""Content generation load test: simple, medium and complex content, each under its own name.

Every response is checked (status, JSON keys, type, word count); a wrong body is a failure
with a message. Some users read their item back by id right after generating it.

Run: `locust -f load_tests/content_generation_test.py --headless -u 20 -r 5 -t 1m --host http://127.0.0.1:8000`.
"""

from __future__ import annotations

import random

from checks import CONTENT_TYPES, generate, read_content
from locust import FastHttpUser, between, task


class ContentGenerationUser(FastHttpUser):
    """Generates content with a bias towards the cheap types, like editors drafting snippets."""

    wait_time = between(0.5, 2)

    @task(6)
    def simple(self) -> None:
        generate(self.client, "simple")

    @task(3)
    def medium(self) -> None:
        generate(self.client, "medium")

    @task(1)
    def complex(self) -> None:
        generate(self.client, "complex")

    @task(2)
    def generate_then_read(self) -> None:
        item = generate(self.client, random.choice(CONTENT_TYPES))
        if item is not None:
            read_content(self.client, int(item["id"]))
