"""`create_baseline_report`: the seed framework's Markdown report of a set of baselines.

It works on baselines alone (from the store or from files). The SLI and alert suggestions are the rules of
thumb of `benchlab report` (`runners.report.guidance`), not statistics; `benchlab compare` and `benchlab trend`
are where changes are judged. `benchlab report --format md` is the richer report of stored runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchlab.baseline import PerformanceBaseline


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _summary(baselines: Sequence[PerformanceBaseline]) -> list[str]:
    lines = [
        "| Operation | Version | Date (UTC) | Users | Requests | RPS | Mean ms | p50 ms | p95 ms | p99 ms | Max ms "
        "| Error rate | Duration s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in baselines:
        lines.append(
            f"| {_cell(b.operation)} | {_cell(b.version)} | {b.timestamp[:19].replace('T', ' ')} "
            f"| {b.concurrent_users} | {b.total_requests} | {b.requests_per_second:.1f} | {_ms(b.response_time_mean)} "
            f"| {_ms(b.response_time_median)} | {_ms(b.response_time_p95)} | {_ms(b.response_time_p99)} "
            f"| {_ms(b.response_time_max)} | {b.error_rate:.2%} | {b.test_duration:.0f} |"
        )
    return lines


def _recommendations(latest: dict[str, PerformanceBaseline]) -> list[str]:
    """The reports' rules of thumb (`runners.report.guidance.recommend`) on each operation's latest totals."""
    from benchlab.runners.report.data import EndpointRow
    from benchlab.runners.report.guidance import recommend

    sli = ["## SLI recommendations", "", "Headroom over the latest baseline of each operation (rules of thumb).", ""]
    alerts = ["## Alert threshold suggestions", ""]
    for op, b in latest.items():
        row = EndpointRow(
            name="",
            method="",
            requests=b.total_requests,
            failures=b.error_count,
            rps=b.requests_per_second,
            mean_ms=b.response_time_mean,
            p50_ms=b.response_time_median,
            p95_ms=b.response_time_p95,
            p99_ms=b.response_time_p99,
            max_ms=b.response_time_max,
        )
        r = recommend(row)
        sli.append(
            f"- **{_cell(op)}**: p95 < {_ms(r.p95_objective_ms)} ms (observed {_ms(r.observed_p95_ms)}), "
            f"error rate < {r.error_objective:.2%}, "
            f"throughput > {r.rps_objective:.1f} rps at {b.concurrent_users} users"
        )
        alerts.append(
            f"- **{_cell(op)}**: warn when p95 > {_ms(r.p95_warning_ms)} ms or the error rate > {r.error_warning:.2%}; "
            f"critical when p95 > {_ms(r.p95_critical_ms)} ms or the error rate > {r.error_critical:.2%}"
        )
    return [*sli, "", *alerts]


def _trends(by_op: dict[str, list[PerformanceBaseline]]) -> list[str]:
    lines = ["## Trend", ""]
    rows = []
    for op, items in by_op.items():
        if len(items) < 2:
            continue
        first, last = items[0], items[-1]
        p95 = (last.response_time_p95 / first.response_time_p95 - 1) if first.response_time_p95 > 0 else None
        rps = (last.requests_per_second / first.requests_per_second - 1) if first.requests_per_second > 0 else None
        rows.append(
            f"- **{_cell(op)}** ({len(items)} baselines, {first.version} → {last.version}): p95 "
            f"{'n/a' if p95 is None else f'{p95:+.1%}'}, throughput {'n/a' if rps is None else f'{rps:+.1%}'} "
            "(first to last; `benchlab compare` judges whether a change is real)"
        )
    return lines + (rows or ["Fewer than two baselines of any operation: no trend to show."])


def _capacity(latest: dict[str, PerformanceBaseline]) -> list[str]:
    lines = ["## Capacity planning", ""]
    for op, b in latest.items():
        per_user = b.requests_per_second / b.concurrent_users if b.concurrent_users else 0.0
        lines.append(
            f"- **{_cell(op)}**: {per_user:.2f} rps per user at {b.concurrent_users} users; linear extrapolation only "
            "holds below the breaking point of a stress run (`StressTestScenario`)"
        )
    return lines


def create_baseline_report(baselines: Sequence[PerformanceBaseline], path: str | Path | None = None) -> str:
    """Markdown: summary table, SLI and alert suggestions, trend and capacity notes; written to `path` if given."""
    ordered = sorted(baselines, key=lambda b: b.timestamp)
    by_op: dict[str, list[PerformanceBaseline]] = defaultdict(list)
    for b in ordered:
        by_op[b.operation].append(b)
    latest = {op: items[-1] for op, items in by_op.items()}
    lines = [
        "# Performance baseline report",
        "",
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC from {len(ordered)} baseline(s).",
        "",
        "## Performance summary",
        "",
        *_summary(ordered),
        "",
        *_recommendations(latest),
        "",
        *_trends(by_op),
        "",
        *_capacity(latest),
        "",
    ]
    text = "\n".join(lines)
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return text
