"""Windowed series: the unit of evidence of a comparison.

Single requests are autocorrelated, so a comparison never resamples them. The store aggregates each run into
fixed time windows (one second by default), and within each window into log-spaced latency buckets. A run is
then a dense grid of windows, each with a request count, a failure count, a latency sum and a latency
histogram. Histograms of any set of windows add up, so a percentile of any resample of windows is cheap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from benchlab.metrics.store.stats import WindowBlock

BUCKETS_PER_E = 50
"""Latency buckets per e-fold: bucket b holds times in [exp(b/50), exp((b+1)/50)) ms, about 2% wide."""
MIN_MS = 0.001
"""Times below this many ms fall into the lowest bucket."""

WindowRow = tuple[int, str, str, int, int, int, int, float]
"""(run_id, name, method, window, bucket, count, failures, sum_ms) as the store aggregates them."""
ValueRow = tuple[int, str, int, float]
"""(run_id, label, window, mean value) of a resource or queue reading."""


def bucket_of(ms: float) -> int:
    """Bucket index of one response time (the same formula the store's SQL uses)."""
    return int(np.floor(np.log(max(ms, MIN_MS)) * BUCKETS_PER_E))


@dataclass(frozen=True)
class LatencySeries:
    """One run's requests to one endpoint (or to all of them), window by window."""

    counts: np.ndarray
    """Requests per window, shape (n,)."""
    failures: np.ndarray
    """Failed requests per window, shape (n,)."""
    sum_ms: np.ndarray
    """Sum of response times per window, shape (n,)."""
    hist: np.ndarray
    """Requests per window and latency bucket, shape (n, len(buckets))."""
    buckets: np.ndarray
    """Bucket indices of the histogram's columns, ascending."""
    window_s: float
    """Length of one window in seconds."""

    @property
    def windows(self) -> int:
        """Number of windows, empty ones included."""
        return int(self.counts.shape[0])

    @property
    def requests(self) -> int:
        """Requests over the whole series."""
        return int(self.counts.sum())


@dataclass(frozen=True)
class ValueSeries:
    """One run's readings of one resource or queue metric, one mean value per window."""

    values: np.ndarray
    """Mean reading per window that has one, shape (n,)."""
    window_s: float
    """Length of one window in seconds."""


def latency_series(rows: Iterable[WindowRow], window_s: float) -> dict[int, dict[tuple[str, str], LatencySeries]]:
    """run id → endpoint (name, method) → series, plus the all-endpoints series under ("", "").

    Windows run densely from each run's first to its last window with a request, so idle seconds count
    as windows with no requests (they matter for throughput).
    """
    grouped: dict[tuple[int, str, str], list[WindowRow]] = defaultdict(list)
    for row in rows:
        grouped[(row[0], row[1], row[2])].append(row)
    blocks = []
    for (run_id, name, method), members in grouped.items():
        a = np.array([r[3:7] for r in members], dtype=np.int64).reshape(-1, 4)
        sums = np.array([r[7] for r in members], dtype=float)
        blocks.append(WindowBlock(run_id, name, method, a[:, 0], a[:, 1], a[:, 2], a[:, 3], sums))
    return block_series(blocks, window_s)


def block_series(blocks: Iterable[WindowBlock], window_s: float) -> dict[int, dict[tuple[str, str], LatencySeries]]:
    """`latency_series` from the store's columnar blocks (one per run and endpoint)."""
    by_run: dict[int, list[WindowBlock]] = defaultdict(list)
    for block in blocks:
        by_run[block.run_id].append(block)
    return {run_id: _run_series(run_blocks, window_s) for run_id, run_blocks in by_run.items()}


def _run_series(blocks: list[WindowBlock], window_s: float) -> dict[tuple[str, str], LatencySeries]:
    first = int(min(b.window.min() for b in blocks))
    n = int(max(b.window.max() for b in blocks)) - first + 1
    buckets = np.unique(np.concatenate([b.bucket for b in blocks]))
    out: dict[tuple[str, str], LatencySeries] = {}
    total_hist = np.zeros((n, buckets.size))
    totals = np.zeros((3, n))
    for b in blocks:
        win, col = b.window - first, np.searchsorted(buckets, b.bucket)
        hist = np.zeros((n, buckets.size))
        np.add.at(hist, (win, col), b.requests)
        sums = np.stack([np.bincount(win, weights=w, minlength=n) for w in (b.requests, b.failures, b.sum_ms)])
        total_hist += hist
        totals += sums
        out[(b.name, b.method)] = LatencySeries(
            counts=sums[0], failures=sums[1], sum_ms=sums[2], hist=hist, buckets=buckets, window_s=window_s
        )
    out[("", "")] = LatencySeries(
        counts=totals[0], failures=totals[1], sum_ms=totals[2], hist=total_hist, buckets=buckets, window_s=window_s
    )
    return out


def value_series(rows: Iterable[ValueRow], window_s: float) -> dict[int, dict[str, ValueSeries]]:
    """run id → label → series of per-window means, in window order (windows without a reading are skipped)."""
    grouped: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for run_id, label, window, value in rows:
        if value is not None:
            grouped[run_id][label].append((window, float(value)))
    return {
        run_id: {
            label: ValueSeries(values=np.array([v for _, v in sorted(points)]), window_s=window_s)
            for label, points in labels.items()
        }
        for run_id, labels in grouped.items()
    }


def hist_percentiles(hist: np.ndarray, buckets: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Percentiles (ms) of histograms: one per row of `hist` (shape (B, k)) and quantile, shape (B, q).

    Ranks follow `percentile_cont` (linear, rank q·(N-1)); within a bucket, times are taken as spread
    evenly in log space. Rows with no requests give NaN.
    """
    hist = np.atleast_2d(hist)
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    out = np.full((hist.shape[0], len(quantiles)), np.nan)
    for j, q in enumerate(quantiles):
        rank = q * (total - 1)
        pos = np.argmax(cum > rank[:, None], axis=1)
        inside = np.take_along_axis(hist, pos[:, None], axis=1)[:, 0]
        before = np.take_along_axis(cum, pos[:, None], axis=1)[:, 0] - inside
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip((rank - before + 0.5) / inside, 0.0, 1.0)
        value = np.exp((buckets[pos] + frac) / BUCKETS_PER_E)
        out[:, j] = np.where(total > 0, value, np.nan)
    return out


def mean_per_window(series: LatencySeries | None) -> np.ndarray:
    """Mean latency of each window, empty windows filled with the overall mean (to size bootstrap blocks)."""
    if series is None or series.requests == 0:
        return np.zeros(0)
    overall_mean = series.sum_ms.sum() / series.counts.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(series.counts > 0, series.sum_ms / series.counts, overall_mean)


def steady_windows(windows: int, window_s: float, *, warmup: float = 0.1, max_warmup_s: float = 30.0) -> slice:
    """The windows of a run that count as evidence: not its first (partial, cold) or last (partial) window,
    and not its warm-up, `warmup` of the run (a fraction) but at most `max_warmup_s` seconds."""
    head = max(1, min(int(np.ceil(warmup * windows)), int(max_warmup_s / window_s)))
    stop = windows - 1
    return slice(head, stop) if stop - head >= 1 else slice(0, windows)


def trim(series: LatencySeries, keep: slice) -> LatencySeries:
    """The same series restricted to some windows."""
    return LatencySeries(
        counts=series.counts[keep],
        failures=series.failures[keep],
        sum_ms=series.sum_ms[keep],
        hist=series.hist[keep],
        buckets=series.buckets,
        window_s=series.window_s,
    )
