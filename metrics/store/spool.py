"""Local spool of batches the store could not take; replayed later so no sample or event is lost."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchlab.metrics.store.bulk import EventRow
from benchlab.metrics.store.sample import Sample

_CLAIM = ".claimed-"


def _written_order(path: Path) -> tuple[int, int]:
    """(time_ns, sequence) from `run<id>-<label>-<pid>-<ns>-<seq>.jsonl`."""
    *_, ns, seq = path.stem.split("-")
    return int(ns), int(seq)


@dataclass(frozen=True)
class Batch:
    """A spooled batch: the rows of one flush, with the run and worker they belong to."""

    path: Path
    run_id: int
    worker: str | None
    rows: list[Sample]
    events: list[EventRow] = field(default_factory=list)
    batch_id: str | None = None
    """The id the batch was first written with (None in files of an older benchlab): a replay stores it once."""


class Spool:
    """One JSON-lines file per failed batch, written atomically (temp file, fsync, rename)."""

    def __init__(self, *, directory: Path) -> None:
        self.directory = directory
        """Folder holding `run<id>-<worker>-<pid>-<ns>.jsonl` files."""
        self._seq = 0

    def put(self, run_id: int, worker: str | None, rows: Sequence[Sample], batch_id: str | None = None) -> Path:
        """Write one batch of samples (and its id, when it has one) to disk and return its path."""
        head = {"run_id": run_id, "worker": worker, **({"batch": batch_id} if batch_id else {})}
        return self._write(run_id, worker, head, rows)

    def put_events(self, events: Sequence[EventRow]) -> Path:
        """Write run events (all of one run) to disk and return the path."""
        run_id = events[0][0]
        head = {"run_id": run_id, "worker": None, "events": [list(e) for e in events]}
        return self._write(run_id, "events", head, [])

    def _write(self, run_id: int, label: str | None, head: Mapping[str, object], rows: Sequence[Sample]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stem = f"run{run_id}-{label or 'main'}-{os.getpid()}-{time.time_ns()}-{self._seq}"
        final = self.directory / f"{stem}.jsonl"
        tmp = self.directory / f".{stem}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(head) + "\n")
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        return final

    def pending(self, run_id: int | None = None) -> list[Path]:
        """Spooled files not claimed by anyone, oldest first, optionally only those of one run."""
        if not self.directory.is_dir():
            return []
        pattern = f"run{run_id}-*.jsonl" if run_id is not None else "run*.jsonl"
        return sorted(self.directory.glob(pattern), key=_written_order)

    def claim(self, path: Path) -> Path | None:
        """Take a file for replay by renaming it; None when another process took it first."""
        claimed = path.with_name(f"{_CLAIM}{os.getpid()}-{path.name}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            return None
        return claimed

    @staticmethod
    def release(claimed: Path) -> Path:
        """Give a claimed file back after a failed replay."""
        original = claimed.with_name(claimed.name.split("-", 2)[2])
        claimed.rename(original)
        return original

    @staticmethod
    def load(path: Path) -> Batch:
        """Read a spooled file back."""
        with path.open(encoding="utf-8") as fh:
            head = json.loads(fh.readline())
            rows: list[Sample] = [tuple(json.loads(line)) for line in fh if line.strip()]
        events: list[EventRow] = [tuple(e) for e in head.get("events", [])]
        return Batch(
            path=path,
            run_id=int(head["run_id"]),
            worker=head["worker"],
            rows=rows,
            events=events,
            batch_id=head.get("batch"),
        )
