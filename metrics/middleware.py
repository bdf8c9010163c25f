"""Request count and latency metrics for any WSGI or ASGI app, and its `/metrics` endpoint.

`setup_metrics` wraps an app and records, per request:

- `http_requests_total{service,method,path,status}`: a counter;
- `http_request_duration_seconds{service,method,path}`: a histogram, in seconds.

`path` is the route template when the framework gives one (Flask's url rule, Starlette's
`scope["route"]`, or whatever the app stores under `ROUTE_KEY` in the WSGI environ or ASGI
scope); otherwise the raw path with numeric, UUID and long hex segments collapsed to `{id}`.
The registry is served in the Prometheus text format at `path` (default `/metrics`).
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app, make_wsgi_app

__all__ = ["DEFAULT_BUCKETS", "ROUTE_KEY", "route_label", "setup_metrics"]

ROUTE_KEY = "benchlab.route"
"""WSGI environ / ASGI scope key where an app may store the route template of the request."""

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency buckets in seconds: finer than client_python's default below 5 ms."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,})$"
)
_FLASK_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_label(raw_path: str, template: object = None) -> str:
    """Return the `path` label: the route template if given, else `raw_path` with ids collapsed."""
    if isinstance(template, str) and template:
        return _FLASK_PARAM.sub(r"{\1}", template)
    segments = raw_path.split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in segments) or "/"


class _Instruments:
    """The two metrics of one wrapped app, bound to a service name."""

    def __init__(self, *, service: str, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        self.service = service
        self.requests = Counter(
            "http_requests",
            "HTTP requests handled, by route template and status code.",
            ["service", "method", "path", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to the end of its response body.",
            ["service", "method", "path"],
            registry=registry,
            buckets=buckets,
        )

    def record(self, method: str, path: str, status: str, started: float) -> None:
        """Count one finished request and observe its duration since `started` (perf_counter)."""
        elapsed = time.perf_counter() - started
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(self.service, method, path, status).inc()
        self.latency.labels(self.service, method, path).observe(elapsed)


class _ClosingBody:
    """A WSGI response body that calls `on_close` once, after the server closes it."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body = body
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


class WsgiMetrics:
    """WSGI middleware: times each request until its body is closed and serves the registry."""

    def __init__(self, app: WsgiApp, *, instruments: _Instruments, registry: CollectorRegistry, path: str):
        self.app = app
        self.registry = registry
        self._instruments = instruments
        self._path = path
        self._exporter: WsgiApp = make_wsgi_app(registry)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["500"]

        def recording_start_response(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        target = self._exporter if environ.get("PATH_INFO") == self._path else self.app
        try:
            body = target(environ, recording_start_response)
        except BaseException:
            self._record(environ, status[0], started)
            raise
        return _ClosingBody(body, lambda: self._record(environ, status[0], started))

    def _record(self, environ: dict[str, Any], status: str, started: float) -> None:
        path = route_label(environ.get("PATH_INFO", "") or "/", environ.get(ROUTE_KEY))
        self._instruments.record(environ.get("REQUEST_METHOD", "GET"), path, status, started)


class AsgiMetrics:
    """ASGI middleware: times each HTTP request until the app returns and serves the registry."""

    def __init__(self, app: AsgiApp, *, instruments: _Instruments, registry: CollectorRegistry, path: str):
        self.app = app
        self.registry = registry
        self._instruments = instruments
        self._path = path
        self._exporter: AsgiApp = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "500"

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = str(message.get("status", 500))
            await send(message)

        target = self._exporter if scope.get("path") == self._path else self.app
        try:
            await target(scope, receive, recording_send)
        finally:
            path = route_label(scope.get("path", "") or "/", _asgi_template(scope))
            self._instruments.record(scope.get("method", "GET"), path, status, started)


def _asgi_template(scope: Scope) -> object:
    """Route template stored in the scope by the app or by Starlette/FastAPI routing, if any."""
    explicit = scope.get(ROUTE_KEY)
    if explicit:
        return explicit
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None)


def _is_asgi(app: object) -> bool:
    """True for `async def app(scope, receive, send)` callables and objects with an async `__call__`."""
    return inspect.iscoroutinefunction(app) or (callable(app) and inspect.iscoroutinefunction(app.__call__))


def setup_metrics(
    app: Any,
    *,
    service_name: str,
    registry: CollectorRegistry | None = None,
    path: str = "/metrics",
    buckets: tuple[float, ...] = DEFAULT_BUCKETS,
) -> Any:
    """Instrument `app` and serve `registry` at `path`; return the app to serve.

    A Flask app (anything with `wsgi_app` and `before_request`) is returned itself, with its
    `wsgi_app` wrapped and its url rule recorded as the route template; a raw WSGI or ASGI
    callable is returned wrapped. `registry` defaults to a new `CollectorRegistry`, never the
    global one; the wrapper keeps it as `.registry`.
    """
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    instruments = _Instruments(service=service_name, registry=registry, buckets=buckets)
    if hasattr(app, "wsgi_app") and hasattr(app, "before_request"):
        app.before_request(_flask_route_recorder())
        app.wsgi_app = WsgiMetrics(app.wsgi_app, instruments=instruments, registry=registry, path=path)
        return app
    if _is_asgi(app):
        return AsgiMetrics(app, instruments=instruments, registry=registry, path=path)
    return WsgiMetrics(app, instruments=instruments, registry=registry, path=path)


def _flask_route_recorder() -> Callable[[], None]:
    """A Flask `before_request` hook that copies the matched url rule into the environ."""
    from flask import request  # imported only for Flask apps, which already imported it

    def record_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    return record_route
