"""Breaking point of stress runs and the Universal Scalability Law fit, on synthetic steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchlab.runners.analysis.series import BUCKETS_PER_E, LatencySeries, latency_series
from benchlab.runners.analysis.stress import Limits, Step, breaking_point, fit_usl, usl

T0 = 1_700_000_000.0
STEP_S = 10


def _series(ms: list[float], rps: list[float], errors: list[float]) -> LatencySeries:
    """One window a second; each window's requests all take `ms` (so its p95 is `ms` within 2%)."""
    rows = []
    for w, (lat, n, err) in enumerate(zip(ms, rps, errors, strict=True)):
        count = round(n)
        rows.append(
            (
                1,
                "/a",
                "GET",
                int(T0) + w,
                int(np.floor(np.log(lat) * BUCKETS_PER_E)),
                count,
                round(count * err),
                lat * count,
            )
        )
    return latency_series(rows, 1.0)[1][("", "")]


def _run(p95: list[float], rps: list[float], errors: list[float] | None = None) -> tuple[list[Step], LatencySeries]:
    """Steps of STEP_S seconds at 10, 20, ... users; each step's windows at its p95, rps and error rate."""
    errors = errors or [0.0] * len(p95)
    steps = [
        Step(index=i + 1, users=10 * (i + 1), start_s=T0 + i * STEP_S, end_s=T0 + (i + 1) * STEP_S)
        for i in range(len(p95))
    ]
    per_window = [(p, r, e) for p, r, e in zip(p95, rps, errors, strict=True) for _ in range(STEP_S)]
    return steps, _series(*map(list, zip(*per_window, strict=True)))  # type: ignore[arg-type]


def _cpu(values: list[float]) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    ts = T0 + np.arange(len(values) * STEP_S)
    return {("cpu_percent", "api"): (ts, np.repeat(values, STEP_S).astype(float))}


def test_usl_fit_recovers_the_parameters_of_a_synthetic_curve() -> None:
    n = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48])
    x = usl(n, 50.0, 0.05, 0.002) * (1 + np.random.default_rng(1).normal(0, 0.01, n.size))
    fit = fit_usl(list(zip(n.tolist(), x.tolist(), strict=True)))
    assert fit is not None
    assert fit.lam == pytest.approx(50, rel=0.05)
    assert fit.sigma == pytest.approx(0.05, abs=0.02)
    assert fit.kappa == pytest.approx(0.002, rel=0.3)
    assert fit.peak_users == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.15)
    assert fit.max_rps == pytest.approx(float(usl(np.array([21.8]), 50, 0.05, 0.002)[0]), rel=0.05)
    assert fit.r2 > 0.99
    assert len(fit.fitted) == n.size


def test_usl_of_linear_scaling_has_no_peak_and_few_steps_no_fit() -> None:
    linear = [(n, 10.0 * n) for n in (1, 2, 3, 4, 5)]
    fit = fit_usl(linear)
    assert fit is not None and fit.sigma < 1e-3 and fit.kappa < 1e-4
    assert fit.peak_users > 100 or math.isinf(fit.peak_users)
    assert fit_usl([(1, 10.0), (2, 19.0), (3, 27.0)]) is None


def test_breaking_point_names_the_last_good_step_the_broken_one_and_the_criterion() -> None:
    steps, series = _run([20, 25, 40, 300, 800], [100, 190, 260, 280, 270])
    bp = breaking_point(steps, series, T0, {}, Limits(p95_ms=200, error_rate=0.05, settle_s=2))
    assert bp.last_ok is not None and bp.last_ok.index == 3 and bp.last_ok.users == 30
    assert bp.broken is not None and bp.broken.index == 4
    assert len(bp.broken.broke) == 1 and bp.broken.broke[0].startswith("p95 30") and "> 200 ms" in bp.broken.broke[0]
    assert bp.broken.p95_ms == pytest.approx(300, rel=0.03)
    assert bp.last_ok.rps == pytest.approx(260, rel=0.01)
    assert bp.source == "measured"
    assert bp.usl is not None and len(bp.usl.measured) == 5


