"""The HTML report: one self-contained file (inline CSS and SVG charts, no script, no request leaving the page).

Jinja autoescapes every value; only the SVG that `chart` draws is inserted as markup.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from benchlab.runners.report import chart, guidance
from benchlab.runners.report.data import ReportData
from benchlab.runners.report.verdict import MARK, rows

TEMPLATES = Path(__file__).parent / "templates"
SYMBOL = {"regression": "✗", "improvement": "▲", "unchanged": "✓", "inconclusive": "?"}
"""A symbol beside each verdict's word, so the table reads without colour."""


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["ms"] = lambda v: "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"
    env.filters["pct"] = lambda v: "n/a" if v is None or not math.isfinite(v) else f"{v:.2%}"
    env.filters["num"] = lambda v: "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"
    return env


def charts(data: ReportData) -> dict[str, Markup]:
    """Every chart the data supports, as inline SVG markup, by name."""
    out: dict[str, Markup] = {}
    if any(tl.t for tl in data.timelines):
        out["timeline"] = Markup(chart.timeline_svg(data.timelines))  # SVG drawn by matplotlib, not user text
    if any(d.counts for d in data.distributions):
        out["distribution"] = Markup(chart.distribution_svg(data.distributions))
    if data.resources:
        out["resources"] = Markup(chart.resources_svg(data.resources))
    if len(data.history) >= 2:
        out["history"] = Markup(chart.history_svg(data.history, data.change_points))
    if data.capacity is not None and data.capacity.steps:
        out["capacity"] = Markup(chart.capacity_svg(data.capacity))
    for i, section in enumerate(data.sections, start=1):
        if section.points:
            out[f"section-{i}"] = Markup(chart.section_svg(section))
    return out


def verdict_rows(data: ReportData) -> list[dict[str, Any]]:
    """The comparison's rows as cells plus the verdict's class, word and symbol."""
    if data.comparison is None:
        return []
    out = []
    for result, cells in zip(data.comparison.results, rows(data.comparison), strict=True):
        out.append(
            {
                "cells": cells[:-1],
                "verdict": result.verdict,
                "symbol": SYMBOL[result.verdict],
                "text": cells[-1],
                "gating": result.gating,
            }
        )
    return out


def render(data: ReportData) -> str:
    """The whole page."""
    cap = data.capacity
    total = data.total
    template = _env().get_template("report.html.j2")
    return template.render(
        d=data,
        tiles=guidance.tiles(total, data.checks),
        counts=guidance.check_counts(data.checks),
        verdicts=verdict_rows(data),
        overall_mark=MARK.get(data.comparison.overall, "") if data.comparison else "",
        charts=charts(data),
        capacity=cap,
        top=cap.max_sustained if cap else None,
        headroom=guidance.headroom(cap, total.rps) if cap and total else None,
        symbol=SYMBOL,
    )
