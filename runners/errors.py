"""Errors that map to benchlab's exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REGRESSION = 3


class BadInput(ValueError):
    """Bad input (flag, file, URL): one-line message, exit code 2, nothing written."""


class RunFailed(RuntimeError):
    """The run could not be done (target or DB unreachable, Locust crashed): exit code 1."""


def gate_exit(failed: bool, *, enabled: bool) -> int:
    """The exit code of a judged run or comparison: 3 when the gate is on and something failed."""
    return EXIT_REGRESSION if enabled and failed else EXIT_OK
