"""Queue probes against the real Redis and RabbitMQ on 127.0.0.1, and a real Prometheus page."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pika
import pytest
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from benchlab.metrics.sidecar.broker import RabbitQueueProbe, RedisListProbe
from benchlab.metrics.sidecar.queue import RabbitQueueSpec, RedisListSpec, ScrapeSpec
from benchlab.metrics.sidecar.scrape import ScrapeProbe

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class Clock:
    """Monotonic time the test moves, so rates are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique Redis key prefix, its keys deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    name = f"benchlab_test_{uuid.uuid4().hex}:"
    yield name
    keys = list(client.scan_iter(match=name + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def push(client: redis.Redis, key: str, count: int, *, enqueued_at: float | None = None) -> None:
    for _ in range(count):
        client.lpush(
            key, json.dumps({"id": uuid.uuid4().hex, "kind": "render", "enqueued_at": enqueued_at or time.time()})
        )


def test_redis_list_length_rates_and_backlog_age(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    key, clock = prefix + "jobs", Clock()
    probe = RedisListProbe(spec=RedisListSpec(url=REDIS_URL, key=key, label="jobs"), clock=clock)
    first = probe.read()
    assert (first.queue, first.backend, first.length, first.backlog_age_seconds) == ("jobs", "redis", 0, 0.0)
    assert first.publish_rate is None
    push(client, key, 10)
    pushed_at = time.time()
    clock.now += 2.0
    time.sleep(0.3)
    second = probe.read()
    assert (second.length, second.publish_rate, second.consume_rate) == (10, 5.0, 0.0)
    assert second.backlog_age_seconds is not None and 0.3 <= second.backlog_age_seconds < 5
    for _ in range(4):
        client.rpop(key)  # the four oldest
    push(client, key, 6)
    clock.now += 2.0
    third = probe.read()
    assert (third.length, third.publish_rate, third.consume_rate) == (12, 3.0, 2.0)
    assert (third.published, third.consumed) == (16.0, 4.0)
    assert third.backlog_age_seconds is not None and third.backlog_age_seconds >= time.time() - pushed_at - 0.5
    client.delete(key)
    clock.now += 1.0
    drained = probe.read()
    assert (drained.length, drained.backlog_age_seconds, drained.publish_rate, drained.consume_rate) == (
        0,
        0.0,
        0.0,
        12.0,
    )
    probe.close()


def test_redis_companion_keys_make_rates_and_age_exact(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    key, counter, oldest, clock = prefix + "jobs", prefix + "published", prefix + "oldest", Clock()
    spec = RedisListSpec(url=REDIS_URL, key=key, published_key=counter, oldest_key=oldest)
    probe = RedisListProbe(spec=spec, clock=clock)
    client.set(counter, 100)
    push(client, key, 3)
    probe.read()
    push(client, key, 7, enqueued_at=1.0)  # stamps too old to be seen as arrivals: the counter says 7
    client.incrby(counter, 7)
    client.rpop(key)
    client.rpop(key)
    client.set(oldest, repr(time.time() - 42.0))
    clock.now += 2.0
    reading = probe.read()
    assert (reading.length, reading.publish_rate, reading.consume_rate) == (8, 3.5, 1.0)
    assert reading.backlog_age_seconds == pytest.approx(42.0, abs=1.0)
    probe.close()


@pytest.fixture
def rabbit_queue() -> Iterator[str]:
    """A test-only RabbitMQ queue, deleted afterwards."""
    name = f"benchlab_test_{uuid.uuid4().hex}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_declare(queue=name)
    yield name
    conn.channel().queue_delete(queue=name)
    conn.close()


def test_rabbitmq_depth_consumers_and_rates(rabbit_queue: str) -> None:
    clock = Clock()
    probe = RabbitQueueProbe(spec=RabbitQueueSpec(url=AMQP_URL, name=rabbit_queue), clock=clock)
    first = probe.read()
    assert (first.queue, first.backend, first.length, first.consumers) == (rabbit_queue, "rabbitmq", 0, 0)
    producer = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = producer.channel()
    channel.confirm_delivery()  # each publish returns once the broker has it
    for i in range(20):
        channel.basic_publish(exchange="", routing_key=rabbit_queue, body=f"job {i}".encode())
    clock.now += 2.0
    published = probe.read()
    assert (published.length, published.consumers, published.publish_rate, published.consume_rate) == (20, 0, 10.0, 0.0)

    consumer = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    cchannel = consumer.channel()
    cchannel.basic_qos(prefetch_count=8)
    received: list[bytes] = []
    cchannel.basic_consume(rabbit_queue, on_message_callback=lambda ch, method, props, body: received.append(body))
    deadline = time.monotonic() + 5
    while len(received) < 8 and time.monotonic() < deadline:
        consumer.process_data_events(time_limit=0.1)
    assert len(received) == 8  # unacked, so the broker stops at the prefetch
    clock.now += 2.0
    consumed = probe.read()
    assert (consumed.length, consumed.consumers, consumed.publish_rate, consumed.consume_rate) == (12, 1, 0.0, 4.0)
    assert (consumed.published, consumed.consumed) == (20.0, 8.0)
    consumer.close()
    producer.close()
    probe.close()


def test_rabbitmq_missing_queue_is_a_clear_error() -> None:
    probe = RabbitQueueProbe(spec=RabbitQueueSpec(url=AMQP_URL, name=f"benchlab_test_missing_{uuid.uuid4().hex}"))
    with pytest.raises(LookupError, match="404"):
        probe.read()
    probe.close()


def test_scrape_maps_a_worker_page_to_processing_errors_and_rates() -> None:
    registry = CollectorRegistry()
    processed = Counter("demo_jobs_processed", "Jobs finished.", ["kind"], registry=registry)
    failed = Counter("demo_jobs_failed", "Jobs failed.", ["kind"], registry=registry)
    timing = Histogram("demo_job_processing_seconds", "Time per job.", ["kind"], registry=registry)
    length = Gauge("demo_queue_length", "Jobs waiting.", registry=registry)
    age = Gauge("demo_queue_oldest_age_seconds", "Oldest job's age.", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    clock = Clock()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        probe = ScrapeProbe(spec=ScrapeSpec(url=url, label="jobs"), clock=clock)
        length.set(5)
        first = probe.read()
        assert (first.queue, first.backend, first.length, first.consume_rate) == ("jobs", "scrape", 5, None)
        for i in range(20):
            kind = "render" if i % 2 else "index"
            processed.labels(kind).inc()
            timing.labels(kind).observe(0.05 if i % 2 else 0.15)
        failed.labels("index").inc(2)
        length.set(9)
        age.set(3.25)
        clock.now += 2.0
        second = probe.read()
        assert second.consume_rate == 10.0 and second.publish_rate == 12.0  # 20 done and 4 more waiting
        assert second.processing_seconds == pytest.approx(0.1)
        assert second.error_rate == pytest.approx(0.1)
        assert (second.length, second.backlog_age_seconds) == (9, 3.25)
        clock.now += 1.0
        idle = probe.read()
        assert (idle.consume_rate, idle.processing_seconds, idle.error_rate) == (0.0, None, None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
