"""From stored runs to a verdict: select the runs, import their windows, compare, check SLOs, store the verdict.

This is the only place where the store meets the analysis: `metrics.store` queries in, plain data out to
`runners.analysis`, and the comparison back into the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.liveness import is_interrupted
from benchlab.metrics.store.model import Run
from benchlab.metrics.store.query import endpoint_stats, latest_runs, runs_by_id, versions
from benchlab.metrics.store.verdict import latest_noise_floors, save_comparison
from benchlab.metrics.store.window import ValueRow, queue_rows, resource_rows, window_blocks
from benchlab.runners.analysis.compare import compare
from benchlab.runners.analysis.evidence import Comparison, FloorKey, Key, RunEvidence, Settings, Side
from benchlab.runners.analysis.series import (
    BUCKETS_PER_E,
    MIN_MS,
    LatencySeries,
    ValueSeries,
    block_series,
    steady_windows,
    trim,
    value_series,
)
from benchlab.runners.analysis.slo import Check, Observed, check, may_apply
from benchlab.runners.errors import BadInput
from benchlab.runners.prune import require_samples
from benchlab.runners.settings import JudgeSettings


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The runs on each side of a comparison."""

    baseline: list[Run]
    """Baseline runs, newest first (empty when there is no baseline: SLO checks only)."""
    candidate: list[Run]
    """Candidate runs, newest first."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A comparison (when there was a baseline), the SLO checks of the candidate, and the stored id."""

    selection: Selection
    comparison: Comparison | None
    checks: list[Check]
    comparison_id: int | None

    @property
    def baseline_label(self) -> str:
        """Version of the baseline runs, or "" when none."""
        return _label(self.selection.baseline)

    @property
    def candidate_label(self) -> str:
        """Version of the candidate runs."""
        return _label(self.selection.candidate)


def _label(runs: Sequence[Run]) -> str:
    labels = sorted({r.app_version for r in runs})
    return "+".join(labels) if labels else ""


def select(store: Store, judge: JudgeSettings) -> Selection:
    """The runs named by ids, or the latest completed runs of each version; BadInput when none can be found."""
    if judge.candidate_runs:
        candidate = _by_id(store, judge.candidate_runs)
    else:
        if judge.version is None:
            raise BadInput("nothing to compare: pass --version V or --run ID")
        candidate = latest_runs(
            store, version=judge.version, scenario=judge.scenario, test_type=judge.test_type, limit=judge.runs
        )
        if not candidate:
            raise BadInput(_missing(store, judge.version, judge))
    first = candidate[0]
    scenario, test_type = judge.scenario or first.scenario, judge.test_type or first.test_type
    if judge.baseline_runs:
        baseline = _by_id(store, judge.baseline_runs)
    elif judge.baseline_version is not None:
        baseline = latest_runs(
            store, version=judge.baseline_version, scenario=scenario, test_type=test_type, limit=judge.runs
        )
        baseline = [r for r in baseline if r.id not in {c.id for c in candidate}]
        if not baseline:
            raise BadInput(_missing(store, judge.baseline_version, judge, scenario=scenario, test_type=test_type))
    else:
        baseline = []
    require_samples(store, [*candidate, *baseline], "compare/report")
    return Selection(baseline=baseline, candidate=candidate)


def _by_id(store: Store, ids: Sequence[int]) -> list[Run]:
    runs = runs_by_id(store, ids)
    missing = sorted(set(ids) - {r.id for r in runs})
    if missing:
        raise BadInput(f"run {', '.join(map(str, missing))} not found in {store.settings.url}")
    dead = [r.id for r in runs if is_interrupted(r)]
    if dead:
        named = ", ".join(map(str, dead))
        raise BadInput(f"run {named} was interrupted (its benchlab process died): compare completed or aborted runs")
    return runs


def _missing(store: Store, version: str, judge: JudgeSettings, **where: str | None) -> str:
    scenario = where.get("scenario", judge.scenario)
    test_type = where.get("test_type", judge.test_type)
    known = versions(store, scenario=scenario)
    scope = " ".join(f"{k} {v}" for k, v in (("scenario", scenario), ("test type", test_type)) if v)
    listed = ", ".join(known) if known else "none"
    return f"no completed run of version {version!r}{' for ' + scope if scope else ''}; versions with runs: {listed}"


def judge_runs(store: Store, judge: JudgeSettings, selection: Selection) -> Verdict:
    """Compare the selection (if it has a baseline), check the candidate's SLOs, store the comparison."""
    window_s = judge.window_s
    first = selection.candidate[0]
    classes, scenario = list(first.user_classes or []), first.scenario
    if not selection.baseline and not may_apply(judge.slos, user_classes=classes, scenario=scenario):
        # Nothing to compare and no criterion for this scenario: no reason to read the samples back.
        return Verdict(selection=selection, comparison=None, checks=[], comparison_id=None)
    sides = [selection.candidate, selection.baseline] if selection.baseline else [selection.candidate]
    # Postgres does the heavy lifting: query both sides at once (SQLite's connections stay on one thread).
    with ThreadPoolExecutor(max_workers=len(sides) if store.is_postgres else 1) as pool:
        futures = [pool.submit(evidence, store, runs, window_s, judge.warmup) for runs in sides]
        if selection.baseline:  # scipy (~1 s of CPU) imports while the store works, and only when it is needed
            import scipy.stats  # noqa: F401
        built = [f.result() for f in futures]
    candidate = built[0]
    comparison = None
    comparison_id = None
    if selection.baseline:
        baseline = built[1]
        floors = _floors(store, selection)
        settings = Settings(replicates=judge.replicates, seed=judge.seed, floors=floors)
        comparison = compare(baseline, candidate, judge.thresholds, settings)
        if judge.save:
            comparison_id = _save(store, selection, comparison, judge)
    checks = check(judge.slos, observed(candidate, window_s), user_classes=classes, scenario=scenario)
    return Verdict(selection=selection, comparison=comparison, checks=checks, comparison_id=comparison_id)


