"""Render a report in the asked formats and write the files all or nothing (temp files, then renames)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchlab.runners.report import html, junit, markdown, notebook
from benchlab.runners.report import verdict as verdict_report
from benchlab.runners.report.data import ReportData

FORMATS = ("html", "md", "ipynb", "junit", "json")
SUFFIX = {"html": ".html", "md": ".md", "ipynb": ".ipynb", "junit": ".junit.xml", "json": ".json"}


def parse_formats(text: str) -> tuple[str, ...]:
    """`html,md` → ("html", "md"); ValueError naming an unknown format."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"bad --format {text!r}: expected a comma-separated list of {', '.join(FORMATS)}")
    return names


def stem(data: ReportData) -> str:
    """File name without suffix: run-12, or compare-1.0-vs-1.1-run-12."""
    run = data.candidate[0].run_id
    name = f"compare-{data.baseline_label}-vs-{data.candidate_label}-run-{run}" if data.baseline else f"run-{run}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name)[:120]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_json(data: ReportData) -> dict[str, Any]:
    """Everything but the charts' points, as one JSON object (the verdicts in `compare --json`'s shape)."""
    verdict = verdict_report.as_json(
        data.comparison,
        data.checks,
        baseline=data.baseline_label,
        candidate=data.candidate_label,
        comparison_id=None,
    )
    body = {
        "title": data.title,
        "generated_at": data.generated_at,
        "candidate_runs": [asdict(r) for r in data.candidate],
        "baseline_runs": [asdict(r) for r in data.baseline],
        "endpoints": [asdict(e) | {"error_rate": e.error_rate} for e in data.endpoints],
        "errors": [asdict(e) for e in data.errors],
        "history": [asdict(p) for p in data.history],
        "change_points": data.change_points,
        "capacity": asdict(data.capacity) if data.capacity else None,
        "notes": list(data.notes),
    }
    return dict(_plain(verdict | body))


def render(data: ReportData, fmt: str, *, db_url: str, days: int = 30) -> str:
    """One format's text."""
    if fmt == "html":
        return html.render(data)
    if fmt == "md":
        return markdown.render(data, days=days)
    if fmt == "ipynb":
        return notebook.render(data, db_url)
    if fmt == "junit":
        return junit.render(data)
    if fmt == "json":
        return json.dumps(as_json(data), indent=1)
    raise ValueError(f"unknown format {fmt!r}")


def write(
    data: ReportData, formats: Sequence[str], out_dir: Path, *, db_url: str, days: int = 30, name: str | None = None
) -> list[Path]:
    """Every format rendered first, then written to temp files and renamed: all the files appear, or none."""
    texts = {fmt: render(data, fmt, db_url=db_url, days=days) for fmt in formats}
    out_dir.mkdir(parents=True, exist_ok=True)
    base = name or stem(data)
    temps: list[tuple[Path, Path]] = []
    try:
        for fmt, text in texts.items():
            target = out_dir / f"{base}{SUFFIX[fmt]}"
            tmp = out_dir / f".{target.name}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            temps.append((tmp, target))
        for tmp, target in temps:
            tmp.replace(target)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return [target for _, target in temps]
