"""benchlab.metrics.middleware on a raw WSGI app, a Flask app and raw ASGI apps (driven with asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from benchlab.metrics.middleware import AsgiMetrics, WsgiMetrics, route_label, setup_metrics

SERVICE = "unit-svc"


def count(registry: CollectorRegistry, method: str, path: str, status: str) -> float:
    labels = {"service": SERVICE, "method": method, "path": path, "status": status}
    return registry.get_sample_value("http_requests_total", labels) or 0.0


def observed(registry: CollectorRegistry, method: str, path: str) -> float:
    labels = {"service": SERVICE, "method": method, "path": path}
    return registry.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


# --- WSGI -------------------------------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"made ", environ["PATH_INFO"].encode()]


def wsgi_call(app: Any, path: str, method: str = "GET") -> tuple[str, bytes, Any]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: seen.append(status))
    return seen[0] if seen else "", b"".join(body), body


def test_wsgi_counts_when_the_body_is_closed_and_collapses_ids() -> None:
    registry = CollectorRegistry()
    app = setup_metrics(wsgi_app, service_name=SERVICE, registry=registry)
    assert isinstance(app, WsgiMetrics) and app.registry is registry
    status, content, body = wsgi_call(app, "/items/123", "POST")
    assert (status, content) == ("201 Created", b"made /items/123")
    assert count(registry, "POST", "/items/{id}", "201") == 0  # still streaming
    body.close()
    assert count(registry, "POST", "/items/{id}", "201") == 1
    assert observed(registry, "POST", "/items/{id}") == 1
    wsgi_call(app, "/items/0b7e4c1e-52b1-4b7a-9f1c-2d3e4f5a6b7c/parts/9")[2].close()
    assert count(registry, "GET", "/items/{id}/parts/{id}", "201") == 1


def test_wsgi_exception_counts_500_and_propagates() -> None:
    registry = CollectorRegistry()
    app = setup_metrics(wsgi_app, service_name=SERVICE, registry=registry)
    with pytest.raises(RuntimeError):
        wsgi_call(app, "/boom")
    assert count(registry, "GET", "/boom", "500") == 1


def test_wsgi_serves_its_registry_not_the_global_one() -> None:
    app = setup_metrics(wsgi_app, service_name=SERVICE, path="/prom")
    wsgi_call(app, "/x")[2].close()
    status, content, body = wsgi_call(app, "/prom")
    body.close()
    assert status.startswith("200")
    text = content.decode()
    assert 'http_requests_total{method="GET",path="/x",service="unit-svc",status="201"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "python_gc_objects_collected_total" not in text  # no default collectors: not the global registry


def test_flask_uses_route_templates() -> None:
    flask_app = Flask("unit")

    @flask_app.get("/users/<int:user_id>/posts/<slug>")
    def post(user_id: int, slug: str) -> dict[str, Any]:
        return {"user": user_id, "slug": slug}

    registry = CollectorRegistry()
    assert setup_metrics(flask_app, service_name=SERVICE, registry=registry) is flask_app
    client = flask_app.test_client()
    with client.get("/users/7/posts/hello") as response:
        assert response.json == {"user": 7, "slug": "hello"}
    assert count(registry, "GET", "/users/{user_id}/posts/{slug}", "200") == 1  # counted on close
    with client.get("/users/8/posts/other") as response:
        assert response.status_code == 200
    with client.get("/nothing/42") as response:
        assert response.status_code == 404
    assert count(registry, "GET", "/users/{user_id}/posts/{slug}", "200") == 2
    assert count(registry, "GET", "/nothing/{id}", "404") == 1
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and b'path="/users/{user_id}/posts/{slug}"' in scrape.data


def test_route_label() -> None:
    assert route_label("/a/12/b") == "/a/{id}/b"
    assert route_label("/a/deadbeefdeadbeef00") == "/a/{id}"
    assert route_label("/a/v1/b2") == "/a/v1/b2"
    assert route_label("/ignored/1", "/things/<int:thing_id>") == "/things/{thing_id}"
    assert route_label("") == "/"


# --- ASGI -------------------------------------------------------------------------------------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    request = await receive()
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"got " + request.get("body", b"")})


class RoutedAsgiApp:
    """Object with an async __call__ that stores its route in the scope, like Starlette's router."""

    class Route:
        path_format = "/orders/{order_id}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = self.Route()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def asgi_call(app: Any, path: str, method: str = "GET", scope_type: str = "http") -> list[dict[str, Any]]:
    scope = {"type": scope_type, "method": method, "path": path, "headers": [], "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if scope_type == "lifespan":
            return {"type": "lifespan.startup"}
        return {"type": "http.request", "body": b"payload", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_function_app_counts_and_serves_metrics() -> None:
    registry = CollectorRegistry()
    app = setup_metrics(asgi_app, service_name=SERVICE, registry=registry)
    assert isinstance(app, AsgiMetrics)
    sent = asgi_call(app, "/jobs/55", "PUT")
    assert sent[0]["status"] == 202 and sent[1]["body"] == b"got payload"
    assert count(registry, "PUT", "/jobs/{id}", "202") == 1
    assert observed(registry, "PUT", "/jobs/{id}") == 1
    scrape = asgi_call(app, "/metrics")
    assert scrape[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in scrape[1:]).decode()
    assert 'http_requests_total{method="PUT",path="/jobs/{id}",service="unit-svc",status="202"} 1.0' in body


def test_asgi_exception_and_lifespan() -> None:
    registry = CollectorRegistry()
    app = setup_metrics(asgi_app, service_name=SERVICE, registry=registry)
    with pytest.raises(RuntimeError):
        asgi_call(app, "/boom", "POST")
    assert count(registry, "POST", "/boom", "500") == 1
    assert asgi_call(app, "", scope_type="lifespan") == [{"type": "lifespan.startup.complete"}]
    assert (
        registry.get_sample_value(
            "http_requests_total", {"service": SERVICE, "method": "GET", "path": "/", "status": "500"}
        )
        is None
    )


def test_asgi_object_app_uses_scope_route() -> None:
    registry = CollectorRegistry()
    app = setup_metrics(RoutedAsgiApp(), service_name=SERVICE, registry=registry)
    assert isinstance(app, AsgiMetrics)
    asgi_call(app, "/orders/abc-xyz", "DELETE")
    assert count(registry, "DELETE", "/orders/{order_id}", "200") == 1
    asgi_call(app, "/orders/1", "BREW")
    assert count(registry, "OTHER", "/orders/{order_id}", "200") == 1
