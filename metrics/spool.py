"""Local spool of sample batches the store could not take; replayed later so no sample is lost."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from metrics.sample import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """A spooled batch: the rows of one flush, with the run and worker they belong to."""

    path: Path
    run_id: int
    worker: str | None
    rows: list[Sample]


class Spool:
    """One JSON-lines file per failed batch, written atomically (temp file, fsync, rename)."""

    def __init__(self, *, directory: Path) -> None:
        self.directory = directory
        """Folder holding `run<id>-<worker>-<n>.jsonl` files."""
        self._seq = 0

    def put(self, run_id: int, worker: str | None, rows: Sequence[Sample]) -> Path:
        """Write one batch to disk and return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stem = f"run{run_id}-{worker or 'main'}-{os.getpid()}-{time.time_ns()}-{self._seq}"
        final = self.directory / f"{stem}.jsonl"
        tmp = self.directory / f".{stem}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps({"run_id": run_id, "worker": worker}) + "\n")
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        return final

    def pending(self, run_id: int | None = None) -> list[Path]:
        """Spooled files, oldest first, optionally only those of one run."""
        if not self.directory.is_dir():
            return []
        pattern = f"run{run_id}-*.jsonl" if run_id is not None else "run*.jsonl"
        return sorted(self.directory.glob(pattern), key=lambda p: p.stat().st_mtime_ns)

    @staticmethod
    def load(path: Path) -> Batch:
        """Read a spooled file back."""
        with path.open(encoding="utf-8") as fh:
            head = json.loads(fh.readline())
            rows: list[Sample] = [tuple(json.loads(line)) for line in fh if line.strip()]  # type: ignore[misc]
        return Batch(path=path, run_id=int(head["run_id"]), worker=head["worker"], rows=rows)
