"""Broker probes: a Redis list and a RabbitMQ queue, read from the broker itself each tick.

Redis list (`RedisListSpec`): producers `LPUSH` JSON items carrying an `enqueued_at` epoch, consumers pop
the other end, so the oldest item is `LINDEX key -1` (the demo target's layout). One pipelined round trip
per tick runs a Lua script (length, newest and oldest items, arrivals) plus the optional companion GETs.
- length: `LLEN`.
- backlog age: now - the oldest item's `enqueued_at`, or - `oldest_key`'s value (an epoch) when given;
  0 when the list is empty.
- publish rate: exact from `published_key`, a counter the producers `INCR`, when given. Otherwise the
  script counts the items at the head enqueued after the newest one seen last tick (a binary search, the
  list being newest first): exact while the queue holds a backlog, a lower bound when the consumer drains
  items within the same tick they arrive (those are never seen). For exact rates with no counter key, add
  a scrape probe on a worker that exports a processed counter.
- consume rate: published - Δlength over the tick (so exactly as exact as the publish rate).

RabbitMQ (`RabbitQueueSpec`): `queue_declare(passive=True)` over AMQP gives the ready depth and the
consumer count. AMQP exposes no message counters, so rates are the depth delta split by sign: the publish
rate is Δdepth/Δt when the queue grew, the consume rate -Δdepth/Δt when it shrank (each exact when the
other side is idle, a lower bound otherwise). No backlog age (the broker does not say without consuming).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pika
import redis
from pika.exceptions import AMQPError, ChannelClosedByBroker

from benchlab.metrics.sidecar.exposition import QueueReading
from benchlab.metrics.sidecar.queue import RabbitQueueSpec, RedisListSpec, Ticker, label_of

__all__ = ["RabbitQueueProbe", "RedisListProbe"]

_ARRIVALS_LUA = """
local key, mark, field, limit = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = redis.call('LLEN', key)
local function newer(i)
  local ok, item = pcall(cjson.decode, redis.call('LINDEX', key, i))
  if not ok or type(item) ~= 'table' then return false end
  local stamp = tonumber(item[field])
  return stamp ~= nil and stamp > mark
end
local lo, hi, probe = 0, math.min(n, limit), 0
while probe < hi and newer(probe) do lo = probe + 1; probe = probe * 2 + 1 end
if probe < hi then hi = probe end
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if newer(mid) then lo = mid + 1 else hi = mid end
end
return {n, redis.call('LINDEX', key, 0), redis.call('LINDEX', key, -1), lo}
"""
"""Length, newest item, oldest item, and how many items at the head are newer than ARGV[1], atomically."""


class RedisListProbe:
    """Length, rates and backlog age of a Redis list (see the module docstring)."""

    def __init__(
        self, *, spec: RedisListSpec, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.spec = spec
        """What is probed."""
        self._client = redis.Redis.from_url(spec.url, socket_timeout=spec.timeout, socket_connect_timeout=spec.timeout)
        self._script = self._client.register_script(_ARRIVALS_LUA)
        self._ticker = Ticker(clock)
        self._wall = wall
        self._mark: float | None = None

    def read(self) -> QueueReading:
        spec, t = self.spec, self._ticker
        pipe = self._client.pipeline(transaction=False)
        mark = "1e308" if self._mark is None or spec.published_key else repr(self._mark)
        limit = 0 if spec.published_key else spec.scan_limit
        self._script(keys=[spec.key], args=[mark, spec.age_field, limit], client=pipe)
        for extra in (spec.published_key, spec.oldest_key):
            if extra:
                pipe.get(extra)
        replies = pipe.execute()
        wall = self._wall()
        t.tick()
        length, newest, oldest, arrived = replies[0]
        extras = iter(replies[1:])
        counted = _number(next(extras)) if spec.published_key else None
        oldest_at = _number(next(extras)) if spec.oldest_key else None
        if oldest_at is None:
            oldest_at = self._stamp(oldest)
        newest_at = self._stamp(newest)
        if self._mark is None or (newest_at is not None and newest_at > self._mark):
            self._mark = newest_at if newest_at is not None else wall
        d_len = t.delta("length", float(length), counter=False)
        published = t.delta("published", counted) if spec.published_key else (float(arrived) if t.dt > 0 else None)
        consumed = max(0.0, published - d_len) if published is not None and d_len is not None else None
        return QueueReading(
            queue=label_of(spec),
            backend="redis",
            length=int(length),
            publish_rate=t.rate(published),
            consume_rate=t.rate(consumed),
            published=t.add("published", published),
            consumed=t.add("consumed", consumed),
            backlog_age_seconds=0.0 if not length else (max(0.0, wall - oldest_at) if oldest_at is not None else None),
        )

    def _stamp(self, item: bytes | None) -> float | None:
        if item is None:
            return None
        try:
            value = json.loads(item)
            return float(value[self.spec.age_field]) if isinstance(value, dict) else None
        except (ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        self._client.close()


class RabbitQueueProbe:
    """Depth and consumers of a RabbitMQ queue, rates from depth deltas (see the module docstring)."""

    def __init__(self, *, spec: RabbitQueueSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        """What is probed."""
        self._ticker = Ticker(clock)
        self._conn: Any = None
        self._channel: Any = None

    def read(self) -> QueueReading:
        try:
            if self._conn is None or not self._conn.is_open:
                params = pika.URLParameters(self.spec.url)
                params.socket_timeout = params.blocked_connection_timeout = self.spec.timeout
                params.connection_attempts = 1
                self._conn, self._channel = pika.BlockingConnection(params), None
            if self._channel is None or not self._channel.is_open:
                self._channel = self._conn.channel()
            method = self._channel.queue_declare(queue=self.spec.name, passive=True).method
        except ChannelClosedByBroker as exc:
            self._channel = None
            raise LookupError(f"RabbitMQ queue {self.spec.name!r}: {exc.reply_code} {exc.reply_text}") from None
        except AMQPError as exc:
            self.close()
            raise ConnectionError(f"RabbitMQ {self.spec.url}: {exc!r}") from None
        t = self._ticker
        t.tick()
        d_depth = t.delta("depth", float(method.message_count), counter=False)
        published = max(0.0, d_depth) if d_depth is not None else None
        consumed = max(0.0, -d_depth) if d_depth is not None else None
        return QueueReading(
            queue=label_of(self.spec),
            backend="rabbitmq",
            length=method.message_count,
            consumers=method.consumer_count,
            publish_rate=t.rate(published),
            consume_rate=t.rate(consumed),
            published=t.add("published", published),
            consumed=t.add("consumed", consumed),
        )

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(AMQPError):
                conn.close()


def _number(raw: bytes | str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
