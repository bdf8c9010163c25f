"""The console table of a run: one fixed-width line per endpoint and a total line."""

from __future__ import annotations

from benchlab.metrics.store.stats import EndpointStats
from benchlab.runners.analysis.summary import Totals, load_seconds

_HEADER = ("Method", "Name", "Reqs", "Fails", "Err%", "RPS", "Mean", "Median", "p95", "p99", "Max", "Codes", "Bytes")


def table(rows: list[EndpointStats], totals: Totals) -> str:
    """Fixed-width table, one line per endpoint and a total line; times in milliseconds."""
    lines = []
    load_s = load_seconds(rows, totals)
    for r in rows:
        codes = " ".join(f"{k}:{v}" for k, v in sorted(r.status_counts.items()))
        rps = r.requests / load_s if load_s > 0 else 0.0
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
