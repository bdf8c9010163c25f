"""Resampling plans: which windows of which runs each bootstrap replicate draws, as a weight matrix.

With several runs per version, a replicate first draws runs with replacement (run-to-run variance is usually
the larger part), then draws windows inside each drawn run with the stationary bootstrap of Politis and
Romano (1994): blocks start at uniform positions, have geometric lengths, and wrap around the run's end.
The expected block length is the automatic choice of Politis and White (2004), as corrected by Patton,
Politis and White (2009).

Both follow `arch.bootstrap` (StationaryBootstrap, optimal_block_length) and are checked against it in the
unit tests; they are written over numpy here because importing `arch` (and with it pandas) costs a compare
about a second and 70 MB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_BLOCK = 1.0


@dataclass(frozen=True)
class Plan:
    """Replicate weights over the concatenated windows of a group of runs."""

    weights: np.ndarray
    """How many times each replicate drew each window, shape (B, total windows)."""
    offsets: tuple[int, ...]
    """Start of each run's windows in the concatenation."""
    block_lengths: tuple[float, ...]
    """Expected block length (windows) used for each run."""
    resampled_runs: bool
    """True when runs were resampled as well as windows."""


def optimal_block_length(x: np.ndarray) -> float:
    """Politis-White expected block length of the stationary bootstrap (`arch`'s "stationary" column)."""
    n = x.size
    eps = x - x.mean()
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    kn = max(5, int(math.log10(n)))
    m_max = math.ceil(math.sqrt(n)) + kn
    cv = 2 * math.sqrt(math.log10(n) / n)
    acv = np.empty(m_max + 1)
    abs_acorr = np.empty(m_max + 1)
    for i in range(m_max + 1):
        cross = eps[i:] @ eps[: n - i]
        acv[i] = cross / n
        abs_acorr[i] = abs(cross) / math.sqrt((eps[i + 1 :] @ eps[i + 1 :]) * (eps[: -(i + 1)] @ eps[: -(i + 1)]))
    # The first run of kn insignificant autocorrelations decides the bandwidth.
    opt_m = next((i - kn for i in range(kn, m_max + 1) if np.all(abs_acorr[i - kn : i] < cv)), None)
    m = min(2 * max(opt_m, 1) if opt_m is not None else m_max, m_max)
    lags = np.arange(1, m + 1)
    flat_top = np.where(lags / m <= 0.5, 1.0, 2 * (1 - lags / m))
    g = float(np.sum(2 * flat_top * lags * acv[1 : m + 1]))
    long_run = float(acv[0] + np.sum(2 * flat_top * acv[1 : m + 1]))
    d_sb = 2 * long_run**2
    if d_sb <= 0:
        return MIN_BLOCK
    return float(min((2 * g**2 / d_sb) ** (1 / 3) * n ** (1 / 3), b_max))


def block_length(series: np.ndarray) -> float:
    """Expected block length of the stationary bootstrap for one run's per-window series."""
    x = np.asarray(series, dtype=float)
    if x.size < 10 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return max(MIN_BLOCK, float(np.sqrt(max(x.size, 1))) / 2)
    estimate = optimal_block_length(x)
    if not np.isfinite(estimate):
        estimate = MIN_BLOCK
    return float(np.clip(estimate, MIN_BLOCK, max(MIN_BLOCK, x.size / 3)))


def stationary_indices(n: int, block: float, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Index draws of the stationary bootstrap over n windows, shape (replicates, n).

    Each position starts a new block with probability 1/block (at a uniform random window), else continues
    the previous one at the next window, wrapping around the end.
    """
    p = 1.0 / max(block, MIN_BLOCK)
    starts = rng.integers(0, n, size=(replicates, n))
    new_block = rng.random((replicates, n)) < p
    new_block[:, 0] = True
    # Position of the latest block start at or before each column, then offset from it.
    col = np.arange(n)
    last_start = np.maximum.accumulate(np.where(new_block, col, 0), axis=1)
    first_index = np.take_along_axis(starts, last_start, axis=1)
    return (first_index + col - last_start) % n


def plan(
    windows: Sequence[int], blocks: Sequence[float], replicates: int, rng: np.random.Generator, *, runs: bool
) -> Plan:
    """Weights of `replicates` draws over runs with `windows[k]` windows each.

    `runs=True` resamples runs (with replacement, as many as there are) before windows; otherwise every run
    appears once in every replicate and only its windows are resampled.
    """
    offsets = np.concatenate([[0], np.cumsum(windows)[:-1]]).astype(int)
    total = int(np.sum(windows))
    pools = [stationary_indices(n, b, replicates, rng) for n, b in zip(windows, blocks, strict=True)]
    weights = np.zeros((replicates, total))
    k = len(windows)
    rows = np.arange(replicates)
    for slot in range(k):
        chosen = rng.integers(0, k, size=replicates) if runs and k > 1 else np.full(replicates, slot)
        for run in np.unique(chosen):
            reps = rows[chosen == run]
            draws = pools[run][rng.integers(0, replicates, size=reps.size)] if runs and k > 1 else pools[run][reps]
            flat = (reps[:, None] * total + draws + offsets[run]).ravel()
            weights += np.bincount(flat, minlength=replicates * total).reshape(replicates, total)
    return Plan(
        weights=weights,
        offsets=tuple(int(o) for o in offsets),
        block_lengths=tuple(float(b) for b in blocks),
        resampled_runs=runs and k > 1,
    )
