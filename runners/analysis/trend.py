"""Trends over runs: one value per run, the change over the window, and change points.

Change points come from E-divisive means (Matteson & James 2014, the method behind MongoDB's
`signal-processing-algorithms` and Apache Otava), implemented here over numpy because both libraries pin
numpy < 2.3 and that conflicts with ours:

1. The divergence of a split at τ of a segment is Q(τ, κ) = mn/(m+n) · (2·mean|L-R| - mean|L-L'| - mean|R-R'|),
   the energy distance between the m values left of τ and the n values from τ up to κ (exponent 1).
2. The best split is the τ (over every κ) with the largest Q, both sides at least `min_segment` runs long.
3. Its significance is a permutation test: the segment's values shuffled `permutations` times, the best Q of
   each shuffle compared with the observed one; p = (shuffles at least as large + 1) / (permutations + 1).
4. Accepted splits divide their segment and the search repeats on the pieces (hierarchically, largest Q
   first) until the next best split is not significant at `alpha`.

Positive metrics are analysed on the log scale, so a step is a ratio whatever the level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

KAPPA_POINTS = 100
"""At most about this many right-side ends κ are tried per split (all of them up to 100 runs)."""
METHOD = "E-divisive means (energy distance, Matteson & James 2014) with a permutation test"


@dataclass(frozen=True, kw_only=True)
class TrendSettings:
    """How change points are searched for."""

    min_runs: int = 6
    """Fewer runs than this: no change point is ever reported."""
    min_segment: int = 3
    """Runs on each side of a change point, at least."""
    alpha: float = 0.05
    """Significance level of the permutation test of each change point."""
    permutations: int = 499
    """Shuffles per permutation test (p-values resolve to 1/(permutations+1))."""
    seed: int = 20240101
    """Seed of the shuffles: the same series always gives the same change points."""

    def __post_init__(self) -> None:
        if self.min_segment < 2:
            raise ValueError(f"min_segment must be >= 2, got {self.min_segment}")
        if self.min_runs < 2 * self.min_segment:
            raise ValueError(f"min_runs must be >= 2 * min_segment ({2 * self.min_segment}), got {self.min_runs}")


@dataclass(frozen=True, kw_only=True)
class Point:
    """One run's value."""

    run_id: int
    version: str
    started_at: str
    """ISO 8601 start time of the run."""
    value: float


@dataclass(frozen=True, kw_only=True)
class ChangePoint:
    """A detected shift: the first run of the new level, the levels either side, and the test's p-value."""

    index: int
    """Position in the series of the first run after the change."""
    run_id: int
    version: str
    started_at: str
    before: float
    """Median of the segment before the change."""
    after: float
    """Median of the segment after the change."""
    change: float
    """after / before - 1 (NaN when before is 0)."""
    p_value: float
    divergence: float
    """The split's energy divergence Q (on the analysed scale)."""


@dataclass(frozen=True, kw_only=True)
class Trend:
    """Runs of one metric over a time window, their change, and their change points."""

    metric: str
    points: tuple[Point, ...]
    change: float
    """Relative change from the median of the first `min_segment` runs to that of the last ones (NaN if unknown)."""
    change_points: tuple[ChangePoint, ...]
    settings: TrendSettings
    notes: tuple[str, ...] = field(default_factory=tuple)
    method: str = METHOD


def change_points(
    values: Sequence[float] | np.ndarray, settings: TrendSettings | None = None
) -> list[tuple[int, float, float]]:
    """(index, p-value, divergence) of every significant change point of `values`, by index.

    Empty when the series has fewer than `settings.min_runs` finite values (NaNs are not allowed).
    """
    settings = settings or TrendSettings()
    x = np.asarray(values, dtype=float)
    if x.size < settings.min_runs or not np.all(np.isfinite(x)):
        return []
    if np.all(x > 0):
        x = np.log(x)
    rng = np.random.default_rng(settings.seed)
    found: list[tuple[int, float, float]] = []
    bounds = [0, x.size]
    while True:
        best = _best_split_over(x, bounds, settings.min_segment)
        if best is None:
            break
        start, stop, tau, q = best
        p = _permutation_p(x[start:stop], q, settings, rng)
        if p > settings.alpha:
            break
        found.append((tau, p, q))
        bounds = sorted([*bounds, tau])
    return sorted(found)


def _best_split_over(x: np.ndarray, bounds: list[int], min_segment: int) -> tuple[int, int, int, float] | None:
    """The segment (start, stop) and split τ with the largest divergence over all current segments."""
    best: tuple[int, int, int, float] | None = None
    for start, stop in itertools.pairwise(bounds):
        split = best_split(x[start:stop], min_segment)
        if split is not None and (best is None or split[1] > best[3]):
            best = (start, stop, start + split[0], split[1])
    return best


