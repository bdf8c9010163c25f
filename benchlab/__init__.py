"""benchlab: Locust runs measured release against release.

The repository's `runners/` and `metrics/` folders install as `benchlab.runners` and `benchlab.metrics`;
nothing is installed under a generic top-level name.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("benchlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
