"""Rollups of a finished run, written once so that dashboards and long histories never scan raw samples.

Per run: exact statistics of each endpoint and of all of them (numpy's linear percentile, the interpolation of
Postgres's `percentile_cont`, as `metrics.store.query`), the same per 10 s window aligned to epoch multiples of
10 s (Grafana's `$__timeGroup(ts, 10s)`), requests per window, status code and error message, and a latency
histogram with buckets 1 % wide that merges across runs. One scan ships the samples: on Postgres each
endpoint's response times, times, codes and outcomes packed into one bytea (see `scan`), streamed endpoint by
endpoint; on SQLite rows. Failed requests' error messages come from a second, grouped query. A run whose raw
samples were pruned keeps its rollups and is never rolled up again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Connection, Float, cast, delete, func, insert, literal, select

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import (
    Base,
    EndpointRollup,
    LatencyRollup,
    OutcomeRollup,
    RequestSample,
    Run,
    RunRollup,
    WindowRollup,
)
from benchlab.metrics.store.scan import Group, groups
from benchlab.metrics.store.window import epoch_seconds

WINDOW_S = 10
"""Length of a rollup window in seconds."""
STAT_QUANTILES = {"p50_ms": 0.5, "p75_ms": 0.75, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}
"""Percentiles of `endpoint_rollups`."""
WINDOW_QUANTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}
"""Percentiles of `window_rollups`."""
BUCKETS_PER_E = 100
"""Latency buckets per e-fold: each 1 % wide."""
MIN_MS = 0.001
"""Response times below this share its bucket."""
TABLES: tuple[type[Base], ...] = (EndpointRollup, WindowRollup, OutcomeRollup, LatencyRollup)
"""Rollup tables with rows per run (besides `run_rollups`)."""
Rows = list[dict[str, Any]]


@dataclass
class Part:
    """What an endpoint row needs; kept per endpoint (its response times too) for the all-endpoints row."""

    name: str
    method: str
    ms: np.ndarray
    failures: int
    codes: Counter[str]
    response_bytes: int
    request_bytes: int
    first: float
    last: float


def write_rollup(store: Store, run_id: int) -> int:
    """(Re)write the rollups of a run from its raw samples; the samples rolled up (0: pruned, left as it was).

    Samples come a minute of one endpoint at a time (a 10 s window never spans two); each slice's arrays are
    dropped once its window rows are made, but for the response times: the exact percentiles need them all.
    """
    if pruned(store, [run_id]):
        return 0
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"run {run_id} not found")
    rows: dict[type[Base], Rows] = {model: [] for model in TABLES}
    slices: dict[tuple[str, str], list[Part]] = {}
    histograms: dict[tuple[str, str], Counter[int]] = {}
    for g in groups(store, run_id):
        rows[WindowRollup] += _window_rows(run_id, g)
        rows[OutcomeRollup] += _success_rows(run_id, g)
        slices.setdefault((g.name, g.method), []).append(_part(g))
        histograms.setdefault((g.name, g.method), Counter()).update(_histogram(g.ms))
    parts = [_merged(slices.pop(key), *key) for key in sorted(slices)]
    histogram: Counter[int] = Counter()
    for (name, method), buckets in histograms.items():
        histogram.update(buckets)
        rows[LatencyRollup] += _latency_rows(run_id, name, method, buckets)
    rows[OutcomeRollup] += _failure_rows(store, run_id)
    seconds = _seconds(run, parts)
    rows[EndpointRollup] = [_endpoint_row(run_id, p, seconds) for p in parts]
    if parts:
        rows[EndpointRollup].append(_endpoint_row(run_id, _merged(parts, "", ""), seconds))
        rows[LatencyRollup] += _latency_rows(run_id, "", "", histogram)
    samples = sum(p.ms.size for p in parts)
    with store.engine.begin() as conn:
        _clear(conn, run_id)
        for model, values in rows.items():
            if values:
                conn.execute(insert(model), values)
        conn.execute(insert(RunRollup).values(run_id=run_id, computed_at=datetime.now(UTC), samples=samples))
    return samples


def refresh(store: Store, run_ids: Iterable[int]) -> list[int]:
    """Rewrite the rollups of those runs that are finished and not pruned (after a replay added samples)."""
    ids = sorted({int(i) for i in run_ids})
    if not ids:
        return []
    query = select(Run.id).where(Run.id.in_(ids), Run.status != "running")
    with store.engine.connect() as conn:
        finished = [int(i) for i in conn.execute(query).scalars()]
    gone = pruned(store, finished)
    done = [i for i in finished if i not in gone]
    for run_id in done:
        write_rollup(store, run_id)
    return done


def pruned(store: Store, run_ids: Sequence[int]) -> dict[int, datetime]:
    """Runs among these whose raw request samples were pruned, with when."""
    ids = [int(i) for i in run_ids]
    if not ids:
        return {}
    t = RunRollup.__table__.c
    query = select(t.run_id, t.pruned_at).where(t.run_id.in_(ids), t.pruned_at.is_not(None))
    with store.engine.connect() as conn:
        return {int(r): _aware(at) for r, at in conn.execute(query)}


def rolled_up(store: Store, run_ids: Sequence[int]) -> set[int]:
    """Runs among these that have rollups."""
    ids = [int(i) for i in run_ids]
    if not ids:
        return set()
    with store.engine.connect() as conn:
        return {int(r) for r in conn.execute(select(RunRollup.run_id).where(RunRollup.run_id.in_(ids))).scalars()}


def _clear(conn: Connection, run_id: int) -> None:
    models: tuple[type[Base], ...] = (*TABLES, RunRollup)
    for model in models:
        conn.execute(delete(model).where(model.__table__.c.run_id == run_id))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _part(g: Group) -> Part:
    codes, counts = np.unique(g.code, return_counts=True)
    return Part(
        g.name,
        g.method,
        g.ms,
        int(np.count_nonzero(~g.ok)),
        Counter({("none" if c == 0 else str(c)): n for c, n in zip(codes.tolist(), counts.tolist(), strict=True)}),
        g.response_bytes,
        g.request_bytes,
        float(g.epoch.min()),
        float(g.epoch.max()),
    )


def _merged(parts: Sequence[Part], name: str, method: str) -> Part:
    """Parts together: time slices of one endpoint, or all endpoints (name = method = '')."""
    codes: Counter[str] = Counter()
    for p in parts:
        codes.update(p.codes)
    return Part(
        name,
        method,
        np.concatenate([p.ms for p in parts]) if len(parts) > 1 else parts[0].ms,
        sum(p.failures for p in parts),
        codes,
        sum(p.response_bytes for p in parts),
        sum(p.request_bytes for p in parts),
        min(p.first for p in parts),
        max(p.last for p in parts),
    )


def _seconds(run: Run, parts: Sequence[Part]) -> float:
    """The run's duration: ended - started, or its samples' span while it has no end."""
    if run.ended_at is not None:
        return (_aware(run.ended_at) - _aware(run.started_at)).total_seconds()
    return max((p.last for p in parts), default=0.0) - min((p.first for p in parts), default=0.0)


# ---------------------------------------------------------------------------------------------- rows


def sorted_quantiles(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile `q` of each group of `values` (sorted within groups), as numpy.percentile."""
    pos = starts + q * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, starts + counts - 1)
    frac = pos - lo
    a, b = values[lo], values[hi]
    diff = b - a
    # numpy's _lerp: from the nearer end, so q = 1 gives the maximum exactly
    return np.where(frac >= 0.5, b - diff * (1 - frac), a + diff * frac)


