"""The breaking point of a stress run: the last step that met the SLO, the step that broke it and how, the
first resource to saturate, and a Universal Scalability Law fit of throughput against users.

Input is plain data: the run's all-endpoint latency windows (`LatencySeries` and the epoch time of its first
window), the steps (users and time range, from the run's `stress_step` events) and the sidecar's readings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import curve_fit
from scipy.stats import theilslopes

from benchlab.runners.analysis.series import LatencySeries, hist_percentiles

Readings = Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]
"""(metric, subject) → (epoch seconds, values): cpu_percent / rss_bytes per service, queue_length per queue."""
MIN_USL_STEPS = 4
"""A USL fit needs this many steps with throughput."""


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the run's plan as it happened."""

    index: int
    """1-based step number."""
    users: int
    start_s: float
    """Epoch seconds at which the step began."""
    end_s: float
    """Epoch seconds at which the next step began (or the run ended)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The SLO of the stress shape and how its saturation is judged."""

    p95_ms: float = 1000.0
    error_rate: float = 0.05
    settle_s: float = 5.0
    """Seconds at the start of each step left out (at most half the step), as the shape does."""
    cores: int = 1
    """CPU cores available to the target."""
    cpu_near: float = 0.85
    """CPU at or above this share of k whole cores counts as near k cores."""
    memory_growth: float = 0.2
    """RSS this much above the first step's (and still growing) counts as memory saturation."""


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """What one step measured."""

    index: int
    users: int
    seconds: float
    """Length of the windows measured (the step after its settling time)."""
    requests: int
    rps: float
    p95_ms: float
    error_rate: float
    broke: tuple[str, ...]
    """Criteria broken: "p95 812 ms > 500 ms", "error rate 7.1% > 5%"; empty when the SLO held."""
    resources: dict[str, float] = field(default_factory=dict)
    """"metric subject" → mean reading over the step."""


@dataclass(frozen=True, kw_only=True)
class Saturation:
    """The first resource to saturate."""

    resource: str
    """cpu, memory or queue."""
    subject: str
    """Service or queue."""
    step: int
    value: float
    reason: str


@dataclass(frozen=True, kw_only=True)
class USLFit:
    """X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1)), fitted by least squares (scipy.optimize.curve_fit)."""

    lam: float
    """Throughput of one user (rps)."""
    sigma: float
    """Contention."""
    kappa: float
    """Coherency (crosstalk)."""
    peak_users: float
    """N* = sqrt((1 - sigma) / kappa); infinite when kappa = 0."""
    max_rps: float
    """X(N*), or lambda / sigma when kappa = 0."""
    r2: float
    measured: tuple[tuple[int, float], ...]
    """(users, rps) of the steps fitted."""
    fitted: tuple[float, ...]
    """Model throughput at each measured users count."""


@dataclass(frozen=True, kw_only=True)
class BreakingPoint:
    """The stress run's result."""

    steps: tuple[StepResult, ...]
    last_ok: StepResult | None
    broken: StepResult | None
    source: str
    """"measured" (the steps' windows) or "shape" (the run's live slo_break event)."""
    saturation: Saturation | None
    usl: USLFit | None
    limits: Limits
    notes: tuple[str, ...] = ()


def measure_step(step: Step, series: LatencySeries, t0: float, limits: Limits) -> tuple[StepResult, slice]:
    """Throughput, p95 and error rate of one step over its full windows after the settling time."""
    w = series.window_s
    settle = min(limits.settle_s, (step.end_s - step.start_s) / 2)
    keep = _full_windows(t0, w, series.windows, step.start_s + settle, step.end_s)
    if keep.stop - keep.start < 2:
        keep = _full_windows(t0, w, series.windows, step.start_s, step.end_s)
    counts = series.counts[keep]
    requests = int(counts.sum())
    seconds = counts.size * w
    p95 = float(hist_percentiles(series.hist[keep].sum(axis=0), series.buckets, [0.95])[0, 0]) if requests else math.nan
    errors = float(series.failures[keep].sum() / requests) if requests else math.nan
    broke = []
    if p95 > limits.p95_ms:
        broke.append(f"p95 {p95:.0f} ms > {limits.p95_ms:g} ms")
    if errors > limits.error_rate:
        broke.append(f"error rate {errors:.2%} > {limits.error_rate:.2%}")
    result = StepResult(
        index=step.index,
        users=step.users,
        seconds=seconds,
        requests=requests,
        rps=requests / seconds if seconds else math.nan,
        p95_ms=p95,
        error_rate=errors,
        broke=tuple(broke),
    )
    return result, keep


