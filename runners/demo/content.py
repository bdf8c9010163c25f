"""Content generation of the demo target: real CPU work (hash rounds) plus deterministic text."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTENT_TYPES", "TEMPLATES", "ContentStore", "ContentType", "burn", "compose"]


@dataclass(frozen=True, kw_only=True)
class ContentType:
    """Shape and cost of one kind of generated content."""

    name: str
    """`simple`, `medium` or `complex`."""
    words: int
    """Words in the generated text."""
    rounds: int
    """SHA-256 rounds at cost 1.0 (about 0.8 us each here: 1, 5 and 20 ms)."""
    sections: tuple[str, ...]
    """Section titles of the template."""


CONTENT_TYPES: dict[str, ContentType] = {
    t.name: t
    for t in (
        ContentType(name="simple", words=60, rounds=1_400, sections=("summary",)),
        ContentType(name="medium", words=250, rounds=7_000, sections=("intro", "body", "summary")),
        ContentType(
            name="complex",
            words=900,
            rounds=27_000,
            sections=("abstract", "background", "analysis", "results", "discussion", "summary"),
        ),
    )
}

TEMPLATES: list[dict[str, Any]] = [
    {"id": f"tpl-{t.name}", "type": t.name, "words": t.words, "sections": list(t.sections)}
    for t in CONTENT_TYPES.values()
]
"""What `GET /api/v1/templates` lists: one template per content type."""

_WORDS = (
    "latency throughput request response queue worker cache index replica shard cluster node service "
    "client server token session payload schema metric histogram percentile baseline regression release "
    "version profile memory thread process socket buffer batch stream event retry timeout backoff budget "
    "capacity scale load spike soak stress trend signal alert dashboard report sample median tail burst "
    "steady warm cold fast slow stable measured reliable bounded concurrent parallel serial durable "
    "eventual consistent available partition"
)
_VOCABULARY = tuple(_WORDS.split())


def burn(seed: bytes, rounds: int) -> bytes:
    """Chain `rounds` SHA-256 hashes starting from `seed`; return the last digest."""
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


def compose(topic: str, words: int, seed: bytes) -> str:
    """Deterministic text of `words` words about `topic`, in sentences of 6 to 15 words."""
    stream = _word_indices(seed)
    out: list[str] = []
    while len(out) < words:
        length = min(6 + next(stream) % 10, words - len(out))
        sentence = [topic if i == 0 else _VOCABULARY[next(stream) % len(_VOCABULARY)] for i in range(length)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out.extend(sentence)
    return " ".join(out)


def _word_indices(seed: bytes) -> itertools.chain[int]:
    """Endless byte stream of SHA-256(seed || counter) digests."""
    return itertools.chain.from_iterable(
        hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in itertools.count()
    )


class ContentStore:
    """Generated content by integer id: a fixed catalogue plus the latest `capacity` generated items."""

    def __init__(self, *, catalogue_size: int = 20, capacity: int = 1000) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._items: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._catalogue: dict[int, dict[str, Any]] = {}
        self._next_id = catalogue_size + 1
        kinds = list(CONTENT_TYPES.values())
        for item_id in range(1, catalogue_size + 1):
            kind = kinds[(item_id - 1) % len(kinds)]
            seed = f"catalogue-{item_id}".encode()
            self._catalogue[item_id] = _item(item_id, kind, "benchmarking", compose("benchmarking", kind.words, seed))

    @property
    def catalogue_ids(self) -> list[int]:
        """Ids that always exist."""
        return sorted(self._catalogue)

    def generate(self, kind: ContentType, topic: str, cost: float) -> dict[str, Any]:
        """Do the CPU work of `kind` scaled by `cost`, store the result and return it."""
        started = time.perf_counter()
        with self._lock:
            item_id = self._next_id
            self._next_id += 1
        digest = burn(f"{item_id}:{kind.name}:{topic}".encode(), max(1, round(kind.rounds * cost)))
        item = _item(item_id, kind, topic, compose(topic, kind.words, digest))
        item["generation_ms"] = round((time.perf_counter() - started) * 1000, 3)
        with self._lock:
            self._items[item_id] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return item

    def get(self, item_id: int) -> dict[str, Any] | None:
        """The item with `item_id`, or None when unknown or evicted."""
        with self._lock:
            return self._catalogue.get(item_id) or self._items.get(item_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._catalogue) + len(self._items)


def _item(item_id: int, kind: ContentType, topic: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": kind.name,
        "topic": topic,
        "template": f"tpl-{kind.name}",
        "content": text,
        "word_count": len(text.split()),
    }
