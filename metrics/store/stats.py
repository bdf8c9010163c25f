"""Exact aggregates of one endpoint of a run: plain data, shared by the store's queries and the analysis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

TOTAL = ("", "")
"""(name, method) key of the all-endpoints row."""
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class EndpointStats:
    """Aggregates of one endpoint (name and method), or of all of them when `name` is empty."""

    name: str
    method: str
    requests: int
    failures: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    response_bytes: int
    request_bytes: int
    first_ts: float
    last_ts: float
    status_counts: dict[str, int] = field(default_factory=dict)
    """Status code (as text; "none" for requests that got no response) → count."""

    @property
    def error_rate(self) -> float:
        """Failures per request."""
        return self.failures / self.requests if self.requests else 0.0

    @property
    def is_total(self) -> bool:
        """True for the all-endpoints row."""
        return (self.name, self.method) == TOTAL


class WindowBlock(NamedTuple):
    """One run's one endpoint, aggregated by window and latency bucket: parallel arrays, one entry a group."""

    run_id: int
    name: str
    method: str
    window: np.ndarray
    """Window index (floor of epoch seconds / window length)."""
    bucket: np.ndarray
    """Latency bucket (floor of ln(ms) x buckets per e-fold)."""
    requests: np.ndarray
    """Requests in the group."""
    failures: np.ndarray
    """Failed requests in the group."""
    sum_ms: np.ndarray
    """Sum of their response times."""
