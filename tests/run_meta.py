"""`run_meta(**overrides)`: the RunMeta of a synthetic run, for tests that start runs in a store by hand.

tests/ is on sys.path (tests/conftest.py is imported from there), so unit and integration tests alike import it.
"""

from __future__ import annotations

from typing import Any

from benchlab.metrics.settings import RunMeta

DEFAULTS: dict[str, Any] = {
    "scenario": "unit",
    "test_type": "load",
    "app_version": "1",
    "environment": "test",
    "host": "http://127.0.0.1:9",
    "locustfile": "x.py",
    "user_classes": (),
    "users": 1,
    "spawn_rate": 1.0,
    "planned_duration_s": 1.0,
    "workers": 0,
}
"""One user of an in-process load run against a closed port."""


def run_meta(**overrides: Any) -> RunMeta:
    """A new RunMeta of DEFAULTS with the given fields replaced."""
    return RunMeta(**{**DEFAULTS, **overrides})
