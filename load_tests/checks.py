"""Shared helpers of the benchlab Locust files: response checks and demo-target API calls.

Every helper takes a Locust client (HttpUser's or FastHttpUser's), sends its request with
`catch_response=True` and marks it a success or a failure with a message; none raises on a
bad response, so a broken target shows up as failures in the stats, never as a dead user.
Locust puts this directory on sys.path, so the Locust files import it as `checks`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from locust import TaskSet, task

CONTENT_TYPES = ("simple", "medium", "complex")
JOB_KINDS = ("notify", "render", "index")
TOPICS = ("observability", "load testing", "capacity planning", "caching", "queues", "release notes")
CONTENT_KEYS = ("id", "type", "content", "word_count")
TOKEN_KEYS = ("access_token", "expires_in")

Check = Callable[[dict[str, Any]], str | None]
"""Extra check of a JSON body: returns an error message, or None when the body is right."""


def _snippet(response: Any) -> str:
    try:
        text = response.text or ""
    except Exception:  # some clients raise on undecodable bodies
        text = ""
    error = getattr(response, "error", None)
    return f"{text[:120]!r}" + (f" ({error})" if error else "")


def expect_json(
    response: Any,
    *,
    status: int | Iterable[int] = 200,
    keys: Iterable[str] = (),
    check: Check | None = None,
) -> dict[str, Any] | None:
    """Mark `response` (from a `catch_response=True` block); return its JSON object if it is right."""
    allowed = {status} if isinstance(status, int) else set(status)
    if response.status_code not in allowed:
        response.failure(f"HTTP {response.status_code}, expected {sorted(allowed)}: {_snippet(response)}")
        return None
    try:
        body = response.json()
    except Exception:
        response.failure(f"body is not JSON: {_snippet(response)}")
        return None
    if not isinstance(body, dict):
        response.failure(f"expected a JSON object, got {type(body).__name__}")
        return None
    missing = [key for key in keys if key not in body]
    problem = f"missing keys {missing}" if missing else (check(body) if check is not None else None)
    if problem:
        response.failure(problem)
        return None
    response.success()
    return body


def expect_text(response: Any, *, contains: str, status: int = 200) -> bool:
    """Mark `response` a success if it has `status` and its body contains `contains`."""
    if response.status_code != status:
        response.failure(f"HTTP {response.status_code}, expected {status}: {_snippet(response)}")
        return False
    if contains not in (response.text or ""):
        response.failure(f"body lacks {contains!r}")
        return False
    response.success()
    return True


def get_json(client: Any, path: str, *, name: str | None = None, **expect: Any) -> dict[str, Any] | None:
    """GET `path` and check it with `expect_json(**expect)`."""
    with client.get(path, name=name or path, catch_response=True) as response:
        return expect_json(response, **expect)


def field_in(key: str, allowed: Iterable[Any]) -> Check:
    """A check that `body[key]` is one of `allowed`."""
    values = tuple(allowed)

    def check(body: dict[str, Any]) -> str | None:
        value = body.get(key)
        return None if value in values else f"{key} is {value!r}, expected one of {list(values)}"

    return check


def _content_check(kind: str) -> Check:
    def check(body: dict[str, Any]) -> str | None:
        if body["type"] != kind:
            return f"asked for {kind!r} content, got {body['type']!r}"
        words = len(str(body["content"]).split())
        if words == 0 or body["word_count"] != words:
            return f"word_count {body['word_count']} but the content has {words} words"
        return None

    return check


def generate(client: Any, kind: str, topic: str | None = None) -> dict[str, Any] | None:
    """POST a generation request of `kind`, reported as `/api/v1/content/generate [kind]`."""
    payload = {"type": kind, "topic": topic or random.choice(TOPICS)}
    name = f"/api/v1/content/generate [{kind}]"
    with client.post("/api/v1/content/generate", json=payload, name=name, catch_response=True) as response:
        return expect_json(response, status=(200, 201), keys=CONTENT_KEYS, check=_content_check(kind))


def read_content(client: Any, content_id: int) -> dict[str, Any] | None:
    """GET one content item, reported as `/api/v1/content/[id]`."""
    check = field_in("id", (content_id,))
    return get_json(
        client, f"/api/v1/content/{content_id}", name="/api/v1/content/[id]", keys=CONTENT_KEYS, check=check
    )


def enqueue_job(client: Any, kind: str) -> str | None:
    """POST a job; return its id when the target accepted it (202)."""
    payload = {"kind": kind, "payload": {"requested_at": time.time()}}
    with client.post("/api/v1/jobs", json=payload, catch_response=True) as response:
        body = expect_json(response, status=202, keys=("job_id",))
    return str(body["job_id"]) if body else None


def job_status(client: Any, job_id: str) -> str | None:
    """GET a job's status (`queued|running|done|failed`), reported as `/api/v1/jobs/[id]`."""
    check = field_in("status", ("queued", "running", "done", "failed"))
    body = get_json(client, f"/api/v1/jobs/{job_id}", name="/api/v1/jobs/[id]", keys=("status",), check=check)
    return str(body["status"]) if body else None


class TokenSession:
    """One user's login, tracking token expiry and refreshing before it (cheap: no greenlet of its own)."""

    def __init__(self, client: Any, *, username: str | None = None, margin: float = 0.25) -> None:
        self.client = client
        self.username = username or f"user-{uuid.uuid4().hex[:12]}"
        self.password = uuid.uuid4().hex
        self.margin = margin
        """Refresh once less than this fraction of the access token's lifetime is left."""
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.ttl = 0.0
        self.expires_at = 0.0

    def login(self) -> bool:
        """Log in (the demo target registers a new user on first login)."""
        credentials = {"username": self.username, "password": self.password}
        with self.client.post("/api/v1/auth/login", json=credentials, catch_response=True) as response:
            body = expect_json(response, keys=(*TOKEN_KEYS, "refresh_token"))
        if body is None:
            self.access_token = None
            return False
        self.refresh_token = str(body["refresh_token"])
        self._keep(body)
        return True

    def refresh(self) -> bool:
        """Swap the refresh token for a new access token; log in again if that is refused."""
        if self.refresh_token is None:
            return self.login()
        with self.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": self.refresh_token}, catch_response=True
        ) as response:
            if response.status_code == 401:  # refresh token expired: a new login is the normal path
                response.success()
                return self.login()
            body = expect_json(response, keys=TOKEN_KEYS)
        if body is None:
            return False
        self._keep(body)
        return True

    def ensure_fresh(self) -> bool:
        """Have an access token with more than `margin` of its lifetime left."""
        if self.access_token is None:
            return self.login()
        if self.expires_at - time.monotonic() < self.margin * self.ttl:
            return self.refresh()
        return True

    def headers(self) -> dict[str, str]:
        """The Authorization header of the current access token."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def verify(self) -> bool:
        """Check the (fresh) access token with the target."""
        if not self.ensure_fresh():
            return False
        check = field_in("valid", (True,))
        with self.client.get("/api/v1/auth/verify", headers=self.headers(), catch_response=True) as response:
            return expect_json(response, keys=("valid",), check=check) is not None

    def _keep(self, body: dict[str, Any]) -> None:
        self.access_token = str(body["access_token"])
        self.ttl = float(body["expires_in"])
        self.expires_at = time.monotonic() + self.ttl


class ContentTasks(TaskSet):
    """Content generation mix shared by the Locust files: mostly cheap types, some read-backs."""

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