def _endpoint_row(run_id: int, p: Part, seconds: float) -> dict[str, Any]:
    quantiles = np.percentile(p.ms, [q * 100 for q in STAT_QUANTILES.values()])
    return {
        "run_id": run_id,
        "name": p.name,
        "method": p.method,
        "requests": int(p.ms.size),
        "failures": p.failures,
        "mean_ms": float(p.ms.mean()),
        **{key: float(v) for key, v in zip(STAT_QUANTILES, quantiles, strict=True)},
        "min_ms": float(p.ms.min()),
        "max_ms": float(p.ms.max()),
        "response_bytes": p.response_bytes,
        "request_bytes": p.request_bytes,
        "first_ts": _utc(p.first),
        "last_ts": _utc(p.last),
        "rps": p.ms.size / seconds if seconds > 0 else None,
        "status_counts": dict(p.codes),
    }


def _window_rows(run_id: int, g: Group) -> Rows:
    """Per window: samples ordered by window (nearly so already: a stable sort is quick), each window sorted."""
    window = np.floor(g.epoch / WINDOW_S).astype(np.int64)
    order = np.argsort(window, kind="stable")
    window, ms, failed = window[order], g.ms[order], ~g.ok[order]
    starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    ends = np.r_[starts[1:], ms.size]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        ms[start:end].sort()
    counts = ends - starts
    columns: dict[str, list[Any]] = {
        "ts": [_utc(float(w) * WINDOW_S) for w in window[starts].tolist()],
        "requests": counts.tolist(),
        "failures": np.add.reduceat(failed.astype(np.int64), starts).tolist(),
        "sum_ms": np.add.reduceat(ms, starts).tolist(),
        "min_ms": ms[starts].tolist(),
        "max_ms": ms[ends - 1].tolist(),
    }
    for key, q in WINDOW_QUANTILES.items():
        columns[key] = sorted_quantiles(ms, starts, counts, q).tolist()
    keys = list(columns)
    return [
        {"run_id": run_id, "name": g.name, "method": g.method, **dict(zip(keys, values, strict=True))}
        for values in zip(*columns.values(), strict=True)
    ]