def test_error_rate_breaks_too() -> None:
    steps, series = _run([20, 20, 20, 20], [100, 200, 300, 400], [0.0, 0.01, 0.1, 0.2])
    bp = breaking_point(steps, series, T0, {}, Limits(p95_ms=200, error_rate=0.05, settle_s=2))
    assert bp.broken is not None and bp.broken.index == 3
    assert bp.broken.broke == ("error rate 10.00% > 5.00%",)


def test_cpu_flat_at_one_core_while_users_grow_is_the_saturated_resource() -> None:
    steps, series = _run([20, 25, 40, 300, 800], [100, 190, 260, 280, 270])
    limits = Limits(p95_ms=200, settle_s=2, cores=2)
    bp = breaking_point(steps, series, T0, _cpu([40, 70, 95, 97, 98]), limits)
    assert bp.saturation is not None
    assert (bp.saturation.resource, bp.saturation.subject, bp.saturation.step) == ("cpu", "api", 4)
    assert "flat" in bp.saturation.reason
    one_core = breaking_point(steps, series, T0, _cpu([40, 70, 95, 97, 98]), Limits(p95_ms=200, settle_s=2, cores=1))
    assert one_core.saturation is not None and one_core.saturation.step == 3
    assert "every core" in one_core.saturation.reason


def test_cpu_far_from_a_core_is_not_saturated_and_memory_or_queue_growth_is() -> None:
    steps, series = _run([20, 25, 40, 300], [100, 190, 260, 280])
    ts = T0 + np.arange(4 * STEP_S)
    rss = 100e6 * (1 + 0.02 * np.arange(ts.size))  # +2% a second
    readings = _cpu([20, 30, 40, 50]) | {("rss_bytes", "api"): (ts, rss)}
    bp = breaking_point(steps, series, T0, readings, Limits(p95_ms=200, settle_s=2, cores=2))
    assert bp.saturation is not None and bp.saturation.resource == "memory" and bp.saturation.step == 3
    assert "+36% since the first step" in bp.saturation.reason  # step 2 was only +18%, under the 20% of memory_growth
    queue = {("queue_length", "jobs"): (ts, np.r_[np.zeros(20), np.arange(20) * 3.0])}
    bp = breaking_point(steps, series, T0, _cpu([20, 30, 40, 50]) | queue, Limits(p95_ms=200, settle_s=2, cores=2))
    assert bp.saturation is not None and (bp.saturation.resource, bp.saturation.step) == ("queue", 3)
    assert bp.steps[2].resources["queue_length jobs"] > 0


def test_the_shapes_live_break_is_used_when_the_windows_held() -> None:
    steps, series = _run([20, 25, 40, 60], [100, 190, 260, 280])
    message = "step 4/4 users=40: p95_ms=250 fail_ratio=0.0010 (slo p95_ms<=200 fail_ratio<=0.05)"
    bp = breaking_point(steps, series, T0, {}, Limits(p95_ms=200, settle_s=2), live_break=(4, message))
    assert bp.source == "shape" and bp.broken is not None and bp.broken.index == 4
    assert bp.broken.broke == ("p95 250 ms > 200 ms (live)",)
    assert bp.last_ok is not None and bp.last_ok.index == 3


def test_no_break_says_the_breaking_point_is_beyond_the_last_step() -> None:
    steps, series = _run([20, 25, 30], [100, 200, 300])
    bp = breaking_point(steps, series, T0, {}, Limits(p95_ms=200, settle_s=2))
    assert bp.broken is None and bp.last_ok is not None and bp.last_ok.index == 3
    assert any("beyond the highest step" in n for n in bp.notes)
    assert bp.usl is None and any("USL" in n for n in bp.notes)