def _full_windows(t0: float, w: float, n: int, lo: float, hi: float) -> slice:
    start = max(0, math.ceil((lo - t0) / w - 1e-9))
    stop = min(n, math.floor((hi - t0) / w + 1e-9))
    return slice(start, max(start, stop))


def breaking_point(
    steps: Sequence[Step],
    series: LatencySeries,
    t0: float,
    readings: Readings,
    limits: Limits,
    live_break: tuple[int, str] | None = None,
) -> BreakingPoint:
    """The breaking point; `live_break` is (step index, message) of the run's slo_break event, if any."""
    results = []
    for step in steps:
        result, keep = measure_step(step, series, t0, limits)
        lo, hi = t0 + keep.start * series.window_s, t0 + keep.stop * series.window_s
        results.append(_with_resources(result, readings, lo, hi) if keep.stop > keep.start else result)
    notes: list[str] = []
    broken = next((r for r in results if r.broke), None)
    source = "measured"
    if broken is None and live_break is not None:
        index, message = live_break
        hit = [r for r in results if r.index == index]
        if hit:
            broken = _replace_broke(hit[0], _live_criteria(message, limits))
            source = "shape"
            notes.append("the shape's live statistics (last 10 s) broke the SLO; the step's windows did not")
    if broken is None:
        notes.append("the SLO held at every step: the breaking point is beyond the highest step")
    ok = [r for r in results if broken is None or r.index < broken.index]
    until = broken.index if broken else (results[-1].index if results else 0)
    saturation = first_saturation([r for r in results if r.index <= until], readings, steps, limits, broken)
    usl = fit_usl([(r.users, r.rps) for r in results if r.requests > 0 and math.isfinite(r.rps)])
    if usl is None:
        notes.append(f"no USL fit: it needs at least {MIN_USL_STEPS} steps with throughput")
    return BreakingPoint(
        steps=tuple(results),
        last_ok=ok[-1] if ok else None,
        broken=broken,
        source=source,
        saturation=saturation,
        usl=usl,
        limits=limits,
        notes=tuple(notes),
    )


def _replace_broke(r: StepResult, broke: tuple[str, ...]) -> StepResult:
    return StepResult(
        index=r.index,
        users=r.users,
        seconds=r.seconds,
        requests=r.requests,
        rps=r.rps,
        p95_ms=r.p95_ms,
        error_rate=r.error_rate,
        broke=broke,
        resources=r.resources,
    )


_LIVE = re.compile(r"p95_ms=(?P<p95>[\d.]+|None)\s+fail_ratio=(?P<fail>[\d.]+)")


def _live_criteria(message: str, limits: Limits) -> tuple[str, ...]:
    """Criteria named by a slo_break event message (`... p95_ms=812 fail_ratio=0.0100 (slo ...)`)."""
    m = _LIVE.search(message)
    if m is None:
        return (f"live: {message}",)
    out = []
    if m["p95"] != "None" and float(m["p95"]) > limits.p95_ms:
        out.append(f"p95 {float(m['p95']):.0f} ms > {limits.p95_ms:g} ms (live)")
    if float(m["fail"]) > limits.error_rate:
        out.append(f"error rate {float(m['fail']):.2%} > {limits.error_rate:.2%} (live)")
    return tuple(out) or (f"live: {message}",)


def _with_resources(r: StepResult, readings: Readings, lo: float, hi: float) -> StepResult:
    means = {}
    for (metric, subject), (ts, values) in readings.items():
        inside = (ts >= lo) & (ts < hi)
        if inside.any():
            means[f"{metric} {subject}"] = float(values[inside].mean())
    return StepResult(**{**r.__dict__, "resources": means})


