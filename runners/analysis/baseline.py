"""Baseline files in the seed framework's format: names, the per-second timeline, validation, and evidence.

A baseline file is one run as JSON with exactly the seed's fields (`FIELDS`) and `raw_data` holding
`endpoints`, `timeline` and `errors`. Each timeline point is one 1 s window with, per endpoint, the request and
failure counts, the latency sum and the latency histogram in the verdict engine's buckets (`series.BUCKETS_PER_E`
per e, about 2% wide). Two files can then be judged by the same windowed bootstrap as two stored runs. A file
whose timeline has no histograms (written by another tool) only gives the change of each metric, inconclusive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from benchlab.runners.analysis.compare import Comparison, MetricResult, RunEvidence, Side
from benchlab.runners.analysis.estimate import LATENCY_METRICS, REQUEST_METRICS
from benchlab.runners.analysis.series import (
    LatencySeries,
    WindowRow,
    hist_percentiles,
    latency_series,
    steady_windows,
    trim,
)
from benchlab.runners.analysis.slo import Observed
from benchlab.runners.analysis.threshold import DEFAULT_THRESHOLDS, Thresholds
from benchlab.runners.analysis.verdict import INCONCLUSIVE, overall

FIELDS = (
    "operation",
    "environment",
    "version",
    "timestamp",
    "response_time_mean",
    "response_time_median",
    "response_time_p95",
    "response_time_p99",
    "response_time_max",
    "requests_per_second",
    "concurrent_users",
    "total_requests",
    "error_rate",
    "error_count",
    "test_duration",
    "raw_data",
)
"""The seed framework's baseline fields, exactly and in its order."""
RAW_FIELDS = ("endpoints", "timeline", "errors")
"""Keys of `raw_data`."""
TEST_TYPES = ("baseline", "load", "stress", "spike", "soak")
"""Test types an operation name may end with (`content_generation_baseline`)."""
METRIC_FIELDS = {
    "mean_ms": "response_time_mean",
    "p50_ms": "response_time_median",
    "p95_ms": "response_time_p95",
    "p99_ms": "response_time_p99",
    "rps": "requests_per_second",
    "error_rate": "error_rate",
}
"""Verdict-engine metric → baseline field."""


class BaselineError(ValueError):
    """A baseline file that is not in the seed's format: one line naming the file and the problem."""


def _snake(name: str) -> str:
    name = re.sub(r"User$", "", name) or name
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def operation_name(scenario: str) -> str:
    """The seed's operation name of a run: `content_generation` for ContentGenerationUser (or that scenario).

    A scenario named `file:ClassA+ClassB` (the CLI's default) is named after its user classes; any other
    scenario is its own name in snake case.
    """
    stem, _, classes = scenario.partition(":")
    names = [c for c in classes.split("+") if c]
    if names:
        return "_".join(_snake(n) for n in names) or "run"
    return _snake(stem) or "run"


def split_operation(name: str) -> tuple[str, str | None]:
    """`content_generation_baseline` → (`content_generation`, `baseline`); a name without a test type → (name, None)."""
    for test_type in TEST_TYPES:
        if name.endswith("_" + test_type) and len(name) > len(test_type) + 1:
            return name[: -len(test_type) - 1], test_type
    return name, None


def file_name(operation: str, test_type: str, started: datetime) -> str:
    """`<operation>_<test type>_<YYYYmmdd_HHMMSS>.json`, the time in UTC."""
    return f"{operation}_{test_type}_{started.astimezone(UTC).strftime('%Y%m%d_%H%M%S')}.json"


def _finite(value: float) -> float | None:
    return round(float(value), 3) if math.isfinite(value) else None


def timeline(rows: Sequence[WindowRow], window_s: float = 1.0) -> list[dict[str, Any]]:
    """One point per window of one run, from the store's window rows: totals, and per endpoint the histogram."""
    by_run = latency_series(rows, window_s)
    if not by_run:
        return []
    by_key = next(iter(by_run.values()))
    first = min(r[3] for r in rows)
    total = by_key[("", "")]
    p95 = hist_percentiles(total.hist, total.buckets, [0.95])[:, 0]
    points = []
    for i in range(total.windows):
        endpoints = {
            f"{method} {name}": _endpoint_point(name, method, series, i)
            for (name, method), series in sorted(by_key.items())
            if (name or method) and series.counts[i] > 0
        }
        requests = int(total.counts[i])
        points.append(
            {
                "timestamp": datetime.fromtimestamp((first + i) * window_s, UTC).isoformat(),
                "second": round(i * window_s, 3),
                "window_s": window_s,
                "requests": requests,
                "failures": int(total.failures[i]),
                "requests_per_second": round(requests / window_s, 3),
                "response_time_mean": _finite(total.sum_ms[i] / requests) if requests else None,
                "response_time_p95": _finite(p95[i]),
                "endpoints": endpoints,
            }
        )
    return points


def _endpoint_point(name: str, method: str, series: LatencySeries, i: int) -> dict[str, Any]:
    nonzero = np.nonzero(series.hist[i])[0]
    return {
        "name": name,
        "method": method,
        "requests": int(series.counts[i]),
        "failures": int(series.failures[i]),
        "sum_ms": round(float(series.sum_ms[i]), 3),
        "histogram": [[int(series.buckets[j]), int(series.hist[i, j])] for j in nonzero],
    }


