"""The `--json` object of a run: totals and exact per-endpoint rows."""

from __future__ import annotations

from typing import Any

from benchlab.metrics.store.stats import EndpointStats
from benchlab.runners.analysis.summary import Totals, load_seconds, run_columns


def as_json(rows: list[EndpointStats], totals: Totals) -> dict[str, Any]:
    """The object `--json` prints last."""
    cols = run_columns(rows, totals)
    load_s = load_seconds(rows, totals)
    return {
        "run_id": totals.run_id,
        "status": totals.status,
        "duration_s": round(totals.duration_s, 3),
        "load_s": round(load_s, 3),
        "total_requests": totals.total_requests,
        "stored_samples": totals.stored_samples,
        "failures": totals.failures,
        "error_rate": cols.get("error_rate", 0.0),
        "rps": cols["rps"],
        "mean_ms": cols.get("mean_ms"),
        "p50_ms": cols.get("p50_ms"),
        "p95_ms": cols.get("p95_ms"),
        "p99_ms": cols.get("p99_ms"),
        "max_ms": cols.get("max_ms"),
        "spooled_samples": totals.spooled,
        "replayed_samples": totals.replayed,
        "pending_samples": totals.pending,
        "endpoints": [_endpoint_json(r, load_s) for r in rows if not r.is_total],
    }


def _endpoint_json(row: EndpointStats, duration: float) -> dict[str, Any]:
    return {
        "name": row.name,
        "method": row.method,
        "requests": row.requests,
        "failures": row.failures,
        "error_rate": row.error_rate,
        "rps": row.requests / duration if duration > 0 else 0.0,
        "mean_ms": row.mean_ms,
        "p50_ms": row.p50_ms,
        "p95_ms": row.p95_ms,
        "p99_ms": row.p99_ms,
        "max_ms": row.max_ms,
        "status_counts": row.status_counts,
        "response_bytes": row.response_bytes,
        "request_bytes": row.request_bytes,
    }


def suite_json(
    results: list[tuple[str, list[EndpointStats], Totals]], lost: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`--json` of one run, or of a suite: the last run's object, plus every run under `suite_runs`.

    `lost`: remote workers the last run lost (`lost_workers`: label, Locust's count, stored and missing samples).
    """
    _, rows, totals = results[-1]
    payload = as_json(rows, totals)
    if lost:
        payload["lost_workers"] = lost
    if len(results) > 1:
        payload["suite_runs"] = [as_json(r, t) | {"test_type": tt} for tt, r, t in results]
    return payload
