"""Recovery from a spike: how long after the spike's end the rolling p95 and error rate are back, and stay back,
within the band they kept before the spike; the peak p95 and the errors during the spike.

Input is the run's all-endpoint latency windows (`LatencySeries`, the epoch time of its first window) and the
times of the `spike_start` and `spike_end` events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchlab.runners.analysis.series import LatencySeries, hist_percentiles


@dataclass(frozen=True, kw_only=True)
class SpikeSettings:
    """How recovery is judged."""

    rolling: int = 3
    """Windows pooled into each rolling p95 and error rate."""
    consecutive: int = 5
    """Rolling values in a row that must be within the band to call it recovered."""
    tolerance: float = 0.25
    """The band's p95 limit: the pre-spike rolling p95's 95th percentile times (1 + tolerance) ..."""
    slack_ms: float = 2.0
    """... and at least that plus this many ms (fast endpoints jitter by whole milliseconds)."""
    error_slack: float = 0.01
    """The band's error-rate limit: the pre-spike rolling error rate's 95th percentile plus this."""
    warmup: float = 0.2
    """Share of the pre-spike period left out as warm-up."""


@dataclass(frozen=True, kw_only=True)
class SpikeResult:
    """Recovery and the spike's damage."""

    recovered: bool
    recovery_s: float | None
    """Seconds from the spike's end until the rolling values entered the band for good; None if never."""
    band_p95_ms: float
    band_error_rate: float
    pre_p95_ms: float
    """p95 over the pre-spike windows (pooled)."""
    peak_p95_ms: float
    """Highest one-window p95 during the spike."""
    spike_errors: int
    spike_requests: int
    spike_s: float
    """Length of the spike."""
    observed_after_s: float
    """Seconds of data after the spike's end."""
    settings: SpikeSettings
    notes: tuple[str, ...] = ()


def rolling(series: LatencySeries, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling p95 (ms) and error rate over `width` windows ending at each window (NaN before `width` or if empty)."""
    n = series.windows
    hist = np.cumsum(series.hist, axis=0)
    counts, fails = np.cumsum(series.counts), np.cumsum(series.failures)
    p95 = np.full(n, np.nan)
    err = np.full(n, np.nan)
    if n < width:
        return p95, err
    idx = np.arange(width - 1, n)
    prev = idx - width
    pooled = hist[idx] - np.where(prev[:, None] >= 0, hist[np.maximum(prev, 0)], 0)
    requests = counts[idx] - np.where(prev >= 0, counts[np.maximum(prev, 0)], 0)
    failed = fails[idx] - np.where(prev >= 0, fails[np.maximum(prev, 0)], 0)
    p95[idx] = hist_percentiles(pooled, series.buckets, [0.95])[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        err[idx] = np.where(requests > 0, failed / requests, np.nan)
    return p95, err


def recovery(
    series: LatencySeries, t0: float, spike: tuple[float, float], settings: SpikeSettings | None = None
) -> SpikeResult:
    """Recovery from the spike between epoch seconds `spike` = (start, end); windows start at `t0`."""
    settings = settings or SpikeSettings()
    start_s, end_s = spike
    w, n = series.window_s, series.windows
    starts = t0 + np.arange(n) * w
    full = n - 1  # the run's last window is partial
    pre_lo = t0 + w + settings.warmup * max(0.0, start_s - t0 - w)
    roll_p95, roll_err = rolling(series, settings.rolling)
    span_lo = starts - (settings.rolling - 1) * w
    pre = (span_lo >= pre_lo) & (starts + w <= start_s) & np.isfinite(roll_p95)
    notes = []
    if pre.sum() < 3:
        notes.append(f"only {int(pre.sum())} rolling value(s) before the spike: the band is rough")
        pre = (starts + w <= start_s) & np.isfinite(roll_p95)
    if not pre.any():
        return _no_band(series, starts, spike, settings, notes)
    base_p95 = float(np.quantile(roll_p95[pre], 0.95))
    base_err = float(np.nanquantile(roll_err[pre], 0.95))
    band_p95 = max(base_p95 * (1 + settings.tolerance), base_p95 + settings.slack_ms)
    band_err = base_err + settings.error_slack
    within = np.isfinite(roll_p95) & (roll_p95 <= band_p95) & (roll_err <= band_err)
    after = np.flatnonzero((starts >= end_s - 1e-9) & (np.arange(n) < full))
    found = _first_run(within, after, settings.consecutive)
    recovery_s = None if found is None else max(0.0, float(starts[found] + w - end_s))
    if found is None:
        notes.append(
            f"not recovered: no {settings.consecutive} consecutive rolling values within the band "
            f"in the {len(after) * w:g} s after the spike"
        )
    pre_hist = series.hist[(starts >= pre_lo) & (starts + w <= start_s)].sum(axis=0)
    peak, errors, requests = _spike_damage(series, starts, spike)
    return SpikeResult(
        recovered=found is not None,
        recovery_s=recovery_s,
        band_p95_ms=band_p95,
        band_error_rate=band_err,
        pre_p95_ms=float(hist_percentiles(pre_hist, series.buckets, [0.95])[0, 0]) if pre_hist.sum() else math.nan,
        peak_p95_ms=peak,
        spike_errors=errors,
        spike_requests=requests,
        spike_s=end_s - start_s,
        observed_after_s=len(after) * w,
        settings=settings,
        notes=tuple(notes),
    )


def _first_run(within: np.ndarray, candidates: np.ndarray, length: int) -> int | None:
    """The first index in `candidates` from which `length` consecutive candidates are all within the band."""
    ok = within[candidates]
    for k in range(len(candidates) - length + 1):
        if ok[k : k + length].all():
            return int(candidates[k])
    return None


def _spike_damage(series: LatencySeries, starts: np.ndarray, spike: tuple[float, float]) -> tuple[float, int, int]:
    """Peak one-window p95, failures and requests of the windows that overlap the spike."""
    during = (starts + series.window_s > spike[0] + 1e-9) & (starts < spike[1])
    if not during.any() or series.counts[during].sum() == 0:
        return math.nan, 0, 0
    p95 = hist_percentiles(series.hist[during], series.buckets, [0.95])[:, 0]
    return float(np.nanmax(p95)), int(series.failures[during].sum()), int(series.counts[during].sum())


def _no_band(
    series: LatencySeries, starts: np.ndarray, spike: tuple[float, float], settings: SpikeSettings, notes: list[str]
) -> SpikeResult:
    peak, errors, requests = _spike_damage(series, starts, spike)
    return SpikeResult(
        recovered=False,
        recovery_s=None,
        band_p95_ms=math.nan,
        band_error_rate=math.nan,
        pre_p95_ms=math.nan,
        peak_p95_ms=peak,
        spike_errors=errors,
        spike_requests=requests,
        spike_s=spike[1] - spike[0],
        observed_after_s=float(np.sum(starts >= spike[1]) * series.window_s),
        settings=settings,
        notes=(*notes, "no requests before the spike: recovery cannot be judged"),
    )