def latency_bucket(ms: np.ndarray) -> np.ndarray:
    """The `latency_rollups` bucket of each response time."""
    return np.floor(np.log(np.maximum(ms, MIN_MS)) * BUCKETS_PER_E).astype(np.int64)


def _histogram(ms: np.ndarray) -> Counter[int]:
    buckets, counts = np.unique(latency_bucket(ms), return_counts=True)
    return Counter(dict(zip(buckets.tolist(), counts.tolist(), strict=True)))


def _latency_rows(run_id: int, name: str, method: str, buckets: Counter[int]) -> Rows:
    return [{"run_id": run_id, "name": name, "method": method, "bucket": b, "requests": n} for b, n in buckets.items()]


def _success_rows(run_id: int, g: Group) -> Rows:
    """Successful requests per window and status code (their error is NULL), with the last one's time."""
    ok = g.ok
    window = np.floor(g.epoch[ok] / WINDOW_S).astype(np.int64)
    keys, inverse, counts = np.unique(window * 65536 + g.code[ok], return_inverse=True, return_counts=True)
    last = np.full(keys.size, -np.inf)
    np.maximum.at(last, inverse, g.epoch[ok])
    return [
        {
            "run_id": run_id,
            "ts": _utc(float(k // 65536) * WINDOW_S),
            "name": g.name,
            "method": g.method,
            "status_code": None if k % 65536 == 0 else k % 65536,
            "success": True,
            "error": None,
            "requests": n,
            "last_ts": _utc(t),
        }
        for k, n, t in zip(keys.tolist(), counts.tolist(), last.tolist(), strict=True)
    ]


def _failure_rows(store: Store, run_id: int) -> Rows:
    """Failed requests per endpoint, window, status code and error, grouped in the database."""
    t = RequestSample.__table__.c
    epoch = epoch_seconds(store, t.ts)
    window = cast(func.floor(epoch / literal(float(WINDOW_S), Float)), BigInteger)
    keys = (t.name, t.method, window.label("w"), t.status_code, t.error)
    query = select(*keys, func.count(), func.max(epoch)).where(t.run_id == run_id, ~t.success).group_by(*keys)
    with store.engine.connect() as conn:
        return [
            {
                "run_id": run_id,
                "ts": _utc(float(w) * WINDOW_S),
                "name": name,
                "method": method,
                "status_code": code,
                "success": False,
                "error": error,
                "requests": int(n),
                "last_ts": _utc(float(last)),
            }
            for name, method, w, code, error, n, last in conn.execute(query)
        ]
