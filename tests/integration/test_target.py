"""The demo target as a real process: every endpoint over HTTP, versions, leaks, metrics, Redis queue."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from target_fixture import Target, running_target

from benchlab.runners.demo.jobqueue import RedisJobQueue

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with running_target(version="1.0", token_ttl=1.0) as running:
        yield running


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix; every key under it is deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"benchlab:test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def samples(target: Target) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the target's /metrics, keyed by (name, labels)."""
    status, text = target.get("/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


def wait_for_job(target: Target, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = target.get(f"/api/v1/jobs/{job_id}")
        assert status == 200, body
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.02)


def test_health_status_and_reads(target: Target) -> None:
    assert target.get("/health") == (200, {"status": "healthy", "version": "1.0"})
    status, body = target.get("/api/v1/status")
    assert status == 200 and body["profile"] == "1.0" and body["catalogue_size"] >= 1
    status, body = target.get("/api/v1/templates")
    assert status == 200 and {t["type"] for t in body["templates"]} == {"simple", "medium", "complex"}
    status, item = target.get("/api/v1/content/1")
    assert status == 200 and item["id"] == 1 and item["word_count"] == len(item["content"].split()) > 0
    for missing in ("/api/v1/content/987654321", "/api/v1/content/not-a-number", "/no/such/page"):
        status, body = target.get(missing)
        assert status == 404 and "error" in body, (missing, body)


def test_generate_each_type_and_read_back(target: Target) -> None:
    words = {}
    for kind in ("simple", "medium", "complex"):
        status, item = target.post("/api/v1/content/generate", {"type": kind, "topic": "queues"})
        assert status == 201, item
        assert item["type"] == kind and item["version"] == "1.0"
        assert item["word_count"] == len(item["content"].split())
        words[kind] = item["word_count"]
        assert target.get(f"/api/v1/content/{item['id']}") == (200, {k: v for k, v in item.items() if k != "version"})
    assert words["simple"] < words["medium"] < words["complex"]
    for bad in ({"type": "huge"}, {"topic": "x"}, {"type": "simple", "topic": ""}, ["simple"]):
        status, body = target.post("/api/v1/content/generate", bad)
        assert status == 400 and "error" in body, bad


def test_auth_login_verify_refresh_and_expiry(target: Target) -> None:
    user = f"ann-{uuid.uuid4().hex[:6]}"
    status, tokens = target.post("/api/v1/auth/login", {"username": user, "password": "correct-horse"})
    assert status == 200 and tokens["expires_in"] == 1.0 and tokens["refresh_token"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, body = target.get("/api/v1/auth/verify", bearer)
    assert status == 200 and body["username"] == user and 0 < body["expires_in"] <= 1.0
    assert target.post("/api/v1/auth/login", {"username": user, "password": "wrong-horse"})[0] == 401
    assert target.post("/api/v1/auth/login", {"username": "bob", "password": "short"})[0] == 401
    assert target.get("/api/v1/auth/verify")[0] == 401
    forged = tokens["access_token"][:-2] + ("AA" if not tokens["access_token"].endswith("AA") else "BB")
    assert target.get("/api/v1/auth/verify", {"Authorization": f"Bearer {forged}"})[0] == 401
    # an access token is not a refresh token
    assert target.post("/api/v1/auth/refresh", {"refresh_token": tokens["access_token"]})[0] == 401
    time.sleep(1.1)
    assert target.get("/api/v1/auth/verify", bearer)[0] == 401, "access token outlived its TTL"
    status, fresh = target.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status == 200 and fresh["access_token"] != tokens["access_token"]
    assert target.get("/api/v1/auth/verify", {"Authorization": f"Bearer {fresh['access_token']}"})[0] == 200


def test_local_jobs_run_and_fail(target: Target) -> None:
    before = samples(target)
    ids = [target.post("/api/v1/jobs", {"kind": "render", "payload": {"n": i}}) for i in range(3)]
    assert all(status == 202 for status, _ in ids)
    for _, body in ids:
        job = wait_for_job(target, body["job_id"])
        assert job["status"] == "done" and job["finished_at"] >= job["started_at"] >= job["enqueued_at"]
    status, body = target.post("/api/v1/jobs", {"kind": "index", "payload": {"fail": True}})
    assert status == 202
    failed = wait_for_job(target, body["job_id"])
    assert failed["status"] == "failed" and "fail" in failed["error"]
    assert target.post("/api/v1/jobs", {"kind": "mine-bitcoin"})[0] == 400
    assert target.get("/api/v1/jobs/0123456789abcdef")[0] == 404
    after = samples(target)
    assert (
        value(after, "demo_jobs_processed_total", kind="render")
        - value(before, "demo_jobs_processed_total", kind="render")
        == 3
    )
    assert (
        value(after, "demo_jobs_failed_total", kind="index") - value(before, "demo_jobs_failed_total", kind="index")
        == 1
    )
    assert value(after, "demo_job_processing_seconds_count", kind="render") >= 3


def test_metrics_exposition(target: Target) -> None:
    for _ in range(3):
        target.get("/api/v1/content/2")
    target.get("/api/v1/content/424242")
    found = samples(target)
    route = "/api/v1/content/{content_id}"
    base = {"service": "benchlab-demo", "method": "GET", "path": route}
    assert value(found, "http_requests_total", status="200", **base) >= 3
    assert value(found, "http_requests_total", status="404", **base) >= 1
    assert value(found, "http_request_duration_seconds_count", **base) >= 4
    assert value(found, "http_request_duration_seconds_bucket", le="+Inf", **base) >= 4
    assert not any(n == "http_requests_total" and ("path", "/api/v1/content/424242") in ls for n, ls in found)
    for name in ("demo_queue_length", "demo_queue_oldest_age_seconds", "demo_retained_bytes"):
        assert (name, frozenset()) in found, name
    assert ("demo_app_info", frozenset({("version", "1.0"), ("profile", "1.0")})) in found


def complex_ms(target: Target) -> float:
    started = time.perf_counter()
    status, _ = target.post("/api/v1/content/generate", {"type": "complex", "topic": "speed"})
    assert status == 201
    return (time.perf_counter() - started) * 1000


def test_version_1_1_is_slower_on_complex_generation() -> None:
    with running_target(version="1.0") as v10, running_target(version="1.1") as v11:
        assert v11.get("/api/v1/status")[1]["profile"] == "1.1"
        for _ in range(3):  # warm up both
            complex_ms(v10), complex_ms(v11)
        pairs = [(complex_ms(v10), complex_ms(v11)) for _ in range(30)]  # interleaved: same noise for both
    median10 = statistics.median(a for a, _ in pairs)
    median11 = statistics.median(b for _, b in pairs)
    assert median11 > median10 * 1.25, (median10, median11)


def rss_growth(target: Target, requests: int) -> int:
    process = psutil.Process(target.pid)
    for _ in range(50):
        target.get("/health")
    before = process.memory_info().rss
    for _ in range(requests):
        target.get("/health")
    return process.memory_info().rss - before


def test_leaky_profile_grows_rss() -> None:
    with running_target(profile="leaky", leak_kb=64) as leaky, running_target(version="1.0") as steady:
        leaked = rss_growth(leaky, 300)
        kept = rss_growth(steady, 300)
        retained = leaky.get("/api/v1/status")[1]["retained_bytes"]
    assert retained >= 350 * 64 * 1024
    assert leaked > 300 * 64 * 1024 * 0.7, leaked
    assert kept < leaked / 4, (kept, leaked)


def test_redis_queue_layout(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    queue = RedisJobQueue(client, prefix=redis_prefix)
    first = queue.enqueue("render", {"page": 1})
    second = queue.enqueue("notify", None)
    assert client.llen(f"{redis_prefix}jobs") == 2 == queue.length()
    oldest = json.loads(str(client.lindex(f"{redis_prefix}jobs", -1)))
    assert oldest == {"id": first.id, "kind": "render", "payload": {"page": 1}, "enqueued_at": first.enqueued_at}
    assert client.hgetall(f"{redis_prefix}job:{first.id}")["status"] == "queued"
    assert 0 < client.ttl(f"{redis_prefix}job:{first.id}") <= 3600
    assert queue.oldest_enqueued_at() == first.enqueued_at
    taken = [queue.dequeue(1.0), queue.dequeue(1.0)]
    assert [job.id for job in taken if job] == [first.id, second.id]
    assert queue.dequeue(0.1) is None
    queue.close()


def test_redis_backed_target_processes_jobs(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    with running_target(redis_url=REDIS_URL, queue_prefix=redis_prefix) as target:
        ids = [target.post("/api/v1/jobs", {"kind": kind})[1]["job_id"] for kind in ("notify", "render", "index")]
        client.lpush(f"{redis_prefix}jobs", "not json")  # a broken producer must not kill the worker
        failing = target.post("/api/v1/jobs", {"kind": "render", "payload": {"fail": True}})[1]["job_id"]
        for job_id in ids:
            assert wait_for_job(target, job_id)["status"] == "done"
            stored = client.hgetall(f"{redis_prefix}job:{job_id}")
            assert stored["status"] == "done"
            assert float(stored["finished_at"]) >= float(stored["started_at"]) >= float(stored["enqueued_at"]) > 0
        assert wait_for_job(target, failing)["status"] == "failed"
        assert client.llen(f"{redis_prefix}jobs") == 0
        found = samples(target)
        assert value(found, "demo_jobs_failed_total", kind="malformed") == 1
        assert value(found, "demo_jobs_processed_total") == 5
        assert value(found, "demo_queue_length") == 0
        assert target.get("/api/v1/status")[1]["queue_length"] == 0
    client.close()