def first_saturation(
    results: Sequence[StepResult],
    readings: Readings,
    steps: Sequence[Step],
    limits: Limits,
    broken: StepResult | None,
) -> Saturation | None:
    """The earliest step at which a resource saturated (CPU first, then memory, then queues on a tie).

    - CPU: at least `cpu_near` of k whole cores (k ≤ `cores`), and either all cores or no longer rising with
      the load (under a quarter of the users' relative growth) or the step where the SLO broke. A service
      bound by k cores (the GIL, a worker count, a cgroup quota) flattens at k x 100%.
    - Memory: RSS `memory_growth` above the first step's reading and still growing (5% over the previous step).
    - Queue: its length growing within the step (Theil-Sen slope with its 95% interval above zero).
    """
    by_index = {s.index: s for s in steps}
    for k, r in enumerate(results):
        prev = results[k - 1] if k else None
        for key, value in sorted(r.resources.items()):
            metric, _, subject = key.partition(" ")
            if metric == "cpu_percent":
                reason = _cpu_reason(key, r, prev, limits, broken)
                if reason:
                    return Saturation(resource="cpu", subject=subject, step=r.index, value=value, reason=reason)
        for key, value in sorted(r.resources.items()):
            metric, _, subject = key.partition(" ")
            first = next((x.resources[key] for x in results if key in x.resources), None)
            before = prev.resources.get(key) if prev else None
            growing = first and before and value > first * (1 + limits.memory_growth) and value > before * 1.05
            if metric == "rss_bytes" and growing and first:
                reason = f"RSS {value / 2**20:.0f} MiB, {value / first - 1:+.0%} since the first step and still growing"
                return Saturation(resource="memory", subject=subject, step=r.index, value=value, reason=reason)
            if metric == "queue_length" and r.index in by_index:
                reason = _queue_reason(readings.get((metric, subject)), by_index[r.index])
                if reason:
                    return Saturation(resource="queue", subject=subject, step=r.index, value=value, reason=reason)
    return None


def _cpu_reason(
    key: str, r: StepResult, prev: StepResult | None, limits: Limits, broken: StepResult | None
) -> str | None:
    cpu = r.resources[key]
    k = max(1, math.ceil(cpu / 100 - (1 - limits.cpu_near)))
    if k > limits.cores or cpu < limits.cpu_near * 100 * k:
        return None
    where = f"CPU {cpu:.0f}% (near {k} of {limits.cores} core{'s' if limits.cores > 1 else ''})"
    if k == limits.cores:
        return f"{where}: every core available"
    if prev is not None and prev.users < r.users and prev.resources.get(key):
        cpu_growth = cpu / prev.resources[key] - 1
        user_growth = r.users / prev.users - 1
        if cpu_growth < 0.25 * user_growth:
            return f"{where}: flat ({cpu_growth:+.0%}) while users grew {user_growth:+.0%}"
    if broken is not None and broken.index == r.index:
        return f"{where} when the SLO broke"
    return None


def _queue_reason(reading: tuple[np.ndarray, np.ndarray] | None, step: Step) -> str | None:
    if reading is None:
        return None
    ts, values = reading
    inside = (ts >= step.start_s) & (ts < step.end_s)
    if inside.sum() < 3 or np.ptp(values[inside]) == 0:
        return None
    slope, _, low, _ = theilslopes(values[inside], ts[inside], alpha=0.95)
    if low <= 0 or values[inside].mean() < 1:
        return None
    return f"backlog growing {slope:.1f}/s (95% CI from {low:.1f}/s)"


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """Throughput of the Universal Scalability Law at concurrency n."""
    return np.asarray(lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)))


def fit_usl(points: Sequence[tuple[int, float]]) -> USLFit | None:
    """lambda, sigma, kappa by bounded least squares over (users, rps); None under MIN_USL_STEPS distinct users."""
    pts = sorted((int(n), float(x)) for n, x in points if n > 0 and math.isfinite(x) and x > 0)
    if len({n for n, _ in pts}) < MIN_USL_STEPS:
        return None
    n = np.array([p[0] for p in pts], dtype=float)
    x = np.array([p[1] for p in pts])
    lam0 = float(x[0] / n[0])
    try:
        (lam, sigma, kappa), _ = curve_fit(
            usl, n, x, p0=[lam0, 0.05, 0.001], bounds=([0, 0, 0], [np.inf, 1, 1]), maxfev=20000
        )
    except (RuntimeError, ValueError):
        return None
    fitted = usl(n, lam, sigma, kappa)
    ss_res, ss_tot = float(((x - fitted) ** 2).sum()), float(((x - x.mean()) ** 2).sum())
    if kappa > 1e-12:
        peak = math.sqrt((1 - sigma) / kappa)
        top = float(usl(np.array([peak]), lam, sigma, kappa)[0])
    else:
        peak, top = math.inf, (lam / sigma if sigma > 0 else math.inf)
    return USLFit(
        lam=float(lam),
        sigma=float(sigma),
        kappa=float(kappa),
        peak_users=peak,
        max_rps=top,
        r2=1 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        measured=tuple(pts),
        fitted=tuple(float(v) for v in fitted),
    )
