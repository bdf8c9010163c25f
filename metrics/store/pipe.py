"""The pipe between a collector and its writer child: the child process, its raw fds, and length-framed messages.

Each message is a 4-byte big-endian length (`HEADER`) and a pickle; the child answers each one with a newline.
"""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct("!I")
"""Length prefix of each message on the pipe."""


def _unpatched(name: str) -> Callable[..., Any]:
    """The pipe is used from the collector's native flush thread, where gevent's cooperative subprocess, close and
    waitpid would wait on the main thread's hub: so raw fds and the unpatched os functions. (Imported on use: the
    writer child itself never loads gevent.)"""
    from gevent.monkey import get_original

    return get_original("os", name)


class Child:
    """A child process with its stdin and stdout as raw pipe fds."""

    def __init__(self, argv: list[str]) -> None:
        child_in, self._to_child = os.pipe()
        self._from_child, child_out = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, child_in, 0), (os.POSIX_SPAWN_DUP2, child_out, 1)]
        self._close: Callable[[int], None] = _unpatched("close")
        self._waitpid: Callable[[int, int], tuple[int, int]] = _unpatched("waitpid")
        self.pid = _unpatched("posix_spawn")(argv[0], argv, dict(os.environ), file_actions=actions)
        self._close(child_in)
        self._close(child_out)
        os.set_blocking(self._from_child, False)
        self.returncode: int | None = None

    def send(self, data: bytes) -> None:
        """Write all of `data` (blocking; raises OSError once the child is gone)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._to_child, view) :]

    def acks(self) -> int:
        """Messages the child has confirmed since the last call (one newline each), without blocking."""
        count = 0
        while True:
            try:
                chunk = os.read(self._from_child, 65536)
            except BlockingIOError:
                return count
            if not chunk:
                return count  # the child is gone; the next send says so
            count += chunk.count(b"\n")

    def kill(self) -> None:
        """SIGKILL (tests use it to check the fallback)."""
        os.kill(self.pid, signal.SIGKILL)

    def finish(self) -> str:
        """Close its input, read its output to the end, reap it; returns what it printed."""
        if self._to_child >= 0:
            self._close(self._to_child)
            self._to_child = -1
        chunks = []
        if self._from_child >= 0:
            os.set_blocking(self._from_child, True)
        while self._from_child >= 0 and (chunk := os.read(self._from_child, 65536)):
            chunks.append(chunk)
        if self._from_child >= 0:
            self._close(self._from_child)
            self._from_child = -1
        if self.returncode is None:
            try:
                self.returncode = os.waitstatus_to_exitcode(self._waitpid(self.pid, 0)[1])
            except ChildProcessError:  # reaped by someone else's SIGCHLD handling
                self.returncode = -1
        return b"".join(chunks).decode(errors="replace")


def read_exact(fd: int, size: int) -> bytes | None:
    """Exactly `size` bytes from `fd`; None when it ends first."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
