"""Baseline files end to end through the CLI: `run --results-dir`, `export --baseline-json`, `compare` of two files,
and the seed's `--type ... --duration` and `--type compare --operation` on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import benchlab
from target_fixture import Target

from benchlab.runners.analysis.baseline import FIELDS, RAW_FIELDS


def test_baseline_files_written_read_back_and_compared(demo_target: Target, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    results = tmp_path / "results"
    common = ["--host", demo_target.url, "--user-class", "HealthCheckUser", "-u", "4", "-r", "4", "--db", db, "-q"]
    common += ["--no-report"]
    for version in ("1.0", "1.1"):
        seed = ["--type", "baseline", "--duration", "3", "--operation", "health_check", "--app-version", version]
        run = benchlab(*seed, *common, "--results-dir", str(results))
        assert run.code == 0, run.stderr
        assert "baseline written to" in run.stderr
    files = sorted((results / "baseline").glob("health_check_baseline_*.json"))
    assert len(files) == 2, files
    first: dict[str, Any] = json.loads(files[0].read_text())
    assert tuple(first) == FIELDS and tuple(first["raw_data"]) == RAW_FIELDS
    assert first["operation"] == "health_check_baseline" and first["version"] == "1.0"
    assert first["total_requests"] > 0 and first["concurrent_users"] == 4
    assert sum(p["requests"] for p in first["raw_data"]["timeline"]) == first["total_requests"]
    assert {"GET /health", "GET /api/v1/status", "GET /metrics"} <= set(first["raw_data"]["endpoints"])

    exported = tmp_path / "run1.json"
    export = benchlab("export", "--run", "1", "--baseline-json", str(exported), "--db", db)
    assert export.code == 0, export.stderr
    assert json.loads(exported.read_text()) == first

    compared = benchlab("compare", "--baseline-file", str(files[0]), "--file", str(files[1]), "--json", "--db", db)
    assert compared.code == 0, compared.stderr
    verdict = compared.summary
    assert verdict["baseline"].startswith("1.0 (") and verdict["candidate"].startswith("1.1 (")
    assert {r["metric"] for r in verdict["results"]} >= {"p95_ms", "rps", "error_rate"}
    assert any("baseline files" in w for w in verdict["warnings"])

    latest = benchlab("--type", "compare", "--operation", "health_check_baseline", "--json", "--db", db)
    assert latest.code == 0, latest.stderr
    assert (latest.summary["baseline"], latest.summary["candidate"]) == ("1.0", "1.1")
    assert latest.summary["comparison_id"] is not None
