"""Each Locust file runs with the plain `locust` command against a real target: no failures, every endpoint hit."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from target_fixture import REPO, running_target

LOCUST = Path(sys.executable).parent / "locust"
FILES = ("locustfile", "content_generation_test", "auth_session_test")
GENERATE = "/api/v1/content/generate"

EXPECTED: dict[str, dict[str, set[tuple[str, str]]]] = {
    "locustfile": {
        "HealthCheckUser": {("GET", "/health"), ("GET", "/api/v1/status"), ("GET", "/metrics")},
        "ContentGenerationUser": {("POST", f"{GENERATE} [{t}]") for t in ("simple", "medium", "complex")}
        | {("GET", "/api/v1/content/[id]")},
        "APIExplorationUser": {
            ("GET", "/api/v1/templates"),
            ("GET", "/api/v1/content/[id]"),
            ("GET", "/api/v1/content/[unknown]"),
            ("GET", "/api/v1/status"),
        },
        "HeavyWorkloadUser": {
            ("POST", f"{GENERATE} [complex]"),
            ("POST", f"{GENERATE} [medium]"),
            ("POST", "/api/v1/jobs"),
            ("GET", "/api/v1/jobs/[id]"),
        },
        "MixedWorkloadUser": {("POST", "/api/v1/auth/login"), ("GET", "/api/v1/auth/verify")},
    },
    "content_generation_test": {
        "ContentGenerationUser": {("POST", f"{GENERATE} [{t}]") for t in ("simple", "medium", "complex")}
        | {("GET", "/api/v1/content/[id]")},
    },
    "auth_session_test": {
        "AuthSessionUser": {
            ("POST", "/api/v1/auth/login"),
            ("POST", "/api/v1/auth/refresh"),
            ("GET", "/api/v1/auth/verify"),
            ("GET", "/api/v1/auth/verify [forged]"),
        },
    },
}


@dataclass
class LocustRun:
    returncode: int
    output: str
    rows: dict[tuple[str, str], dict[str, str]]
    """Stats CSV rows by (method, name); the aggregate is under ("", "Aggregated")."""

    def spawned(self) -> dict[str, int]:
        found = re.findall(r"All users spawned: (\{.*?\})", self.output)
        return json.loads(found[-1]) if found else {}


def read_stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Rows of a `--csv` stats file; empty when Locust died before writing it (the test then shows why)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LocustRun]]:
    """All three files run at once (to keep the suite fast); auth against a target with 2 s tokens."""
    out = tmp_path_factory.mktemp("locust")
    with running_target(version="1.0") as target, running_target(version="1.0", token_ttl=2.0) as short_tokens:
        procs = {}
        for name in FILES:
            host = short_tokens.url if name == "auth_session_test" else target.url
            command = [
                str(LOCUST),
                "-f",
                str(REPO / "load_tests" / f"{name}.py"),
                "--headless",
                "-u",
                "20",
                "-r",
                "20",
                "-t",
                "5s",
                "--host",
                host,
                "--only-summary",
                "--csv",
                str(out / name),
            ]
            procs[name] = subprocess.Popen(
                command, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        results = {}
        for name, proc in procs.items():
            output, _ = proc.communicate(timeout=90)
            results[name] = LocustRun(proc.returncode, output, read_stats(out / f"{name}_stats.csv"))
    yield results


@pytest.mark.parametrize("name", FILES)
def test_locust_file_runs_clean_and_hits_every_endpoint(runs: dict[str, LocustRun], name: str) -> None:
    run = runs[name]
    assert run.returncode == 0, run.output[-3000:]
    total = run.rows.get(("", "Aggregated"), {"Request Count": "0", "Failure Count": "0"})
    assert int(total["Request Count"]) > 20, run.output[-3000:]
    assert int(total["Failure Count"]) == 0, run.output[-3000:]
    spawned = run.spawned()
    for user_class, endpoints in EXPECTED[name].items():
        assert spawned.get(user_class, 0) >= 1, (user_class, spawned)
        missing = [e for e in sorted(endpoints) if int(run.rows.get(e, {}).get("Request Count", 0)) == 0]
        assert not missing, f"{user_class}: no requests to {missing}\n{run.output[-3000:]}"
    assert set(spawned) == set(EXPECTED[name]), spawned
