"""Statistics of one side of a comparison, on the full data and on every bootstrap replicate.

Everything is a weighted sum over windows: a replicate's weights say how often it drew each window, so its
request count, failures, latency sum and latency histogram are matrix products with the window arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchlab.runners.analysis.series import LatencySeries, ValueSeries, hist_percentiles

LATENCY_METRICS = ("mean_ms", "p50_ms", "p95_ms", "p99_ms")
"""Latency statistics, in ms; higher is worse."""
QUANTILE_OF = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
"""Quantile of each percentile metric."""
REQUEST_METRICS = (*LATENCY_METRICS, "rps", "error_rate")
"""Metrics of the request samples, per endpoint and in total."""


@dataclass(frozen=True)
class Estimates:
    """One side's statistics: the value on all its data, and its bootstrap replicates."""

    point: dict[str, float]
    """Metric → value over every window of every run of the side."""
    replicates: dict[str, np.ndarray]
    """Metric → values of the replicates, shape (B,); NaN where a replicate drew no requests."""
    requests: int
    """Requests of the side (all runs)."""
    windows: int
    """Windows of the side (all runs)."""


def latency_estimates(
    series: Sequence[LatencySeries | None], windows: Sequence[int], weights: np.ndarray, window_s: float
) -> Estimates:
    """Request metrics of one endpoint over a side's runs; `series[k]` is None where run k never called it."""
    counts, fails, sums, hist, buckets = _concatenate(series, windows)
    full = np.ones((1, counts.size))
    point = {m: float(v[0]) for m, v in _statistics(full, counts, fails, sums, hist, buckets, window_s).items()}
    reps = _statistics(weights, counts, fails, sums, hist, buckets, window_s)
    return Estimates(point=point, replicates=reps, requests=int(counts.sum()), windows=int(counts.size))


def value_estimates(series: Sequence[ValueSeries], weights: np.ndarray) -> Estimates:
    """Mean of a resource or queue reading over a side's runs (the series concatenated in run order)."""
    values = np.concatenate([s.values for s in series]) if series else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (weights @ values) / weights.sum(axis=1)
    point = float(values.mean()) if values.size else float("nan")
    return Estimates(point={"mean": point}, replicates={"mean": reps}, requests=0, windows=int(values.size))


def _statistics(
    weights: np.ndarray,
    counts: np.ndarray,
    fails: np.ndarray,
    sums: np.ndarray,
    hist: np.ndarray,
    buckets: np.ndarray,
    window_s: float,
) -> dict[str, np.ndarray]:
    n = weights @ counts
    seconds = weights.sum(axis=1) * window_s
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "mean_ms": np.where(n > 0, (weights @ sums) / n, np.nan),
            "rps": np.where(seconds > 0, n / seconds, np.nan),
            "error_rate": np.where(n > 0, (weights @ fails) / n, np.nan),
        }
    pct = hist_percentiles(weights @ hist, buckets, [QUANTILE_OF[m] for m in ("p50_ms", "p95_ms", "p99_ms")])
    for j, metric in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        out[metric] = pct[:, j]
    return out


def _concatenate(
    series: Sequence[LatencySeries | None], windows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window arrays of all runs end to end, histograms on the union of their buckets."""
    present = [s for s in series if s is not None]
    buckets = np.unique(np.concatenate([s.buckets for s in present])) if present else np.zeros(0, dtype=np.int64)
    total = int(sum(windows))
    counts, fails, sums = np.zeros(total), np.zeros(total), np.zeros(total)
    hist = np.zeros((total, buckets.size))
    start = 0
    for s, n in zip(series, windows, strict=True):
        if s is not None:
            counts[start : start + n] = s.counts
            fails[start : start + n] = s.failures
            sums[start : start + n] = s.sum_ms
            hist[start : start + n][:, np.searchsorted(buckets, s.buckets)] = s.hist
        start += n
    return counts, fails, sums, hist, buckets
