"""The Markdown report, in the seed framework's shape: performance summary, SLI recommendations, alert
thresholds, the trend over the last days, capacity-planning guidance (and the verdict when there is a baseline)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from benchlab.runners.report import guidance
from benchlab.runners.report import verdict as verdict_report
from benchlab.runners.report.data import Capacity, EndpointRow, HistoryPoint, ReportData, RunInfo


def escape(text: str) -> str:
    """Text as literal Markdown: table pipes, emphasis and HTML (an endpoint named `<script>` stays text)."""
    for char in ("\\", "|", "*", "_", "`", "[", "]", "#"):
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _ms(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f} ms"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2%}"


def _num(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"


def _where(row: EndpointRow) -> str:
    return escape(f"{row.method} {row.name}".strip()) if row.name else "**all endpoints**"


def _times(r: EndpointRow) -> tuple[str, ...]:
    return (_ms(r.p50_ms), _ms(r.p95_ms), _ms(r.p99_ms), _ms(r.max_ms))


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def render(data: ReportData, *, days: int = 30) -> str:
    """The whole Markdown document."""
    lines = [f"# benchlab: {escape(data.title)}", "", _runs_line(data), ""]
    if data.comparison is not None:
        lines += [verdict_report.markdown(data.comparison, data.baseline_label, data.candidate_label, gating_only=True)]
        lines.append("")
    lines += _slo(data) + _summary(data) + _recommendations(data) + _trend(data, days) + _capacity(data)
    lines += _errors(data)
    if data.notes:
        lines += ["## Not shown", ""] + [f"- {escape(n)}" for n in data.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _runs_line(data: ReportData) -> str:
    def runs(side: str, infos: Sequence[RunInfo]) -> str:
        ids = ", ".join(f"#{r.run_id}" for r in infos)
        return f"{side} runs {ids}"

    first = data.candidate[0]
    parts = [
        f"scenario {escape(first.scenario)}",
        f"test type {escape(first.test_type)}",
        f"host {escape(first.host)}",
        f"{first.users} users",
        f"commit {escape((first.git_commit or 'none')[:12])}",
        f"benchlab {escape(first.benchlab_version)}",
        runs(f"candidate {escape(data.candidate_label)}", data.candidate),
    ]
    if data.baseline:
        parts.append(runs(f"baseline {escape(data.baseline_label)}", data.baseline))
    return "_" + "; ".join(parts) + f"; generated {data.generated_at}_"


def _slo(data: ReportData) -> list[str]:
    if not data.checks:
        return ["## SLO checks", "", "No SLO criterion applies to this scenario.", ""]
    passed, failed, unknown = guidance.check_counts(data.checks)
    body = []
    for c in data.checks:
        mark = "✓ pass" if c.passed else "✗ **FAIL**" if c.passed is False else "? unknown"
        where = escape(f"{c.method} {c.endpoint}".strip()) if c.endpoint else "all endpoints"
        value = "n/a" if c.value is None else f"{c.value:.4g}"
        body.append((escape(c.operation), where, escape(c.criterion.text), value, mark))
    head = f"## SLO checks: {passed} pass, {failed} fail" + (f", {unknown} unknown" if unknown else "")
    return [head, "", *_table(("Operation", "Applies to", "Criterion", "Measured", "Result"), body), ""]


def _summary(data: ReportData) -> list[str]:
    lines = ["## Performance summary", ""]
    if not data.endpoints:
        return [*lines, "No samples stored.", ""]
    header = ("Endpoint", "Requests", "Error rate", "RPS", "Mean", "p50", "p95", "p99", "Max")
    body = [
        (_where(r), f"{r.requests:,}", _pct(r.error_rate), _num(r.rps), _ms(r.mean_ms), *_times(r))
        for r in data.endpoints
    ]
    return [*lines, *_table(header, body), ""]


def _recommendations(data: ReportData) -> list[str]:
    recs = [guidance.recommend(r) for r in data.endpoints if r.requests]
    if not recs:
        return []
    lines = ["## SLI recommendations", ""]
    lines.append(
        f"From the observed distribution with headroom: a p95 objective {guidance.LATENCY_HEADROOM:.0%} above the"
        f" observed p95, an error-rate objective of twice the observed rate (at least"
        f" {guidance.MIN_ERROR_OBJECTIVE:.1%}), and a throughput floor of {guidance.RPS_FLOOR:.0%} of the observed"
        " rps; rounded up to round numbers."
    )
    lines.append("")
    header = ("Endpoint", "Observed p95", "p95 objective", "Observed errors", "Error objective", "Throughput objective")
    body = [
        (
            _rec_where(r),
            _ms(r.observed_p95_ms),
            f"p95 < {_ms(r.p95_objective_ms)}",
            _pct(r.observed_error_rate),
            f"< {_pct(r.error_objective)}",
            f"> {_num(r.rps_objective)} rps",
        )
        for r in recs
    ]
    lines += [*_table(header, body), "", "## Alert thresholds", ""]
    lines.append(
        f"Warning {guidance.WARNING_HEADROOM:.0%} above the observed p95 or at half the error objective;"
        " critical when the objective itself breaks. Alert on a sustained breach (5 minutes), not a single window."
    )
    lines.append("")
    alerts = ("Endpoint", "p95 warning", "p95 critical", "Error rate warning", "Error rate critical")
    rows = [
        (
            _rec_where(r),
            f"> {_ms(r.p95_warning_ms)}",
            f"> {_ms(r.p95_critical_ms)}",
            f"> {_pct(r.error_warning)}",
            f"> {_pct(r.error_critical)}",
        )
        for r in recs
    ]
    return [*lines, *_table(alerts, rows), ""]


def _rec_where(r: guidance.Recommendation) -> str:
    return escape(f"{r.method} {r.name}".strip()) if r.name else "**all endpoints**"


def _trend(data: ReportData, days: int) -> list[str]:
    lines = [f"## Trend over the last {days} days", ""]
    if not data.history:
        return [*lines, "No completed run of this scenario and test type in that time.", ""]
    by_version: dict[str, list[HistoryPoint]] = {}
    for p in data.history:
        by_version.setdefault(p.version, []).append(p)
    first_p95 = _median([p.p95_ms for p in data.history[:1]])
    body = []
    for version, points in by_version.items():
        p95 = _median([p.p95_ms for p in points])
        change = p95 / first_p95 - 1 if first_p95 and math.isfinite(p95) else math.nan
        changed = f"{change:+.1%}" if math.isfinite(change) else "n/a"
        rps = _num(_median([p.rps for p in points]))
        body.append((escape(version), str(len(points)), points[-1].started_at[:10], _ms(p95), rps, changed))
    header = ("Version", "Runs", "Last run", "Median p95", "Median rps", "p95 vs first run")
    lines += _table(header, body)
    if data.change_points is None:
        lines += ["", "Change points: pending the trend analysis."]
    elif data.change_points:
        marks = ", ".join(
            f"before run #{data.history[i].run_id} ({escape(data.history[i].version)})"
            for i in data.change_points
            if 0 <= i < len(data.history)
        )
        lines += ["", f"Change points: {marks}."]
    else:
        lines += ["", "Change points: none found."]
    return [*lines, ""]


def _median(values: Sequence[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(finite)) if finite else math.nan


def _capacity(data: ReportData) -> list[str]:
    lines = ["## Capacity planning", ""]
    cap: Capacity | None = data.capacity
    if cap is None:
        return [
            *lines,
            "No completed stress run of this scenario: run `benchlab run --test-type stress` to find it.",
            "",
        ]
    top = cap.max_sustained
    lines.append(f"From stress run #{cap.run_id} ({escape(cap.version)}):")
    lines.append("")
    if top is None:
        lines.append("- no step held the SLO: the maximum sustainable load is below the first step.")
    else:
        lines.append(
            f"- maximum sustainable load: **{top.users} users, {_num(top.rps)} requests/s** (p95 {_ms(top.p95_ms)})"
        )
    lines.append(
        f"- the SLO broke at: {escape(cap.breach)}" if cap.breach else "- the SLO held up to the run's maximum"
    )
    total = data.total
    room = guidance.headroom(cap, total.rps) if total else None
    if total is not None and room is not None:
        lines.append(f"- current load: {_num(total.rps)} requests/s, headroom {room:.0%} of the sustainable throughput")
    body = [
        (str(s.users), _num(s.rps), _ms(s.p95_ms), _pct(s.error_rate), "yes" if s.sustained else "**no**")
        for s in cap.steps
    ]
    return [*lines, "", *_table(("Users", "RPS", "p95", "Error rate", "Held the SLO"), body), ""]


def _errors(data: ReportData, limit: int = 20) -> list[str]:
    if not data.errors:
        return ["## Errors", "", "No failed requests.", ""]
    body = [
        (escape(f"{e.method} {e.endpoint}".strip()), escape(e.message[:200]), f"{e.count:,}")
        for e in data.errors[:limit]
    ]
    return ["## Errors", "", *_table(("Endpoint", "Message", "Count"), body), ""]
