"""Rendering of a comparison and of SLO checks: console table, Markdown and the JSON object."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchlab.runners.analysis.compare import Comparison, MetricResult
from benchlab.runners.analysis.slo import Check

MARK = {"regression": "REGRESSION", "improvement": "improved", "unchanged": "ok", "inconclusive": "inconclusive?"}
"""Verdicts as printed: readable without colour."""


def _where(r: MetricResult) -> str:
    if r.subject:
        return r.subject
    return f"{r.method} {r.endpoint}".strip() if r.endpoint else "Aggregated"


def _num(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if metric == "error_rate":
        return f"{value:.2%}"
    if metric == "rss_bytes":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"


def _change(r: MetricResult) -> tuple[str, str]:
    if r.change_kind == "absolute":
        fmt = "{:+.2%}"
        threshold = f"±{r.threshold:.2%}"
    else:
        fmt = "{:+.1%}"
        threshold = f"±{r.threshold:.0%}"
    change = fmt.format(r.change) if math.isfinite(r.change) else "n/a"
    if math.isfinite(r.ci_low) and math.isfinite(r.ci_high):
        interval = f"[{fmt.format(r.ci_low)}, {fmt.format(r.ci_high)}]"
    else:
        interval = "n/a"
    if r.noise_floor is not None:
        threshold += f" (noise {r.noise_floor:.1%})" if r.change_kind == "relative" else f" (noise {r.noise_floor:.2%})"
    return f"{change} {interval}", threshold


def rows(comparison: Comparison, *, gating_only: bool = False) -> list[tuple[str, ...]]:
    """One tuple of display cells per result: where, metric, baseline, candidate, change [CI], threshold, verdict."""
    out: list[tuple[str, ...]] = []
    for r in comparison.results:
        if gating_only and not r.gating:
            continue
        change, threshold = _change(r)
        verdict = MARK[r.verdict] + ("" if r.gating else " (info)") + (f": {r.note}" if r.note else "")
        out.append(
            (_where(r), r.metric, _num(r.baseline, r.metric), _num(r.candidate, r.metric), change, threshold, verdict)
        )
    return out


HEADER = ("Endpoint", "Metric", "Baseline", "Candidate", "Change [95% CI]", "Threshold", "Verdict")


def table(comparison: Comparison, baseline: str, candidate: str, *, gating_only: bool = False) -> str:
    """Fixed-width console table with the method and warnings below it."""
    body = rows(comparison, gating_only=gating_only)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(HEADER)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 1, 6) else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [f"verdict: {candidate} against {baseline}: {comparison.overall.upper()}", fmt.format(*HEADER)]
    lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines += [fmt.format(*row) for row in body]
    lines += _footer(comparison)
    return "\n".join(lines)


def markdown(comparison: Comparison, baseline: str, candidate: str, *, gating_only: bool = False) -> str:
    """GitHub-flavoured Markdown: a heading, the verdict table, method and warnings."""
    lines = [f"## benchlab: {_md(candidate)} against {_md(baseline)}: **{comparison.overall}**", ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---"]) + "|")
    for row in rows(comparison, gating_only=gating_only):
        lines.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    lines.append("")
    lines += [f"- {_md(line)}" for line in _footer(comparison)]
    return "\n".join(lines)


def _footer(comparison: Comparison) -> list[str]:
    m = comparison.method
    lines = [f"method: {m['name']}; {m['interval']}; {m['multiple_testing']}"]
    lines += [f"warning: {w}" for w in comparison.warnings]
    return lines


def _md(text: str) -> str:
    """Escape what Markdown (and HTML inside it) would interpret."""
    for char in ("\\", "|", "*", "_", "`", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def slo_lines(checks: Sequence[Check]) -> list[str]:
    """One line per SLO check: pass, FAIL or unknown, with the measured value."""
    out = []
    for c in checks:
        mark = "pass" if c.passed else "FAIL" if c.passed is False else "unknown"
        value = "n/a" if c.value is None else f"{c.value:.4g}"
        out.append(f"SLO {mark}: {c.operation}: {c.criterion.text} on {c.endpoint or 'all endpoints'} = {value}")
    return out


def as_json(
    comparison: Comparison | None, checks: Sequence[Check], *, baseline: str, candidate: str, comparison_id: int | None
) -> dict[str, Any]:
    """The `--json` object: verdicts, method and assumptions, SLO checks."""
    out: dict[str, Any] = {"baseline": baseline, "candidate": candidate, "comparison_id": comparison_id}
    if comparison is not None:
        out |= {
            "overall": comparison.overall,
            "results": [r.as_dict() for r in comparison.results],
            "method": comparison.method,
            "warnings": list(comparison.warnings),
        }
    out["slo"] = [
        {
            "operation": c.operation,
            "endpoint": c.endpoint,
            "method": c.method,
            "criterion": c.criterion.text,
            "value": c.value,
            "passed": c.passed,
        }
        for c in checks
    ]
    return out
