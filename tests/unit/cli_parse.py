"""`benchlab run ARGS` parsed up to the point the run would start, for the CLI validation tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchlab.runners import cli, verdicts
from benchlab.runners.settings import RunSpec

ENV = ("TARGET_HOST", "USERS", "SPAWN_RATE", "RUN_TIME", "APP_VERSION", "TEST_TYPE", "BENCHLAB_DB_URL",
       "BENCHLAB_SPOOL_DIR", "BENCHLAB_WORKERS", "LOCUSTFILE", "BENCHLAB_GIT_COMMIT", "BENCHLAB_SCENARIO",
       "BENCHLAB_METRICS_PORT", "BASELINE_VERSION", "FAIL_ON_REGRESSION", "BENCHLAB_EXPECT_WORKERS",
       "BENCHLAB_MASTER_BIND", "BENCHLAB_MASTER_PORT", "BENCHLAB_ENVIRONMENT", "BENCHLAB_SLO_P95_MS")  # fmt: skip
"""Every env var `benchlab run` reads: unset, so the flags alone decide."""


class Parsed(Exception):
    """Raised where the run would start, carrying its RunSpec."""

    def __init__(self, spec: RunSpec) -> None:
        super().__init__("parsed")
        self.spec = spec


def stop(spec: RunSpec, *_: object) -> None:
    """Stands in for what would start the run."""
    raise Parsed(spec)


def parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., RunSpec]:
    """A function of `run`'s arguments that returns the RunSpec, in `tmp_path`, with no benchlab env var set."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(verdicts, "check_baseline", stop)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> RunSpec:
        with pytest.raises(Parsed) as parsed:
            cli.main(["run", *args])
        return parsed.value.spec

    return run
