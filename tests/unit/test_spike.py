"""Spike recovery on synthetic timelines: rolling p95 and error rate back within the pre-spike band."""

from __future__ import annotations

import numpy as np
import pytest

from benchlab.runners.analysis.series import BUCKETS_PER_E, LatencySeries, latency_series
from benchlab.runners.analysis.spike import SpikeSettings, recovery, rolling

T0 = 1_700_000_000.0


def _series(ms: list[float], fails: list[int] | None = None, rps: int = 100) -> LatencySeries:
    """One window a second of `rps` requests all taking `ms` (p95 within 2%), `fails` of them failed."""
    fails = fails or [0] * len(ms)
    rows = [
        (1, "/a", "GET", int(T0) + w, int(np.floor(np.log(lat) * BUCKETS_PER_E)), rps, f, lat * rps)
        for w, (lat, f) in enumerate(zip(ms, fails, strict=True))
    ]
    return latency_series(rows, 1.0)[1][("", "")]


def _timeline(after: list[float]) -> tuple[list[float], list[int]]:
    """20 s at 20 ms, a 10 s spike at 300 ms with 5 failures a second, then `after`."""
    ms = [20.0] * 20 + [300.0] * 10 + after
    fails = [0] * 20 + [5] * 10 + [0] * len(after)
    return ms, fails


def test_rolling_pools_the_last_windows() -> None:
    p95, err = rolling(_series([10, 10, 100, 10, 10], [0, 0, 50, 0, 0]), 3)
    assert np.isnan(p95[:2]).all()
    assert p95[2] == pytest.approx(100, rel=0.03) and p95[4] == pytest.approx(100, rel=0.03)
    assert err[3] == pytest.approx(50 / 300)


def test_recovery_time_counts_from_the_spike_end_until_the_rolling_values_stay_in_the_band() -> None:
    ms, fails = _timeline([300.0, 300.0] + [20.0] * 20)  # two slow windows after the end
    result = recovery(_series(ms, fails), T0, (T0 + 20, T0 + 30))
    # windows 30, 31 are slow; the rolling p95 of 3 windows is clean from window 34, which ends 5 s after the spike
    assert result.recovered and result.recovery_s == pytest.approx(5.0)
    assert result.peak_p95_ms == pytest.approx(300, rel=0.03)
    assert result.spike_errors == 50 and result.spike_requests == 1000
    assert result.pre_p95_ms == pytest.approx(20, rel=0.03)
    assert result.band_p95_ms == pytest.approx(25, rel=0.05)  # 20 ms x 1.25
    assert result.spike_s == 10


def test_an_immediate_recovery_takes_one_rolling_width() -> None:
    ms, fails = _timeline([20.0] * 20)
    result = recovery(_series(ms, fails), T0, (T0 + 20, T0 + 30), SpikeSettings(rolling=1))
    assert result.recovered and result.recovery_s == pytest.approx(1.0)


def test_never_back_in_the_band_is_not_recovered() -> None:
    ms, fails = _timeline([80.0] * 20)
    result = recovery(_series(ms, fails), T0, (T0 + 20, T0 + 30))
    assert not result.recovered and result.recovery_s is None
    assert any("not recovered" in n for n in result.notes)


def test_a_brief_return_is_not_recovery_but_staying_back_is() -> None:
    ms, fails = _timeline([20.0] * 6 + [300.0] + [20.0] * 14)
    result = recovery(_series(ms, fails), T0, (T0 + 20, T0 + 30))
    # back at window 32 (rolling clean) but 36 is slow again: the rolling values are clean for good from 39
    assert result.recovered and result.recovery_s == pytest.approx(10.0)


def test_errors_after_the_spike_delay_recovery() -> None:
    ms, fails = _timeline([20.0] * 20)
    fails[30:35] = [20] * 5
    result = recovery(_series(ms, fails), T0, (T0 + 20, T0 + 30))
    assert result.recovered and result.recovery_s == pytest.approx(8.0)  # window 37 is the first clean rolling one
