"""Flask app of the demo target: health, content, auth and job endpoints plus `/metrics`."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from werkzeug.exceptions import HTTPException

from benchlab.metrics.middleware import setup_metrics
from benchlab.runners.demo.auth import MIN_PASSWORD, TokenSigner, UserStore
from benchlab.runners.demo.content import CONTENT_TYPES, TEMPLATES, ContentStore
from benchlab.runners.demo.jobqueue import JobQueue, LocalJobQueue
from benchlab.runners.demo.profile import PROFILES, Profile
from benchlab.runners.demo.worker import JOB_KINDS, JobMetrics, QueueCollector, Worker

__all__ = ["SERVICE_NAME", "DemoState", "create_app", "state_of"]

SERVICE_NAME = "benchlab-demo"
"""`service` label of the request metrics."""

_STATE_KEY = "benchlab.demo"
_MAX_TOPIC = 100
_JOB_FLOAT_FIELDS = ("enqueued_at", "started_at", "finished_at", "duration_s")


@dataclass(kw_only=True)
class DemoState:
    """Everything one app instance owns; reachable with `state_of(app)`."""

    version: str
    profile: Profile
    queue: JobQueue
    registry: CollectorRegistry
    signer: TokenSigner
    worker: Worker
    content: ContentStore = field(default_factory=ContentStore)
    users: UserStore = field(default_factory=UserStore)
    started_at: float = field(default_factory=time.time)
    retained: list[bytes] = field(default_factory=list)
    """Memory the leaky profile keeps alive on purpose."""
    retained_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retain(self) -> None:
        """Keep `profile.leak_bytes` more bytes alive, up to the profile's cap."""
        size = self.profile.leak_bytes
        if size <= 0 or self.retained_bytes + size > self.profile.leak_cap_bytes:
            return
        chunk = b"\xa5" * size  # written, so the pages count in RSS
        with self.lock:
            self.retained.append(chunk)
            self.retained_bytes += size


def state_of(app: Flask) -> DemoState:
    """The DemoState of an app made by `create_app`."""
    state: DemoState = app.extensions[_STATE_KEY]
    return state


def create_app(
    *,
    version: str = "1.0",
    profile: Profile | None = None,
    queue: JobQueue | None = None,
    registry: CollectorRegistry | None = None,
    token_ttl: float = 30.0,
    secret: bytes | None = None,
) -> Flask:
    """Build the demo app. Its worker is created but not started: `state_of(app).worker.start()`."""
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    queue = queue if queue is not None else LocalJobQueue()
    profile = profile if profile is not None else PROFILES.get(version, PROFILES["1.0"])
    state = DemoState(
        version=version,
        profile=profile,
        queue=queue,
        registry=registry,
        signer=TokenSigner(secret=secret or os.urandom(32), access_ttl=token_ttl, refresh_ttl=token_ttl * 10),
        worker=Worker(queue, JobMetrics(registry)),
    )
    app = Flask(__name__)
    app.extensions[_STATE_KEY] = state
    registry.register(QueueCollector(queue))
    _register_app_metrics(state)
    generated = Counter("demo_content_generated", "Content items generated.", ["type"], registry=registry)
    app.before_request(_before_request)
    _add_status_routes(app)
    _add_content_routes(app, generated)
    _add_auth_routes(app)
    _add_job_routes(app)
    app.register_error_handler(HTTPException, _http_error)
    return setup_metrics(app, service_name=SERVICE_NAME, registry=registry)


def _register_app_metrics(state: DemoState) -> None:
    Info("demo_app", "Version and behaviour profile of the demo target.", registry=state.registry).info(
        {"version": state.version, "profile": state.profile.name}
    )
    retained = Gauge("demo_retained_bytes", "Bytes the profile keeps alive on purpose.", registry=state.registry)
    retained.set_function(lambda: state.retained_bytes)


def _state() -> DemoState:
    state: DemoState = current_app.extensions[_STATE_KEY]
    return state


