"""Soak drift and leaks: Theil-Sen slopes with intervals, the leak flag, and the thirds compared by the engine."""

from __future__ import annotations

import numpy as np
import pytest

from benchlab.runners.analysis.series import BUCKETS_PER_E, LatencySeries, latency_series, trim
from benchlab.runners.analysis.soak import SoakSettings, p95_chunks, soak, theil_sen, thirds

WINDOWS = 600  # ten minutes of 1 s windows
FAST = SoakSettings(replicates=400)


def _latency(growth: float, rng: np.random.Generator) -> dict[tuple[str, str], LatencySeries]:
    """40 requests a window, lognormal around 20 ms, the median rising by `growth` over the run."""
    rows = []
    for w in range(WINDOWS):
        rt = 20 * (1 + growth * w / WINDOWS) * np.exp(rng.normal(0, 0.3, 40))
        bucket = np.floor(np.log(rt) * BUCKETS_PER_E).astype(int)
        for b in np.unique(bucket):
            m = bucket == b
            rows.append((1, "/a", "GET", 10_000 + w, int(b), int(m.sum()), 0, float(rt[m].sum())))
    return latency_series(rows, 1.0)[1]


def _rss(mb_per_hour: float, rng: np.random.Generator) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    pos = np.arange(WINDOWS)
    mb = 60 + mb_per_hour * pos / 3600 + rng.normal(0, 0.3, WINDOWS)
    return {("rss_bytes", "target"): (pos, mb * 1e6)}


def test_theil_sen_slope_and_interval_cover_the_true_slope() -> None:
    rng = np.random.default_rng(1)
    hours = np.linspace(0, 2, 100)
    slope = theil_sen(hours, 50 + 10 * hours + rng.normal(0, 2, hours.size), unit="ms/h")
    assert slope is not None and slope.significant
    assert slope.low < 10 < slope.high and slope.per_hour == pytest.approx(10, abs=1.5)
    flat = theil_sen(hours, 50 + rng.normal(0, 2, hours.size), unit="ms/h")
    assert flat is not None and not flat.significant
    assert theil_sen(hours[:2], hours[:2], unit="ms/h") is None


def test_p95_chunks_pool_windows() -> None:
    series = _latency(0.0, np.random.default_rng(2))[("", "")]
    hours, p95 = p95_chunks(series, 30)
    assert hours.size == 30 and np.all(np.diff(hours) > 0)
    assert np.median(p95) == pytest.approx(20 * np.exp(1.645 * 0.3), rel=0.1)


def test_a_leak_is_flagged_and_a_flat_memory_is_not() -> None:
    rng = np.random.default_rng(3)
    latency = _latency(0.0, rng)
    leaky = soak(1, latency, _rss(120.0, rng), FAST)  # 120 MB/h: 20 MB over ten minutes
    assert leaky.leak
    (mem,) = leaky.memory
    assert mem.slope.low > 0 and mem.slope.per_hour == pytest.approx(120, rel=0.1)
    assert mem.growth_mb == pytest.approx(20, rel=0.1)
    steady = soak(1, latency, _rss(0.0, rng), FAST)
    assert not steady.leak and not steady.memory[0].leak


def test_a_tiny_significant_growth_is_not_a_leak() -> None:
    rng = np.random.default_rng(4)
    result = soak(1, _latency(0.0, rng), _rss(6.0, rng), FAST)  # 1 MB over ten minutes of 60 MB
    assert result.memory[0].slope.low > 0 and not result.leak


def test_p95_drift_is_measured_and_the_last_third_is_a_regression() -> None:
    rng = np.random.default_rng(5)
    drifting = soak(1, _latency(0.6, rng), {}, FAST)
    assert drifting.p95 is not None and drifting.p95.significant and drifting.p95.per_hour > 0
    assert drifting.thirds is not None
    p95 = next(r for r in drifting.thirds.results if r.endpoint == "" and r.metric == "p95_ms")
    assert p95.verdict == "regression" and p95.change == pytest.approx(0.4, abs=0.12)
    assert any("no RSS readings" in n for n in drifting.notes)
    flat = soak(1, _latency(0.0, rng), {}, FAST)
    assert flat.p95 is not None and not flat.p95.significant
    assert flat.thirds is not None and flat.thirds.overall != "regression"


def test_thirds_split_latency_and_resources_by_window_position() -> None:
    rng = np.random.default_rng(6)
    pair = thirds(1, _latency(0.0, rng), _rss(0.0, rng))
    assert pair is not None
    first, last = pair
    assert first.runs[0].windows == last.runs[0].windows == WINDOWS // 3
    assert first.runs[0].resources[("rss_bytes", "target")].values.size == WINDOWS // 3
    short = {k: trim(v, slice(0, 5)) for k, v in _latency(0.0, rng).items()}
    assert thirds(1, short, {}) is None
    assert soak(1, short, {}, FAST).thirds is None
