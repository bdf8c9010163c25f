"""Compare a candidate with a baseline: per endpoint and overall, every metric with its change, interval and verdict.

The method (named in every result's `method`):

1. The store aggregates each run into fixed windows (1 s by default); windows, not requests, are the unit.
2. Each replicate resamples runs with replacement when a side has several, then windows inside each drawn run
   with a stationary bootstrap whose expected block length follows the run's own autocorrelation.
3. The change is the candidate's statistic over the baseline's (relative metrics, as a log ratio) or their
   difference (the error rate). Its interval is the percentile interval of the replicates' changes.
4. When a side has too few runs to estimate the run-to-run spread itself, a calibrated noise floor (from
   `benchlab calibrate`) is added to the replicates as independent normal noise on the log ratio.
5. Two-sided bootstrap p-values are adjusted across all metrics and endpoints with Benjamini-Hochberg.
6. `verdict.decide` turns change, interval, threshold and adjusted p-value into a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchlab.runners.analysis import bootstrap
from benchlab.runners.analysis.estimate import (
    LATENCY_METRICS,
    QUANTILE_OF,
    REQUEST_METRICS,
    Estimates,
    latency_estimates,
    value_estimates,
)
from benchlab.runners.analysis.evidence import (
    Comparison,
    FloorKey,
    Key,
    MetricResult,
    RunEvidence,
    Settings,
    Side,
)
from benchlab.runners.analysis.series import mean_per_window
from benchlab.runners.analysis.threshold import DEFAULT_THRESHOLDS, Thresholds
from benchlab.runners.analysis.verdict import INCONCLUSIVE, Rule, decide, overall

__all__ = ["Comparison", "FloorKey", "Key", "MetricResult", "RunEvidence", "Settings", "Side", "compare"]

RESOURCE_THRESHOLD = {"cpu_percent": "cpu_usage", "rss_bytes": "memory_usage", "queue_length": "queue_length"}
"""Resource and queue metrics and the threshold key that applies to each."""
METHOD_NAME = "windowed stationary block bootstrap"


def compare(
    baseline: Side, candidate: Side, thresholds: Thresholds = DEFAULT_THRESHOLDS, settings: Settings | None = None
) -> Comparison:
    """Judge every metric the two sides have in common; pure, deterministic for a given seed."""
    settings = settings or Settings()
    rng = np.random.default_rng(settings.seed)
    plans = {name: _plan(side, settings, rng) for name, side in (("baseline", baseline), ("candidate", candidate))}
    drafts: list[_Draft] = []
    for key in _endpoints(baseline, candidate):
        est = [
            _latency(side, key, plans[name].weights)
            for name, side in (("baseline", baseline), ("candidate", candidate))
        ]
        drafts += _request_drafts(key, est, baseline, candidate, thresholds, settings)
    for key in _resources(baseline, candidate):
        drafts.append(_resource_draft(key, baseline, candidate, thresholds, settings, rng))
    results = _judge(drafts, baseline, candidate, settings, rng)
    warnings = _warnings(baseline, candidate, settings, results)
    return Comparison(
        results=tuple(results),
        overall=overall([r.verdict for r in results if r.gating]),
        method=_method(baseline, candidate, settings, plans),
        warnings=tuple(warnings),
    )


@dataclass
class _Draft:
    endpoint: str
    method: str
    metric: str
    subject: str
    base: Estimates
    cand: Estimates
    point_base: float
    point_cand: float
    absolute: bool
    rule: Rule
    gating: bool
    enough: bool
    note: str


def _plan(side: Side, settings: Settings, rng: np.random.Generator) -> bootstrap.Plan:
    windows = [r.windows for r in side.runs]
    blocks = [settings.block or bootstrap.block_length(mean_per_window(r.latency.get(("", "")))) for r in side.runs]
    return bootstrap.plan(windows, blocks, settings.replicates, rng, runs=len(side.runs) > 1)


def _endpoints(baseline: Side, candidate: Side) -> list[Key]:
    keys = {k for r in baseline.runs for k in r.latency} & {k for r in candidate.runs for k in r.latency}
    return sorted(keys, key=lambda k: (k == ("", ""), k))


def _resources(baseline: Side, candidate: Side) -> list[tuple[str, str]]:
    keys = {k for r in baseline.runs for k in r.resources} & {k for r in candidate.runs for k in r.resources}
    return sorted(keys)


def _latency(side: Side, key: Key, weights: np.ndarray) -> Estimates:
    series = [r.latency.get(key) for r in side.runs]
    window_s = next(s.window_s for s in series if s is not None)
    return latency_estimates(series, [r.windows for r in side.runs], weights, window_s)


def _request_drafts(
    key: Key, est: list[Estimates], baseline: Side, candidate: Side, thresholds: Thresholds, settings: Settings
) -> list[_Draft]:
    base, cand = est
    limits = thresholds.for_endpoint(*key)
    out = []
    for metric in REQUEST_METRICS:
        if metric in LATENCY_METRICS:
            rule = Rule(threshold=limits.response_time, higher_is_worse=True, alpha=settings.alpha)
            gating = metric.removesuffix("_ms") in limits.statistic
        elif metric == "rps":
            rule, gating = Rule(threshold=limits.throughput, higher_is_worse=False, alpha=settings.alpha), True
        else:
            rule, gating = Rule(threshold=limits.error_rate, higher_is_worse=True, alpha=settings.alpha), True
        enough, note = _enough(metric, base, cand, settings)
        out.append(
            _Draft(
                endpoint=key[0],
                method=key[1],
                metric=metric,
                subject="",
                base=base,
                cand=cand,
                point_base=float(baseline.exact.get(key, {}).get(metric, base.point[metric])),
                point_cand=float(candidate.exact.get(key, {}).get(metric, cand.point[metric])),
                absolute=metric == "error_rate",
                rule=rule,
                gating=gating,
                enough=enough,
                note=note,
            )
        )
    return out


def _enough(metric: str, base: Estimates, cand: Estimates, settings: Settings) -> tuple[bool, str]:
    """Whether both sides have data enough to judge this metric, and why not."""
    for label, est in (("baseline", base), ("candidate", cand)):
        if est.windows < settings.min_windows:
            return False, f"{label} has {est.windows} windows (< {settings.min_windows})"
        if metric in QUANTILE_OF:
            tail = est.requests * (1 - QUANTILE_OF[metric])
            if tail < settings.min_tail:
                return False, f"{label} has {tail:.1f} requests beyond {metric[:-3]} (< {settings.min_tail})"
        elif metric != "rps" and est.requests < 4 * settings.min_tail:
            return False, f"{label} has {est.requests} requests (< {4 * settings.min_tail})"
    return True, ""


def _resource_draft(
    key: tuple[str, str],
    baseline: Side,
    candidate: Side,
    thresholds: Thresholds,
    settings: Settings,
    rng: np.random.Generator,
) -> _Draft:
    metric, subject = key
    est = []
    for side in (baseline, candidate):
        series = [r.resources[key] for r in side.runs if key in r.resources]
        blocks = [settings.block or bootstrap.block_length(s.values) for s in series]
        sizes = [s.values.size for s in series]
        plan = bootstrap.plan(sizes, blocks, settings.replicates, rng, runs=len(series) > 1)
        est.append(value_estimates(series, plan.weights))
    base, cand = est
    threshold = getattr(thresholds, RESOURCE_THRESHOLD[metric])
    short = min(base.windows, cand.windows) < settings.min_windows
    return _Draft(
        endpoint="",
        method="",
        metric=metric,
        subject=subject,
        base=_rename(base, metric),
        cand=_rename(cand, metric),
        point_base=base.point["mean"],
        point_cand=cand.point["mean"],
        absolute=False,
        rule=Rule(threshold=threshold, higher_is_worse=True, alpha=settings.alpha),
        gating=True,
        enough=not short,
        note=f"fewer than {settings.min_windows} readings on a side" if short else "",
    )


def _rename(est: Estimates, metric: str) -> Estimates:
    return Estimates(
        point={metric: est.point["mean"]},
        replicates={metric: est.replicates["mean"]},
        requests=est.requests,
        windows=est.windows,
    )


def _judge(
    drafts: list[_Draft], baseline: Side, candidate: Side, settings: Settings, rng: np.random.Generator
) -> list[MetricResult]:
    runs = (len(baseline.runs), len(candidate.runs))
    changes = [_change(d, runs, settings, rng) for d in drafts]
    tested = [i for i, c in enumerate(changes) if c.enough]
    q = np.full(len(drafts), np.nan)
    if tested:
        from scipy.stats import false_discovery_control  # on use: importing this module's types stays cheap

        q[tested] = false_discovery_control([changes[i].p for i in tested], method="bh")
    out = []
    for d, c, q_value in zip(drafts, changes, q, strict=True):
        margin = c.floor is None and min(runs) < settings.floor_min_runs
        verdict = decide(c.change, c.low, c.high, float(q_value), d.rule, enough=c.enough, margin=margin)
        out.append(
            MetricResult(
                endpoint=d.endpoint,
                method=d.method,
                metric=d.metric,
                subject=d.subject,
                baseline=d.point_base,
                candidate=d.point_cand,
                change=c.change,
                change_kind="absolute" if d.absolute else "relative",
                ci_low=c.low,
                ci_high=c.high,
                threshold=d.rule.threshold,
                noise_floor=c.floor,
                p_value=c.p,
                q_value=float(q_value),
                verdict=verdict,
                gating=d.gating,
                note=c.note if verdict == INCONCLUSIVE or c.note.startswith("noise") else "",
            )
        )
    return out


@dataclass
class _Change:
    change: float
    low: float
    high: float
    p: float
    floor: float | None
    enough: bool
    note: str


def _change(d: _Draft, runs: tuple[int, int], settings: Settings, rng: np.random.Generator) -> _Change:
    """Point change, percentile interval and two-sided bootstrap p-value of one metric."""
    floor = settings.floors.get((d.endpoint, d.method, d.metric, d.subject))
    base, cand = d.base.replicates[d.metric], d.cand.replicates[d.metric]
    nan = float("nan")
    if not d.enough:
        return _Change(_point_change(d), nan, nan, nan, floor, False, d.note)
    if d.absolute:
        delta = cand - base
    else:
        if d.point_base <= 0 and d.point_cand <= 0:
            return _Change(0.0, 0.0, 0.0, 1.0, floor, True, "zero on both sides")
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.log(cand) - np.log(base)
    delta = delta[np.isfinite(delta)]
    if delta.size < 0.9 * settings.replicates:
        return _Change(_point_change(d), nan, nan, nan, floor, False, "too many resamples without data")
    note = ""
    if floor is not None and min(runs) < settings.floor_min_runs:
        delta = delta + rng.normal(0.0, floor * math.sqrt(1 / runs[0] + 1 / runs[1]), delta.size)
        note = f"noise floor {floor:.3g} added: fewer than {settings.floor_min_runs} runs on a side"
    elif floor is None and min(runs) < settings.floor_min_runs:
        note = (
            f"run-to-run spread unknown (fewer than {settings.floor_min_runs} runs on a side, no calibration): "
            "a regression needs its whole interval beyond the threshold"
        )
    tail = (1 - settings.confidence) / 2
    low, high = np.quantile(delta, [tail, 1 - tail])
    p = _p_value(delta)
    if not d.absolute:
        low, high = math.expm1(low), math.expm1(high)
    return _Change(_point_change(d), float(low), float(high), float(p), floor, True, note)


def _p_value(delta: np.ndarray) -> float:
    """Two-sided p-value of no change, from the replicates' mean and standard error (normal approximation).

    A count of replicates beyond zero cannot go below 1/B, which the false-discovery adjustment over dozens
    of metrics would turn into "never significant"; the standard error gives a continuous p-value.
    """
    from scipy.stats import norm

    se = float(np.std(delta, ddof=1))
    if se == 0:
        return 1.0 if float(np.mean(delta)) == 0 else 0.0
    return float(2 * norm.sf(abs(float(np.mean(delta))) / se))


def _point_change(d: _Draft) -> float:
    if d.absolute:
        return d.point_cand - d.point_base
    return d.point_cand / d.point_base - 1 if d.point_base > 0 else float("nan")


def _warnings(baseline: Side, candidate: Side, settings: Settings, results: list[MetricResult]) -> list[str]:
    out = []
    few = min(len(baseline.runs), len(candidate.runs)) < settings.floor_min_runs
    if few and not settings.floors:
        out.append(
            f"{len(baseline.runs)} baseline and {len(candidate.runs)} candidate run(s) and no calibration: "
            "the intervals hold within-run noise only; run `benchlab calibrate` or compare more runs"
        )
    for r in results:
        if r.gating and r.noise_floor is not None and r.threshold < 2 * math.sqrt(2) * r.noise_floor:
            where = r.subject or r.endpoint or "all endpoints"
            out.append(
                f"threshold {r.threshold:g} of {r.metric} ({where}) is inside the run-to-run noise "
                f"(floor {r.noise_floor:.3g}): expect false alarms"
            )
    return out


def _method(baseline: Side, candidate: Side, settings: Settings, plans: dict[str, bootstrap.Plan]) -> dict[str, Any]:
    window_s = next((s.window_s for r in baseline.runs for s in r.latency.values()), 1.0)
    return {
        "name": METHOD_NAME,
        "unit_of_evidence": f"{window_s:g} s windows aggregated in SQL; runs when a side has several",
        "resampling": "runs with replacement, then windows within each run by a stationary bootstrap "
        "(Politis & Romano 1994; block length by Politis & White 2004, as in arch)",
        "interval": f"{settings.confidence:.0%} percentile bootstrap interval of the change "
        "(log ratio for relative metrics, difference for the error rate)",
        "replicates": settings.replicates,
        "p_value": "two-sided, from the replicates' mean and standard error (normal approximation)",
        "multiple_testing": f"Benjamini-Hochberg across all metrics (scipy), false discovery rate {settings.alpha}",
        "verdict_rule": "regression: change beyond the threshold, interval excluding zero, adjusted p < alpha; "
        "when the run-to-run spread is unknown (no noise floor and too few runs), the whole interval beyond "
        "the threshold; unchanged: interval within the threshold band; otherwise inconclusive",
        "percentiles": "point estimates exact over the pooled samples; resampled from 2% log-spaced histograms",
        "assumptions": [
            "windows farther apart than the block length are close to independent (stationarity within a run)",
            "runs of one version are exchangeable repeats of the same experiment",
            f"with fewer than {settings.floor_min_runs} runs a side, run-to-run variance comes from the "
            "calibrated noise floor; without one, a regression must clear the threshold with its whole interval",
        ],
        "runs": {"baseline": [r.run_id for r in baseline.runs], "candidate": [r.run_id for r in candidate.runs]},
        "block_lengths": {name: list(p.block_lengths) for name, p in plans.items()},
        "seed": settings.seed,
    }
