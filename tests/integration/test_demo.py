"""`benchlab demo` end to end: it starts its own targets, stores two runs, shows 1.1 slower, leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
from conftest import benchlab

COMPLEX = "/api/v1/content/generate [complex]"


def _targets() -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"]) if "target" in (p.info["cmdline"] or [])[3:4]}


def test_demo_compares_1_0_with_1_1(tmp_path: Path) -> None:
    before = _targets()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    res = benchlab("demo", "--run-time", "8s", "--users", "8", "-q", "--db", db, cwd=tmp_path, timeout=180)
    assert res.code == 0, res.stderr
    assert "change 1.1 vs 1.0" in res.stdout
    change = next(
        line for line in res.stdout.splitlines() if line.startswith("POST") and "[complex]" in line and "%" in line
    )
    median_change = float(change.split()[-3].rstrip("%"))
    assert median_change > 10, change
    listed = json.loads(benchlab("runs", "--json", "--db", db).stdout)
    assert sorted(r["app_version"] for r in listed) == ["1.0", "1.1"]
    assert all(r["status"] == "completed" and r["stored_samples"] == r["total_requests"] > 0 for r in listed)
    assert _targets() == before, "the demo must stop the targets it started"