def _before_request() -> None:
    state = _state()
    state.retain()
    if state.profile.extra_latency_s > 0 and request.path.startswith("/api/"):
        time.sleep(state.profile.extra_latency_s)  # cooperative under gevent's monkey-patching


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return jsonify(error=exc.name, detail=exc.description), exc.code or 500


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify(error="Bad Request", detail=message), 400


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _add_status_routes(app: Flask) -> None:
    @app.get("/health")
    def health() -> Response:
        return jsonify(status="healthy", version=_state().version)

    @app.get("/api/v1/status")
    def status() -> Response:
        state = _state()
        return jsonify(
            status="operational",
            version=state.version,
            profile=state.profile.name,
            uptime_seconds=round(time.time() - state.started_at, 3),
            queue_length=state.queue.length(),
            content_items=len(state.content),
            catalogue_size=len(state.content.catalogue_ids),
            users=len(state.users),
            retained_bytes=state.retained_bytes,
        )

    @app.get("/api/v1/templates")
    def templates() -> Response:
        return jsonify(templates=TEMPLATES, count=len(TEMPLATES))


def _add_content_routes(app: Flask, generated: Counter) -> None:
    @app.get("/api/v1/content/<int:content_id>")
    def get_content(content_id: int) -> Any:
        item = _state().content.get(content_id)
        if item is None:
            return jsonify(error="Not Found", detail=f"no content with id {content_id}"), 404
        return jsonify(item)

    @app.post("/api/v1/content/generate")
    def generate() -> Any:
        body = _json_body()
        if body is None:
            return _bad_request("expected a JSON object body")
        kind = CONTENT_TYPES.get(str(body.get("type", "")))
        if kind is None:
            return _bad_request(f"type must be one of {', '.join(CONTENT_TYPES)}")
        topic = body.get("topic", "performance")
        if not isinstance(topic, str) or not topic.strip() or len(topic) > _MAX_TOPIC:
            return _bad_request(f"topic must be a non-empty string of at most {_MAX_TOPIC} characters")
        state = _state()
        item = state.content.generate(kind, topic.strip(), state.profile.content_cost)
        generated.labels(kind.name).inc()
        return jsonify({**item, "version": state.version}), 201


def _add_auth_routes(app: Flask) -> None:
    @app.post("/api/v1/auth/login")
    def login() -> Any:
        body = _json_body() or {}
        user, password = body.get("username"), body.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            return _bad_request("username and password (strings) are required")
        state = _state()
        if not state.users.login(user, password):
            detail = f"bad credentials (passwords have at least {MIN_PASSWORD} characters)"
            return jsonify(error="Unauthorized", detail=detail), 401
        return jsonify(_tokens(state.signer, user, with_refresh=True))

    @app.post("/api/v1/auth/refresh")
    def refresh() -> Any:
        token = (_json_body() or {}).get("refresh_token")
        state = _state()
        claims = state.signer.verify(token, "refresh") if isinstance(token, str) else None
        if claims is None:
            return jsonify(error="Unauthorized", detail="refresh token invalid or expired"), 401
        return jsonify(_tokens(state.signer, claims.sub, with_refresh=False))

    @app.get("/api/v1/auth/verify")
    def verify() -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        state = _state()
        claims = state.signer.verify(token.strip(), "access") if scheme.lower() == "bearer" else None
        if claims is None:
            return jsonify(error="Unauthorized", detail="access token missing, invalid or expired"), 401
        return jsonify(valid=True, username=claims.sub, expires_in=round(state.signer.remaining(claims), 3))


def _tokens(signer: TokenSigner, user: str, *, with_refresh: bool) -> dict[str, Any]:
    tokens: dict[str, Any] = {
        "access_token": signer.issue(user, "access"),
        "token_type": "Bearer",
        "expires_in": signer.ttl["access"],
    }
    if with_refresh:
        tokens["refresh_token"] = signer.issue(user, "refresh")
        tokens["refresh_expires_in"] = signer.ttl["refresh"]
    return tokens


def _add_job_routes(app: Flask) -> None:
    @app.post("/api/v1/jobs")
    def enqueue() -> Any:
        body = _json_body()
        if body is None or body.get("kind") not in JOB_KINDS:
            return _bad_request(f"expected {{'kind': one of {', '.join(JOB_KINDS)}, 'payload': ...}}")
        job = _state().queue.enqueue(str(body["kind"]), body.get("payload"))
        return jsonify(job_id=job.id, status="queued", enqueued_at=job.enqueued_at), 202

    @app.get("/api/v1/jobs/<job_id>")
    def job_status(job_id: str) -> Any:
        status = _state().queue.status(job_id)
        if status is None:
            return jsonify(error="Not Found", detail=f"no job with id {job_id}"), 404
        out: dict[str, Any] = {"job_id": job_id, **status}
        for key in _JOB_FLOAT_FIELDS:
            if key in out:
                out[key] = float(out[key])
        return jsonify(out)
