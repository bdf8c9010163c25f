"""The request sample as the hot path records it: a plain tuple, cheapest to build and append."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Sample = tuple[float, str, str, float, int | None, int | None, int | None, bool, str | None]
"""(start epoch s, name, method, response time ms, response bytes, request bytes, status, success, error)."""

COLUMNS = (
    "ts",
    "name",
    "method",
    "response_time_ms",
    "response_length",
    "request_length",
    "status_code",
    "success",
    "error",
)
"""Columns of `request_samples` that a Sample fills, in tuple order (run_id and worker are added)."""


def as_row(sample: Sample, run_id: int, worker: str | None) -> dict[str, Any]:
    """A Sample as a dict of `request_samples` columns, with a timezone-aware timestamp."""
    row: dict[str, Any] = dict(zip(COLUMNS, sample, strict=True))
    row["ts"] = datetime.fromtimestamp(sample[0], UTC)
    row["run_id"] = run_id
    row["worker"] = worker
    return row