def best_split(x: np.ndarray, min_segment: int) -> tuple[int, float] | None:
    """(τ, Q) of the split of `x` with the largest energy divergence; None when `x` is too short to split."""
    q = _divergences(x, min_segment)
    if q.size == 0:
        return None
    i, _ = np.unravel_index(int(np.nanargmax(q)), q.shape)
    return int(i) + min_segment, float(np.nanmax(q))


def _divergences(x: np.ndarray, min_segment: int) -> np.ndarray:
    """Q(τ, κ) of x[:τ] against x[τ:κ], shape (τ from min_segment, κ from 2·min_segment); NaN where not allowed.

    Letting the right side end before the segment does (κ < len(x)), as in Matteson & James, finds the first
    edge of a level that comes back, which a split of the whole segment would blur. Sums come from prefix sums
    of the distance matrix.
    """
    n = x.size
    if n < 2 * min_segment:
        return np.zeros((0, 0))
    d = np.abs(x[:, None] - x[None, :])
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = d.cumsum(axis=0).cumsum(axis=1)
    tau = np.arange(min_segment, n - min_segment + 1)[:, None]
    stride = max(1, n // KAPPA_POINTS)  # long series: every stride-th end of the right side (and the last)
    kap = np.unique(np.r_[np.arange(2 * min_segment, n + 1, stride), n])[None, :]
    valid = kap - tau >= min_segment
    t, k = np.broadcast_arrays(tau, np.where(valid, kap, n))
    m, r = t.astype(float), (k - t).astype(float)
    left = s[t, t]  # sum over L x L (each pair twice)
    cross = s[t, k] - left  # sum over L x R
    right = s[k, k] - s[t, k] - s[k, t] + left  # sum over R x R (each pair twice)
    with np.errstate(invalid="ignore", divide="ignore"):
        energy = 2 * cross / (m * r) - left / (m * (m - 1)) - right / (r * (r - 1))
        q = m * r / (m + r) * energy
    return np.where(valid, q, np.nan)


def _permutation_p(segment: np.ndarray, observed: float, settings: TrendSettings, rng: np.random.Generator) -> float:
    """Share of shuffles of `segment` whose best divergence is at least the observed one (with the +1 rule)."""
    hits = 0
    for _ in range(settings.permutations):
        q = _divergences(rng.permutation(segment), settings.min_segment)
        if q.size and np.nanmax(q) >= observed - 1e-12:
            hits += 1
    return (hits + 1) / (settings.permutations + 1)


def trend(points: Sequence[Point], metric: str, settings: TrendSettings | None = None) -> Trend:
    """The trend of `points` (oldest first): change over the window and the change points, with notes on limits."""
    settings = settings or TrendSettings()
    values = np.array([p.value for p in points], dtype=float)
    finite = bool(np.all(np.isfinite(values)))
    notes = [
        f"a change point needs at least {settings.min_runs} runs in the window and "
        f"{settings.min_segment} runs on each side of it (p < {settings.alpha:g}, {settings.permutations} shuffles)"
    ]
    if len(points) < settings.min_runs:
        notes.append(f"only {len(points)} run(s): too little history to call any change")
    if not finite:
        notes.append("some runs have no value for this metric: change points not searched")
    found = change_points(values, settings) if finite else []
    edges = [0, *(i for i, _, _ in found), len(points)]
    levels = [float(np.median(values[a:b])) for a, b in itertools.pairwise(edges)]
    cps = []
    for k, (index, p, q) in enumerate(found):
        before, after = levels[k], levels[k + 1]
        run = points[index]
        cps.append(
            ChangePoint(
                index=index,
                run_id=run.run_id,
                version=run.version,
                started_at=run.started_at,
                before=before,
                after=after,
                change=_ratio(after, before),
                p_value=p,
                divergence=q,
            )
        )
    return Trend(
        metric=metric,
        points=tuple(points),
        change=_window_change(values, settings.min_segment),
        change_points=tuple(cps),
        settings=settings,
        notes=tuple(notes),
    )


def _window_change(values: np.ndarray, edge: int) -> float:
    """Median of the last `edge` values over that of the first ones, minus 1 (both ends of the window)."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return float("nan")
    k = max(1, min(edge, v.size // 2))
    return _ratio(float(np.median(v[-k:])), float(np.median(v[:k])))


def _ratio(after: float, before: float) -> float:
    return after / before - 1 if before != 0 and math.isfinite(before) else float("nan")
