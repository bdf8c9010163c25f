"""The request sample as the hot path records it: a plain tuple, cheapest to build and append."""

from __future__ import annotations

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
