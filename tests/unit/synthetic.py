"""Synthetic windowed runs for the statistics tests: lognormal latencies under an AR(1) level per window."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from benchlab.runners.analysis.compare import RunEvidence, Side
from benchlab.runners.analysis.series import BUCKETS_PER_E, MIN_MS, WindowRow, latency_series


def window_rows(
    run_id: int,
    rng: np.random.Generator,
    *,
    windows: int = 60,
    rps: float = 50,
    scale: Mapping[str, float] | None = None,
    phi: float = 0.8,
    sigma: float = 0.15,
    error_rate: float = 0.01,
) -> list[WindowRow]:
    """Rows as the store aggregates them, for endpoints named in `scale` (latency multiplier per endpoint)."""
    scale = scale or {"/a": 1.0, "/b": 1.0}
    out: list[WindowRow] = []
    level = 0.0
    for w in range(windows):
        level = phi * level + rng.normal(0, sigma)
        for name, k in scale.items():
            n = rng.poisson(rps)
            rt = 20 * k * np.exp(level + rng.normal(0, 0.4, n))
            fail = rng.random(n) < error_rate
            bucket = np.floor(np.log(np.maximum(rt, MIN_MS)) * BUCKETS_PER_E).astype(int)
            for b in np.unique(bucket):
                m = bucket == b
                out.append(
                    (run_id, name, "GET", 1000 + w, int(b), int(m.sum()), int(fail[m].sum()), float(rt[m].sum()))
                )
    return out


def side(version: str, run_ids: list[int], rng: np.random.Generator, **kw: object) -> Side:
    """A version's runs built from synthetic rows."""
    runs = []
    for run_id in run_ids:
        series = latency_series(window_rows(run_id, rng, **kw), 1.0)  # type: ignore[arg-type]
        runs.append(RunEvidence(run_id=run_id, latency=series[run_id]))
    return Side(version=version, runs=runs)
