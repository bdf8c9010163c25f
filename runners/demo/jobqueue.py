"""Job queue of the demo target: a Redis list, or an in-process queue with the same interface.

Redis layout (every key starts with the configured prefix, e.g. `benchlab:demo:`):

- `{prefix}jobs` (list): the producer does `LPUSH {prefix}jobs <item>`, the worker `BRPOP`s from
  the other end, so jobs run first in, first out and the oldest waiting item is
  `LINDEX {prefix}jobs -1`. `LLEN {prefix}jobs` is the queue length.
- each item is JSON: `{"id": "<32 hex>", "kind": "<str>", "payload": <any JSON>,
  "enqueued_at": <epoch seconds, float>}`.
- `{prefix}job:{id}` (hash): `status` (`queued|running|done|failed`), `kind`, `enqueued_at`,
  then `started_at`, `finished_at`, `duration_s` and, on failure, `error`. Times are epoch
  seconds written as text. Each hash expires `STATUS_TTL_S` after its last update.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import redis

__all__ = ["STATUS_TTL_S", "Job", "JobQueue", "LocalJobQueue", "MalformedJob", "RedisJobQueue", "open_queue"]

STATUS_TTL_S = 3600
"""Seconds a job's status hash is kept after its last update."""


class MalformedJob(ValueError):
    """A queue item that is not a valid job (bad JSON or missing fields)."""


@dataclass(frozen=True, kw_only=True)
class Job:
    """One queued unit of work."""

    id: str
    """32 hex characters."""
    kind: str
    """What to do."""
    payload: Any
    """JSON-able parameters."""
    enqueued_at: float
    """Epoch seconds when it was queued."""

    def to_json(self) -> str:
        """The queue item."""
        return json.dumps({"id": self.id, "kind": self.kind, "payload": self.payload, "enqueued_at": self.enqueued_at})

    @classmethod
    def from_json(cls, item: str | bytes) -> Job:
        """Parse a queue item; raises MalformedJob."""
        try:
            raw = json.loads(item)
            return cls(
                id=str(raw["id"]),
                kind=str(raw["kind"]),
                payload=raw.get("payload"),
                enqueued_at=float(raw["enqueued_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedJob(f"malformed job item {item[:80]!r}: {exc}") from exc


class JobQueue(Protocol):
    """What the app and the worker need from a queue."""

    def enqueue(self, kind: str, payload: Any) -> Job:
        """Queue a new job with status `queued`."""

    def dequeue(self, timeout: float) -> Job | None:
        """The oldest job, waiting up to `timeout` seconds; None if none came."""

    def update(self, job_id: str, **fields: str | float) -> None:
        """Set fields of the job's status (e.g. status, started_at)."""

    def status(self, job_id: str) -> dict[str, str] | None:
        """The job's status fields as text, or None when unknown."""

    def length(self) -> int:
        """Jobs waiting."""

    def oldest_enqueued_at(self) -> float | None:
        """`enqueued_at` of the oldest waiting job, or None when empty."""

    def close(self) -> None:
        """Release connections."""


def _new_job(kind: str, payload: Any) -> Job:
    return Job(id=uuid.uuid4().hex, kind=kind, payload=payload, enqueued_at=time.time())


class LocalJobQueue:
    """In-process queue; a `threading.Condition` (a gevent one once `serve` has monkey-patched)."""

    def __init__(self, *, max_statuses: int = 100_000) -> None:
        self._cond = threading.Condition()
        self._jobs: collections.deque[Job] = collections.deque()
        self._statuses: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()
        self._max_statuses = max_statuses

    def enqueue(self, kind: str, payload: Any) -> Job:
        job = _new_job(kind, payload)
        with self._cond:
            self._statuses[job.id] = {"status": "queued", "kind": kind, "enqueued_at": repr(job.enqueued_at)}
            while len(self._statuses) > self._max_statuses:
                self._statuses.popitem(last=False)
            self._jobs.appendleft(job)
            self._cond.notify()
        return job

    def dequeue(self, timeout: float) -> Job | None:
        with self._cond:
            if not self._jobs:
                self._cond.wait(timeout)
            return self._jobs.pop() if self._jobs else None

    def update(self, job_id: str, **fields: str | float) -> None:
        with self._cond:
            status = self._statuses.get(job_id)
            if status is not None:
                status.update({k: v if isinstance(v, str) else repr(v) for k, v in fields.items()})

    def status(self, job_id: str) -> dict[str, str] | None:
        with self._cond:
            status = self._statuses.get(job_id)
            return dict(status) if status is not None else None

    def length(self) -> int:
        with self._cond:
            return len(self._jobs)

    def oldest_enqueued_at(self) -> float | None:
        with self._cond:
            return self._jobs[-1].enqueued_at if self._jobs else None

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()


class RedisJobQueue:
    """Queue in Redis with the layout described in this module's docstring."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._client = client
        self.prefix = prefix
        self.list_key = f"{prefix}jobs"

    def status_key(self, job_id: str) -> str:
        """Key of the job's status hash."""
        return f"{self.prefix}job:{job_id}"

    def enqueue(self, kind: str, payload: Any) -> Job:
        job = _new_job(kind, payload)
        key = self.status_key(job.id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping={"status": "queued", "kind": kind, "enqueued_at": repr(job.enqueued_at)})
        pipe.expire(key, STATUS_TTL_S)
        pipe.lpush(self.list_key, job.to_json())
        pipe.execute()
        return job

    def dequeue(self, timeout: float) -> Job | None:
        popped = self._client.brpop([self.list_key], timeout=timeout)
        if popped is None:
            return None
        return Job.from_json(popped[1])

    def update(self, job_id: str, **fields: str | float) -> None:
        key = self.status_key(job_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping={k: v if isinstance(v, str) else repr(v) for k, v in fields.items()})
        pipe.expire(key, STATUS_TTL_S)
        pipe.execute()

    def status(self, job_id: str) -> dict[str, str] | None:
        raw: dict[Any, Any] = self._client.hgetall(self.status_key(job_id))
        return {_text(k): _text(v) for k, v in raw.items()} or None

    def length(self) -> int:
        return int(self._client.llen(self.list_key))

    def oldest_enqueued_at(self) -> float | None:
        item = self._client.lindex(self.list_key, -1)
        if item is None:
            return None
        try:
            return Job.from_json(item).enqueued_at
        except MalformedJob:
            return None

    def close(self) -> None:
        self._client.close()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_queue(redis_url: str | None, prefix: str) -> JobQueue:
    """A RedisJobQueue on `redis_url` (checked with PING), or a LocalJobQueue when it is None."""
    if redis_url is None:
        return LocalJobQueue()
    client = redis.Redis.from_url(redis_url, decode_responses=True, health_check_interval=30)
    client.ping()
    return RedisJobQueue(client, prefix=prefix)
