"""Resampling plans: which windows of which runs each bootstrap replicate draws, as a weight matrix.

With several runs per version, a replicate first draws runs with replacement (run-to-run variance is usually
the larger part), then draws windows inside each drawn run with a stationary bootstrap (Politis and Romano,
1994), whose random-length blocks keep the autocorrelation of neighbouring windows. Index generation and the
block length (Politis and White, 2004, as corrected by Patton, Politis and White, 2009) come from `arch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import StationaryBootstrap, optimal_block_length

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


def block_length(series: np.ndarray) -> float:
    """Expected block length of the stationary bootstrap for one run's per-window series."""
    x = np.asarray(series, dtype=float)
    if x.size < 10 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return max(MIN_BLOCK, float(np.sqrt(max(x.size, 1))) / 2)
    estimate = float(optimal_block_length(x)["stationary"].iloc[0])
    if not np.isfinite(estimate):
        estimate = MIN_BLOCK
    return float(np.clip(estimate, MIN_BLOCK, max(MIN_BLOCK, x.size / 3)))


def plan(
    windows: Sequence[int], blocks: Sequence[float], replicates: int, rng: np.random.Generator, *, runs: bool
) -> Plan:
    """Weights of `replicates` draws over runs with `windows[k]` windows each.

    `runs=True` resamples runs (with replacement, as many as there are) before windows; otherwise every run
    appears once in every replicate and only its windows are resampled.
    """
    offsets = np.concatenate([[0], np.cumsum(windows)[:-1]]).astype(int)
    total = int(np.sum(windows))
    pools = [_index_pool(n, b, replicates, rng) for n, b in zip(windows, blocks, strict=True)]
    weights = np.zeros((replicates, total))
    k = len(windows)
    for r in range(replicates):
        chosen = rng.integers(0, k, size=k) if runs and k > 1 else np.arange(k)
        for run in chosen:
            draw = pools[run][rng.integers(0, replicates)] if runs and k > 1 else pools[run][r]
            weights[r] += np.bincount(draw + offsets[run], minlength=total)
    return Plan(
        weights=weights,
        offsets=tuple(int(o) for o in offsets),
        block_lengths=tuple(float(b) for b in blocks),
        resampled_runs=runs and k > 1,
    )


def _index_pool(n: int, block: float, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """`replicates` stationary-bootstrap index draws of one run's n windows, shape (replicates, n)."""
    sampler = StationaryBootstrap(max(1, round(block)), np.arange(n), seed=rng)
    return np.stack([data[0] for data, _ in sampler.bootstrap(replicates)])
