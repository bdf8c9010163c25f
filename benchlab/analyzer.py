"""The seed framework's `MetricsAnalyzer`: regressions by benchlab's verdict engine, trends with change points.

`compare_baselines` is `benchlab compare --run CURRENT --baseline-run PREVIOUS` (or `--baseline-file/--file`
for baselines read from files), flags and all, returned as its `--json` object plus `overall_assessment`.
`analyze_trend` is `benchlab trend` for each metric (`runners.analyses.load_trend`: one value per run, the change
over the window and E-divisive change points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchlab.baseline import BaselineCollector, PerformanceBaseline

TREND_METRICS = {
    "response_time_mean": "mean",
    "response_time_median": "p50",
    "response_time_p95": "p95",
    "response_time_p99": "p99",
    "response_time_max": "max",
    "requests_per_second": "rps",
    "error_rate": "error_rate",
}
"""Seed metric name → `benchlab trend --metric`."""
SEED_METRICS = {
    "mean_ms": "response_time_mean",
    "p50_ms": "response_time_median",
    "p95_ms": "response_time_p95",
    "p99_ms": "response_time_p99",
    "rps": "requests_per_second",
    "error_rate": "error_rate",
}
"""Verdict-engine metric → seed metric name."""


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


class MetricsAnalyzer:
    """Compares baselines and follows an operation over time, with the collector's store.

    `options` are further flags of `benchlab compare` (`--thresholds FILE`, `--slo FILE`, `--replicates N`).
    """

    def __init__(self, collector: BaselineCollector | None = None, *, options: Sequence[str] = ()) -> None:
        self.collector = collector or BaselineCollector()
        self.options = tuple(options)

    def compare_baselines(self, current: PerformanceBaseline, previous: PerformanceBaseline | None) -> dict[str, Any]:
        """The verdict of `current` against `previous`: `overall_assessment` (regression, improvement, unchanged or
        inconclusive), every metric's verdict (`results`), the seed metrics of all endpoints (`metrics`), the
        method, warnings and SLO checks. Without a previous baseline, `overall_assessment` is "no baseline"."""
        from benchlab.runners.report.verdict import as_json

        if previous is None:
            return {"overall_assessment": "no baseline", "results": [], "metrics": {}, "warnings": [], "slo": []}
        verdict, judge = self._judge(current, previous)
        out = as_json(
            verdict.comparison,
            verdict.checks,
            baseline=verdict.baseline_label,
            candidate=verdict.candidate_label,
            comparison_id=verdict.comparison_id,
        )
        results = out.get("results", [])
        metrics = {
            SEED_METRICS[r["metric"]]: {
                "previous": r["baseline"],
                "current": r["candidate"],
                "change_percent": None if r["change"] is None else 100 * r["change"],
                "change_kind": r["change_kind"],
                "verdict": r["verdict"],
            }
            for r in results
            if r["endpoint"] == "" and not r["subject"] and r["metric"] in SEED_METRICS
        }
        return {
            "overall_assessment": out.get("overall", "inconclusive"),
            "regressions": sorted({_where(r) for r in results if r["verdict"] == "regression" and r["gating"]}),
            "improvements": sorted({_where(r) for r in results if r["verdict"] == "improvement" and r["gating"]}),
            "metrics": metrics,
            "fail_on_regression": judge.fail_on_regression,
        } | out

    def _judge(self, current: PerformanceBaseline, previous: PerformanceBaseline) -> tuple[Any, Any]:
        """`benchlab compare`'s code: runs from the store, or the files' timelines when a side has no run."""
        from benchlab.runners.baseline import judge_baselines
        from benchlab.runners.cli import build_parser
        from benchlab.runners.judge import judge_runs, select
        from benchlab.runners.verdicts import judge_settings

        if current.run_id is not None and previous.run_id is not None:
            argv = ["compare", "--run", str(current.run_id), "--baseline-run", str(previous.run_id), *self.options]
            ns = build_parser().parse_args(argv)
            judge = judge_settings(ns, candidate_runs=tuple(ns.run), baseline_runs=tuple(ns.baseline_run))
            with self.collector.store() as store:
                return judge_runs(store, judge, select(store, judge)), judge
        judge = judge_settings(build_parser().parse_args(["compare", *self.options]))
        return judge_baselines(judge, previous.to_dict(), current.to_dict()), judge

    def analyze_trend(self, operation: str, days: float = 30) -> dict[str, Any]:
        """Each metric of an operation's runs over the last `days` (`benchlab trend`'s code): the values per run
        (version and date), the change in percent over the window (`trends[metric]["change_percent"]`) and the
        change points, with the limits of the method as notes."""
        from benchlab.runners.analyses import TrendQuery, load_trend
        from benchlab.runners.analysis.baseline import split_operation
        from benchlab.runners.analysis.trend import METHOD

        runs = self.collector.runs(operation, days=days)
        out: dict[str, Any] = {"operation": operation, "days": days, "runs": len(runs), "method": METHOD, "trends": {}}
        if not runs:
            empty = {"change_percent": None, "values": [], "change_points": [], "notes": ["no completed runs"]}
            return out | {"trends": {name: dict(empty) for name in TREND_METRICS}}
        scenario, test_type = runs[-1].scenario, split_operation(operation)[1] or runs[-1].test_type
        with self.collector.store() as store:
            for name, metric in TREND_METRICS.items():
                query = TrendQuery(scenario=scenario, test_type=test_type, days=days, metric=metric)
                out["trends"][name] = _trend_dict(load_trend(store, query)[1])
        out["runs"] = len(out["trends"]["response_time_p95"]["values"])
        return out | {"scenario": scenario, "test_type": test_type}


def _trend_dict(found: Any) -> dict[str, Any]:
    """A `runners.analysis.trend.Trend` as plain data, with percentages."""
    return {
        "change_percent": None if _finite(found.change) is None else round(100 * found.change, 2),
        "values": [
            {"run_id": p.run_id, "version": p.version, "date": p.started_at, "value": _finite(p.value)}
            for p in found.points
        ],
        "change_points": [
            {
                "run_id": c.run_id,
                "version": c.version,
                "date": c.started_at,
                "before": c.before,
                "after": c.after,
                "change_percent": _finite(100 * c.change),
                "p_value": c.p_value,
            }
            for c in found.change_points
        ],
        "notes": list(found.notes),
    }


def _where(result: dict[str, Any]) -> str:
    where = result["subject"] or f"{result['method']} {result['endpoint']}".strip() or "all endpoints"
    return f"{where}: {result['metric']}"
