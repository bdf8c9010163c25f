"""Pure parts of selfbench: figures against goals, the table and JSON line, steady rps, percentile errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

QUANTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}
"""Percentiles `benchlab run --json` reports, as numpy.percentile arguments."""


class MeasureError(RuntimeError):
    """A figure could not be measured; the message says why."""


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One measured figure and its goal."""

    key: str
    """P1, P2, ...; a suffix marks a variant (P2/300k)."""
    label: str
    """What was measured, as the table shows it."""
    value: float
    """The measured figure (a ratio, a rate, or a fraction shown as a percentage)."""
    op: str
    """">=" or "<=": how `value` must compare to `goal`."""
    goal: float
    """The target."""
    unit: str = "ratio"
    """ratio | rate | percent | seconds | ms | MB: how value and goal are printed."""
    details: dict[str, Any] = field(default_factory=dict)
    """Raw measurements behind the figure, for the JSON line."""

    @property
    def passed(self) -> bool:
        """True when the goal is met."""
        return meets(self.value, self.op, self.goal)


def meets(value: float, op: str, goal: float) -> bool:
    """`value op goal` for op ">=" or "<="."""
    if op == ">=":
        return value >= goal
    if op == "<=":
        return value <= goal
    raise ValueError(f"unknown comparison {op!r}")


def show(value: float, unit: str) -> str:
    """A value as the table prints it: 0.985 · 152,300 · 0.012% · 2.41 s · 212 MB."""
    if unit == "rate":
        return f"{value:,.0f}"
    if unit == "percent":
        return f"{100 * value:.3f}%"
    if unit == "seconds":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:.3f}"


def table_line(fig: Figure) -> str:
    """`P1  rps with collectors / bare locust   0.985  goal >= 0.97  PASS`."""
    verdict = "PASS" if fig.passed else "MISS"
    return f"{fig.key:<8}{fig.label:<44}{show(fig.value, fig.unit):>10}  goal {fig.op} {show_goal(fig):<8}  {verdict}"


def show_goal(fig: Figure) -> str:
    """A goal as the table prints it: 0.97 · 150,000 · 0.5% · 3 s · 1,074 MB (rounded; the JSON line is exact)."""
    if fig.unit == "rate":
        return f"{fig.goal:,.0f}"
    if fig.unit == "percent":
        return f"{100 * fig.goal:g}%"
    if fig.unit == "seconds":
        return f"{fig.goal:g} s"
    if fig.unit == "MB":
        return f"{fig.goal:,.0f} MB"
    if fig.unit == "ms":
        return f"{fig.goal:,.0f} ms"
    return f"{fig.goal:g}"


def json_line(figures: Iterable[Figure], missing: Mapping[str, str], **extra: Any) -> str:
    """One JSON object with every figure (value, goal, pass, details) and the reasons of those not measured."""
    out: dict[str, Any] = {
        fig.key: {
            "label": fig.label,
            "value": fig.value,
            "op": fig.op,
            "goal": fig.goal,
            "pass": fig.passed,
            **fig.details,
        }
        for fig in figures
    }
    out["not_measured"] = dict(missing)
    out.update(extra)
    return json.dumps(out, sort_keys=False, default=float)


def steady_rps(per_second: Mapping[int, int]) -> float:
    """Requests per second over the whole seconds of a run, leaving out the first and last (partial) second."""
    if not per_second:
        raise MeasureError("no requests were counted")
    first, last = min(per_second), max(per_second)
    if last - first < 2:
        raise MeasureError(f"the load ran for {last - first + 1} s; at least 3 s are needed")
    inner = range(first + 1, last)
    return sum(per_second.get(second, 0) for second in inner) / len(inner)


def relative_errors(reported: Mapping[str, float], values: Sequence[float]) -> dict[str, float]:
    """|reported - exact| / exact for p50, p95 and p99, exact being numpy.percentile (linear) over `values`."""
    if not values:
        raise MeasureError("no samples to compute percentiles from")
    exact = np.percentile(np.asarray(values, dtype=float), list(QUANTILES.values()))
    out = {}
    for (key, _), truth in zip(QUANTILES.items(), exact, strict=True):
        got = reported.get(key)
        if got is None:
            raise MeasureError(f"benchlab reported no {key}")
        diff = abs(float(got) - float(truth))
        out[key] = diff / abs(float(truth)) if truth else (0.0 if diff == 0 else float("inf"))
    return out