def validate(data: object, source: str) -> dict[str, Any]:
    """The baseline as a dict when it has exactly the seed's fields; BaselineError naming what is wrong."""
    if not isinstance(data, dict):
        raise BaselineError(f"{source}: expected a JSON object with the seed's baseline fields")
    missing = [f for f in FIELDS if f not in data]
    extra = [f for f in data if f not in FIELDS]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        raise BaselineError(f"{source}: not a baseline file: {'; '.join(parts)}")
    raw = data["raw_data"]
    if not isinstance(raw, dict) or any(k not in raw for k in RAW_FIELDS):
        raise BaselineError(f"{source}: raw_data must be an object with {', '.join(RAW_FIELDS)}")
    for key in FIELDS[4:15]:
        if not isinstance(data[key], int | float) or isinstance(data[key], bool):
            raise BaselineError(f"{source}: {key} must be a number, got {data[key]!r}")
    if not isinstance(raw["timeline"], list):
        raise BaselineError(f"{source}: raw_data.timeline must be a list")
    return data


def window_rows(points: Sequence[Any]) -> tuple[list[WindowRow], float] | None:
    """Window rows (and the window length) rebuilt from a timeline; None when it has no per-window histograms."""
    rows: list[WindowRow] = []
    lengths = {float(p.get("window_s", 0)) for p in points if isinstance(p, dict)}
    if not points or len(lengths) != 1 or min(lengths) <= 0:
        return None
    window_s = lengths.pop()
    for point in points:
        if not isinstance(point, dict) or not isinstance(point.get("endpoints"), dict):
            return None
        window = round(float(point["second"]) / window_s)
        for entry in point["endpoints"].values():
            histogram = entry.get("histogram") if isinstance(entry, dict) else None
            if not histogram:
                return None
            name, method = str(entry["name"]), str(entry["method"])
            for k, (bucket, count) in enumerate(histogram):
                fails, sums = (int(entry["failures"]), float(entry["sum_ms"])) if k == 0 else (0, 0.0)
                rows.append((0, name, method, window, int(bucket), int(count), fails, sums))
    return (rows, window_s) if rows else None


def side(data: Mapping[str, Any], *, warmup: float = 0.1) -> Side | None:
    """A baseline file as one side of a comparison: its steady windows, as `judge.evidence` keeps them for runs.

    Point estimates come from the windows' histograms (2% buckets), not from exact samples. None when the
    timeline has no histograms.
    """
    rebuilt = window_rows(data["raw_data"]["timeline"])
    if rebuilt is None:
        return None
    rows, window_s = rebuilt
    by_key = latency_series(rows, window_s)[0]
    keep = steady_windows(by_key[("", "")].windows, window_s, warmup=warmup)
    evidence = RunEvidence(run_id=0, latency={key: trim(series, keep) for key, series in by_key.items()})
    return Side(version=str(data["version"]), runs=[evidence])


def observed(data: Mapping[str, Any]) -> list[Observed]:
    """What SLO checks read from a baseline file: its totals (endpoint "")."""
    return [
        Observed(
            endpoint="",
            method="",
            requests=int(data["total_requests"]),
            rps=float(data["requests_per_second"]),
            error_rate=float(data["error_rate"]),
            mean_ms=float(data["response_time_mean"]),
            max_ms=float(data["response_time_max"]),
            percentiles={
                0.5: float(data["response_time_median"]),
                0.95: float(data["response_time_p95"]),
                0.99: float(data["response_time_p99"]),
            },
        )
    ]


NO_WINDOWS = "no per-second histograms in the files: the change only, without an interval"
CHANGE_ONLY_METHOD = {
    "name": "change only (baseline files without windows)",
    "interval": "none: a file without per-second histograms holds one value per metric, so no interval",
    "multiple_testing": "none",
    "assumptions": ["one value per metric and side: no evidence of noise, so every verdict is inconclusive"],
}


def change_only(
    baseline: Mapping[str, Any], candidate: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Comparison:
    """The change of each total metric between two baseline files, every verdict inconclusive (no windows)."""
    limits = thresholds.for_endpoint("", "")
    results = []
    nan = float("nan")
    for metric in REQUEST_METRICS:
        base, cand = float(baseline[METRIC_FIELDS[metric]]), float(candidate[METRIC_FIELDS[metric]])
        if metric == "error_rate":
            change, kind, threshold, gating = cand - base, "absolute", limits.error_rate, True
        else:
            change, kind = (cand / base - 1 if base > 0 else nan), "relative"
            threshold = limits.response_time if metric in LATENCY_METRICS else limits.throughput
            gating = metric == "rps" or metric.removesuffix("_ms") in limits.statistic
        results.append(
            MetricResult(
                endpoint="",
                method="",
                metric=metric,
                subject="",
                baseline=base,
                candidate=cand,
                change=change,
                change_kind=kind,
                ci_low=nan,
                ci_high=nan,
                threshold=threshold,
                noise_floor=None,
                p_value=nan,
                q_value=nan,
                verdict=INCONCLUSIVE,
                gating=gating,
                note=NO_WINDOWS,
            )
        )
    return Comparison(
        results=tuple(results),
        overall=overall([r.verdict for r in results if r.gating]),
        method=dict(CHANGE_ONLY_METHOD),
        warnings=(NO_WINDOWS,),
    )