def evidence(store: Store, runs: Sequence[Run], window_s: float, warmup: float = 0.1) -> Side:
    """One side's steady-state windows from SQL, and exact point estimates over the same samples.

    Each run loses its first and last (partial) windows and its warm-up (see `steady_windows`).
    """
    ids = [r.id for r in runs]
    blocks = window_blocks(store, ids, window_s=window_s, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS)
    first: dict[int, int] = {}
    for blk in blocks:
        first[blk.run_id] = min(first.get(blk.run_id, int(blk.window.min())), int(blk.window.min()))
    latency: dict[int, dict[Key, LatencySeries]] = {}
    between: dict[int, tuple[float, float]] = {}
    for run_id, by_key in block_series(blocks, window_s).items():
        keep = steady_windows(by_key[("", "")].windows, window_s, warmup=warmup)
        latency[run_id] = {key: trim(series, keep) for key, series in by_key.items()}
        between[run_id] = ((first[run_id] + keep.start) * window_s, (first[run_id] + keep.stop) * window_s)
    resources = _resources(store, ids, window_s, between)
    exact = {
        (row.name, row.method): {
            "mean_ms": row.mean_ms,
            "p50_ms": row.p50_ms,
            "p95_ms": row.p95_ms,
            "p99_ms": row.p99_ms,
            "error_rate": row.error_rate,
        }
        for row in endpoint_stats(store, ids, between=between)
    }
    found = [RunEvidence(run_id=i, latency=latency[i], resources=resources[i]) for i in ids if i in latency]
    return Side(version=_label(runs), runs=found, exact=exact)


def _resources(
    store: Store, ids: list[int], window_s: float, between: dict[int, tuple[float, float]]
) -> dict[int, dict[tuple[str, str], ValueSeries]]:
    """Resource and queue readings per run, limited to the same steady-state time range as the requests."""

    def steady(rows: list[ValueRow]) -> list[ValueRow]:
        return [r for r in rows if r[0] in between and between[r[0]][0] <= r[2] * window_s < between[r[0]][1]]

    out: dict[int, dict[tuple[str, str], ValueSeries]] = {i: {} for i in ids}
    sources = [(m, resource_rows(store, ids, window_s=window_s, column=m)) for m in ("cpu_percent", "rss_bytes")]
    sources.append(("queue_length", queue_rows(store, ids, window_s=window_s)))
    for metric, rows in sources:
        for run_id, by_label in value_series(steady(rows), window_s).items():
            out[run_id].update({(metric, label): s for label, s in by_label.items()})
    return out


def observed(side: Side, window_s: float) -> list[Observed]:
    """What the SLO checks read: exact latency and error rate, throughput over the runs' windows."""
    seconds = sum(r.windows for r in side.runs) * window_s
    out = []
    for key, values in side.exact.items():
        requests = sum(int(r.latency[key].requests) for r in side.runs if key in r.latency)
        out.append(
            Observed(
                endpoint=key[0],
                method=key[1],
                requests=requests,
                rps=requests / seconds if seconds else 0.0,
                error_rate=values["error_rate"],
                mean_ms=values["mean_ms"],
                max_ms=float("nan"),
                percentiles={0.5: values["p50_ms"], 0.95: values["p95_ms"], 0.99: values["p99_ms"]},
            )
        )
    return out


def _floors(store: Store, selection: Selection) -> dict[FloorKey, float]:
    base = selection.baseline[0]
    rows = latest_noise_floors(store, version=base.app_version, scenario=base.scenario, test_type=base.test_type)
    return {(r["endpoint"], r["http_method"], r["metric"], r["subject"] or ""): float(r["spread"]) for r in rows}


_RESULT_COLUMNS = (
    "change",
    "change_kind",
    "ci_low",
    "ci_high",
    "threshold",
    "noise_floor",
    "p_value",
    "q_value",
    "verdict",
    "gating",
)


def _save(store: Store, selection: Selection, comparison: Comparison, judge: JudgeSettings) -> int:
    base, cand = selection.baseline[0], selection.candidate[0]
    header = {
        "scenario": cand.scenario,
        "test_type": cand.test_type,
        "baseline_version": _label(selection.baseline),
        "candidate_version": _label(selection.candidate),
        "baseline_run_ids": [r.id for r in selection.baseline],
        "candidate_run_ids": [r.id for r in selection.candidate],
        "method": comparison.method["name"],
        "overall": comparison.overall,
        "details": {
            "method": comparison.method,
            "warnings": list(comparison.warnings),
            "thresholds": judge.thresholds.as_dict(),
            "baseline_scenario": base.scenario,
        },
    }
    results = [
        {
            "endpoint": r.endpoint,
            "http_method": r.method,
            "metric": r.metric,
            "subject": r.subject or None,
            "baseline_value": r.as_dict()["baseline"],
            "candidate_value": r.as_dict()["candidate"],
        }
        | {k: v for k, v in r.as_dict().items() if k in _RESULT_COLUMNS}
        for r in comparison.results
    ]
    return save_comparison(store, header, results)
