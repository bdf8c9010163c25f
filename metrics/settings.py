"""Typed settings of the collection side; `benchlab.runners.cli` builds them from flags and env vars, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DB_URL = "sqlite:///results/benchlab.db"
DEFAULT_SPOOL_DIR = Path("results/spool")


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """Where samples are stored, and where batches wait while the store is unreachable."""

    url: str = DEFAULT_DB_URL
    """SQLAlchemy URL (BENCHLAB_DB_URL): sqlite:///path or postgresql://user@host/db."""
    spool_dir: Path = DEFAULT_SPOOL_DIR
    """Directory of spooled batches (BENCHLAB_SPOOL_DIR), replayed at the end of a run or by `benchlab replay`."""


@dataclass(frozen=True, kw_only=True)
class RunMeta:
    """What the store records about a run before it starts."""

    scenario: str
    """Scenario name, derived from the locustfile and user classes unless given."""
    test_type: str
    """baseline | load | stress | spike | soak (TEST_TYPE)."""
    app_version: str
    """Version of the application under test (APP_VERSION)."""
    environment: str
    """Where the target runs: local, staging, ..."""
    host: str
    """Target base URL (TARGET_HOST)."""
    locustfile: str
    """Path of the Locust file that drives the load."""
    user_classes: tuple[str, ...]
    """User classes run; empty means every class of the file."""
    users: int
    """Peak concurrent users (USERS)."""
    spawn_rate: float
    """Users started per second (SPAWN_RATE)."""
    planned_duration_s: float | None
    """Planned run time in seconds (RUN_TIME)."""
    workers: int
    """0 for one in-process runner, else the number of local worker processes."""
    tags: dict[str, str] = field(default_factory=dict)
    """Free-form labels from --tag k=v."""
    git_commit: str | None = None
    """Commit of the locustfile's repository, when it is in one."""
    suite_id: str | None = None
    """Shared by the runs of one `--test-type complete` suite."""


@dataclass(frozen=True, kw_only=True)
class CollectorSettings:
    """How the request collector buffers and flushes."""

    flush_interval: float = 0.5
    """Seconds between flushes of the in-memory buffer (at least one a second)."""
    retry_interval: float = 2.0
    """Seconds between attempts to replay spooled batches while a run is going."""
