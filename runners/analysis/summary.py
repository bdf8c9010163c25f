"""End-of-run summary: the counts of a run besides its samples, and the summary columns stored on its row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchlab.metrics.store.stats import EndpointStats


@dataclass(frozen=True)
class Totals:
    """Counts the summary reports besides the stored samples."""

    run_id: int
    status: str
    duration_s: float
    total_requests: int
    failures: int
    stored_samples: int
    spooled: int
    replayed: int
    pending: int


def load_seconds(rows: list[EndpointStats], totals: Totals) -> float:
    """Length of the load phase: first to last stored sample, so worker start-up and the final flush are left out.

    The run's duration when fewer than two distinct sample times span it.
    """
    total = next((r for r in rows if r.is_total), None)
    span = total.last_ts - total.first_ts if total is not None else 0.0
    return span if span > 0 else totals.duration_s


def run_columns(rows: list[EndpointStats], totals: Totals) -> dict[str, Any]:
    """Summary columns of the `runs` row."""
    total = next((r for r in rows if r.is_total), None)
    out: dict[str, Any] = {
        "total_requests": totals.total_requests,
        "total_failures": totals.failures,
        "stored_samples": totals.stored_samples,
        "spooled_samples": totals.spooled,
        "replayed_samples": totals.replayed,
        "rps": _rate(totals.stored_samples, load_seconds(rows, totals)),
    }
    if total is not None:
        out.update(
            error_rate=total.error_rate,
            mean_ms=total.mean_ms,
            p50_ms=total.p50_ms,
            p95_ms=total.p95_ms,
            p99_ms=total.p99_ms,
            max_ms=total.max_ms,
        )
    return out


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0
