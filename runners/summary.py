"""End-of-run summary: the exact per-endpoint table, the run's summary columns and the --json object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchlab.metrics.store.query import EndpointStats


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


def run_columns(rows: list[EndpointStats], totals: Totals) -> dict[str, Any]:
    """Summary columns of the `runs` row."""
    total = next((r for r in rows if r.is_total), None)
    out: dict[str, Any] = {
        "total_requests": totals.total_requests,
        "total_failures": totals.failures,
        "stored_samples": totals.stored_samples,
        "spooled_samples": totals.spooled,
        "replayed_samples": totals.replayed,
        "rps": totals.stored_samples / totals.duration_s if totals.duration_s > 0 else 0.0,
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


def as_json(rows: list[EndpointStats], totals: Totals) -> dict[str, Any]:
    """The object `--json` prints last."""
    cols = run_columns(rows, totals)
    return {
        "run_id": totals.run_id,
        "status": totals.status,
        "duration_s": round(totals.duration_s, 3),
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
        "endpoints": [_endpoint_json(r, totals.duration_s) for r in rows if not r.is_total],
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


_HEADER = ("Method", "Name", "Reqs", "Fails", "Err%", "RPS", "Mean", "Median", "p95", "p99", "Max", "Codes", "Bytes")


def table(rows: list[EndpointStats], totals: Totals) -> str:
    """Fixed-width table, one line per endpoint and a total line; times in milliseconds."""
    lines = []
    for r in rows:
        codes = " ".join(f"{k}:{v}" for k, v in sorted(r.status_counts.items()))
        rps = r.requests / totals.duration_s if totals.duration_s > 0 else 0.0
        lines.append(
            (
                r.method or "",
                r.name or "Aggregated",
                str(r.requests),
                str(r.failures),
                f"{100 * r.error_rate:.2f}",
                f"{rps:.1f}",
                f"{r.mean_ms:.2f}",
                f"{r.p50_ms:.2f}",
                f"{r.p95_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.max_ms:.2f}",
                codes,
                _human_bytes(r.response_bytes + r.request_bytes),
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(_HEADER)] if lines else []
    if not lines:
        return f"run {totals.run_id} ({totals.status}): no samples stored"
    fmt = "  ".join(f"{{:{'<' if i in (0, 1, 11) else '>'}{w}}}" for i, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [fmt.format(*_HEADER), rule]
    out += [fmt.format(*line) for line in lines[:-1]] + [rule, fmt.format(*lines[-1])]
    out.append(
        f"run {totals.run_id} {totals.status} in {totals.duration_s:.1f} s: locust counted {totals.total_requests}"
        f" requests, {totals.stored_samples} samples stored"
        f" ({totals.spooled} spooled, {totals.replayed} replayed, {totals.pending} pending)"
    )
    return "\n".join(out)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
