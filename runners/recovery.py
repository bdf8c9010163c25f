"""Closing interrupted runs: a run whose benchlab process died (SIGKILL, OOM, power cut) keeps what was stored.

`benchlab replay` writes the spool first, then closes every `running` run whose runner is gone (see
`metrics.store.liveness`): status `interrupted`, ended at its last stored sample, and the summary columns
computed from the stored samples by the same code as at the end of a run. Locust's own request count died
with the process, so an interrupted run's `total_requests` is its stored samples; its spool counts stay NULL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.liveness import is_interrupted, utc
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import endpoint_stats, running_runs
from benchlab.metrics.store.spool import Spool
from benchlab.runners.analysis.summary import Totals, run_columns

_UNKNOWN = ("spooled_samples", "replayed_samples")
"""Counts only the dead process knew."""


def close_interrupted(store: Store, spool: Spool, run_id: int | None = None) -> list[Totals]:
    """Close the dead `running` runs (or only `run_id`) that have nothing left in the spool; their totals."""
    closed = []
    for run in running_runs(store, run_id):
        if not is_interrupted(run) or spool.pending(run.id):
            continue
        totals = close(store, run)
        if totals is not None:
            closed.append(totals)
    return closed


def close(store: Store, run: Run) -> Totals | None:
    """Store one dead run as `interrupted` with its summary; None when it stopped being `running` meanwhile."""
    rows = endpoint_stats(store, run.id)
    total = next((r for r in rows if r.is_total), None)
    started = utc(run.started_at)
    if total is not None:
        ended = datetime.fromtimestamp(total.last_ts, UTC)
    else:
        ended = utc(run.heartbeat_at) if run.heartbeat_at is not None else started
    stored = total.requests if total is not None else 0
    failures = total.failures if total is not None else 0
    duration = max((ended - started).total_seconds(), 0.0)
    totals = Totals(run.id, "interrupted", duration, stored, failures, stored, 0, 0, 0)
    summary: dict[str, Any] = {k: v for k, v in run_columns(rows, totals).items() if k not in _UNKNOWN}
    if not store.finish_run(run.id, status="interrupted", summary=summary, ended_at=ended):
        return None
    message = "interrupted: the benchlab process died; closed by benchlab replay"
    store.add_events([(run.id, ended.timestamp(), "stop", None, message, None)])
    return totals
