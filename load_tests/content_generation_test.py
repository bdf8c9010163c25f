"""Content generation load test: simple, medium and complex content, each under its own name.

Every response is checked (status, JSON keys, type, word count); a wrong body is a failure
with a message. Some users read their item back by id right after generating it.

Run: `locust -f load_tests/content_generation_test.py --headless -u 20 -r 5 -t 1m --host http://127.0.0.1:8000`.
"""

from __future__ import annotations

from checks import ContentTasks
from locust import FastHttpUser, between


class ContentGenerationUser(FastHttpUser):
    """Generates content with a bias towards the cheap types, like editors drafting snippets."""

    wait_time = between(0.5, 2)
    tasks = [ContentTasks]
