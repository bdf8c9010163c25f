"""Drift and leaks over a soak run: Theil-Sen slopes of p95 and RSS with their intervals, a leak flag, and the
first third of the run judged against the last third by the verdict engine.

Input is the run's steady state (warm-up and partial windows already left out): its latency windows per
endpoint, the epoch time of the first kept window, and resource readings by window position.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import theilslopes

from benchlab.runners.analysis.compare import Comparison, Key, RunEvidence, Settings, Side, compare
from benchlab.runners.analysis.series import LatencySeries, ValueSeries, hist_percentiles, trim
from benchlab.runners.analysis.threshold import DEFAULT_THRESHOLDS, Thresholds

MB = 1e6
Positions = Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]
"""(metric, subject) → (window positions from the first kept window, mean reading per window)."""


@dataclass(frozen=True, kw_only=True)
class SoakSettings:
    """How drift and leaks are judged."""

    points: int = 30
    """The p95 slope is fitted over about this many chunks of windows (each chunk's pooled p95)."""
    confidence: float = 0.95
    """Level of the slopes' intervals."""
    leak_fraction: float = 0.05
    """A leak must also grow RSS by this share of its median over the analysed span ..."""
    leak_min_mb: float = 2.0
    """... and by at least this many MB."""
    replicates: int = 2000
    """Bootstrap replicates of the thirds comparison."""
    seed: int = 20240101


@dataclass(frozen=True, kw_only=True)
class Slope:
    """A Theil-Sen slope per hour with its interval."""

    per_hour: float
    low: float
    high: float
    unit: str
    """ms/h or MB/h."""
    level: float
    """Median of the values fitted (ms or MB)."""
    points: int

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True, kw_only=True)
class Memory:
    """RSS growth of one service."""

    service: str
    slope: Slope
    growth_mb: float
    """slope x analysed span."""
    leak: bool


@dataclass(frozen=True, kw_only=True)
class SoakResult:
    """Drift, leaks and the thirds comparison of a soak run."""

    hours: float
    """Length of the analysed steady state."""
    windows: int
    p95: Slope | None
    memory: tuple[Memory, ...]
    thirds: Comparison | None
    settings: SoakSettings
    notes: tuple[str, ...] = ()

    @property
    def leak(self) -> bool:
        """Any service leaks."""
        return any(m.leak for m in self.memory)


def theil_sen(hours: np.ndarray, values: np.ndarray, unit: str, confidence: float = 0.95) -> Slope | None:
    """Theil-Sen slope of values over hours with its interval (scipy); None with fewer than 3 finite points."""
    ok = np.isfinite(values) & np.isfinite(hours)
    if ok.sum() < 3 or np.ptp(hours[ok]) == 0:
        return None
    slope, _, low, high = theilslopes(values[ok], hours[ok], alpha=confidence)
    return Slope(
        per_hour=float(slope),
        low=float(low),
        high=float(high),
        unit=unit,
        level=float(np.median(values[ok])),
        points=int(ok.sum()),
    )


def p95_chunks(series: LatencySeries, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(hours from the start to each chunk's middle, the chunk's pooled p95) over about `points` chunks."""
    n = series.windows
    size = max(1, n // max(1, points))
    chunks = n // size
    if chunks == 0:
        return np.zeros(0), np.zeros(0)
    hist = series.hist[: chunks * size].reshape(chunks, size, -1).sum(axis=1)
    p95 = hist_percentiles(hist, series.buckets, [0.95])[:, 0]
    hours = (np.arange(chunks) * size + size / 2) * series.window_s / 3600
    return hours, p95


def soak(
    run_id: int,
    latency: Mapping[Key, LatencySeries],
    resources: Positions,
    settings: SoakSettings | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> SoakResult:
    """Slopes, leak flags and the first-third vs last-third comparison of one run's steady state."""
    settings = settings or SoakSettings()
    total = latency[("", "")]
    w, n = total.window_s, total.windows
    hours = n * w / 3600
    notes = []
    p95 = theil_sen(*p95_chunks(total, settings.points), unit="ms/h", confidence=settings.confidence)
    if p95 is None:
        notes.append("too few windows for a p95 slope")
    memory = []
    for (metric, subject), (pos, values) in sorted(resources.items()):
        if metric != "rss_bytes":
            continue
        slope = theil_sen(pos * w / 3600, values / MB, unit="MB/h", confidence=settings.confidence)
        if slope is None:
            continue
        growth = slope.per_hour * hours
        floor = max(settings.leak_min_mb, settings.leak_fraction * slope.level)
        memory.append(Memory(service=subject, slope=slope, growth_mb=growth, leak=slope.low > 0 and growth >= floor))
    if not memory:
        notes.append("no RSS readings: run with --monitor-pid or --monitor-process to judge leaks")
    thirds = compare_thirds(run_id, latency, resources, settings, thresholds)
    if thirds is None:
        notes.append("too few windows to compare the first and last thirds")
    return SoakResult(
        hours=hours,
        windows=n,
        p95=p95,
        memory=tuple(memory),
        thirds=thirds,
        settings=settings,
        notes=tuple(notes),
    )


def thirds(run_id: int, latency: Mapping[Key, LatencySeries], resources: Positions) -> tuple[Side, Side] | None:
    """The run's first and last thirds as two sides of a comparison (one run each); None under 6 windows."""
    n = latency[("", "")].windows
    k = n // 3
    if k < 2:
        return None
    sides = []
    for label, keep in (("first third", slice(0, k)), ("last third", slice(n - k, n))):
        values = {}
        for key, (pos, vals) in resources.items():
            inside = (pos >= keep.start) & (pos < keep.stop)
            if inside.any():
                values[key] = ValueSeries(values=vals[inside], window_s=latency[("", "")].window_s)
        evidence = RunEvidence(
            run_id=run_id, latency={key: trim(s, keep) for key, s in latency.items()}, resources=values
        )
        sides.append(Side(version=label, runs=[evidence]))
    return sides[0], sides[1]


def compare_thirds(
    run_id: int,
    latency: Mapping[Key, LatencySeries],
    resources: Positions,
    settings: SoakSettings,
    thresholds: Thresholds,
) -> Comparison | None:
    """The verdict engine on the last third against the first."""
    pair = thirds(run_id, latency, resources)
    if pair is None:
        return None
    return compare(pair[0], pair[1], thresholds, Settings(replicates=settings.replicates, seed=settings.seed))


def relative(slope: Slope) -> float:
    """The slope as a share of its level per hour (NaN when the level is 0)."""
    return slope.per_hour / slope.level if slope.level else math.nan
