"""The CI job summary: the Markdown report appended to `$GITHUB_STEP_SUMMARY`, under GitHub's 1 MiB limit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

LIMIT = 1 << 20
"""GitHub's limit on one step's summary, in bytes."""
CUT = "\n\n_… cut to stay under GitHub's 1 MiB job summary limit; the full report is in the artifacts._\n"


def fit(markdown: str, budget: int) -> str:
    """The Markdown as is when it fits in `budget` bytes (UTF-8), else cut at a line boundary with a note."""
    data = markdown.encode("utf-8")
    if len(data) <= budget:
        return markdown
    room = max(0, budget - len(CUT.encode("utf-8")))
    head = data[:room].decode("utf-8", errors="ignore")
    head = head[: head.rfind("\n")] if "\n" in head else ""
    return head + CUT


def append(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append to the file named by GITHUB_STEP_SUMMARY (if set), keeping the whole file under 1 MiB."""
    name = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    used = path.stat().st_size if path.exists() else 0
    budget = LIMIT - used - 1024
    if budget <= len(CUT.encode("utf-8")):
        return None
    with path.open("a", encoding="utf-8") as fh:
        fh.write(fit(markdown, budget) + "\n")
    return path
