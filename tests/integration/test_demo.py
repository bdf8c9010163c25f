"""`benchlab demo` end to end: it starts its own targets, stores two runs, judges 1.1, leaves nothing behind."""

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
    res = benchlab("demo", "--run-time", "20s", "--users", "30", "-q", "--db", db, cwd=tmp_path, timeout=240)
    assert res.code == 0, res.stderr
    assert "verdict: 1.1 against 1.0:" in res.stdout
    verdicts = [line for line in res.stdout.splitlines() if line.startswith(("GET", "POST", "Aggregated"))]
    assert verdicts and all("%" in line and "[" in line for line in verdicts if "p95_ms" in line), verdicts
    assert res.stdout.splitlines()[-2].startswith("regressed endpoints: ")
    compared = json.loads(benchlab("compare", "--run", "2", "--baseline-run", "1", "--json", "--db", db).stdout)
    assert compared["comparison_id"] == 2, "the demo stored its comparison first"
    regressed = res.stdout.splitlines()[-2].removeprefix("regressed endpoints: ")
    assert "/health" not in regressed
    listed = json.loads(benchlab("runs", "--json", "--db", db).stdout)
    assert sorted(r["app_version"] for r in listed) == ["1.0", "1.1"]
    assert all(r["status"] == "completed" and r["stored_samples"] == r["total_requests"] > 0 for r in listed)
    assert _targets() == before, "the demo must stop the targets it started"
