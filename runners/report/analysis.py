"""Rendering of trends and of run analyses (breaking point, spike recovery, drift and leaks): text and JSON."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from benchlab.runners.analysis.soak import SoakResult, relative
from benchlab.runners.analysis.spike import SpikeResult
from benchlab.runners.analysis.stress import BreakingPoint, StepResult
from benchlab.runners.analysis.trend import Trend
from benchlab.runners.report import verdict

if TYPE_CHECKING:
    from benchlab.runners.analyses import RunAnalysis, TrendQuery


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities as None, tuples as lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _num(value: float, unit: str = "", digits: int = 1) -> str:
    return f"{value:.{digits}f}{unit}" if math.isfinite(value) else "n/a"


def _pct(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "n/a"


# ---------------------------------------------------------------------------------------------------- trend


def trend_text(query: TrendQuery, t: Trend) -> str:
    """One line per run, the change over the window, the change points and the method's limits."""
    where = f"{query.scenario} ({query.test_type})" + (f", endpoint {query.endpoint}" if query.endpoint else "")
    lines = [f"trend of {t.metric} for {where} over the last {query.days:g} days: {len(t.points)} run(s)"]
    starts = {cp.index for cp in t.change_points}
    for i, p in enumerate(t.points):
        mark = "  <- change point" if i in starts else ""
        lines.append(
            f"  {p.started_at[:16].replace('T', ' ')}  run {p.run_id:<6} {p.version:<12} {_num(p.value)}{mark}"
        )
    lines.append(f"change over the window: {_pct(t.change)} (median of the first runs to median of the last)")
    if t.change_points:
        for cp in t.change_points:
            lines.append(
                f"change point at run {cp.run_id} ({cp.version}, {cp.started_at[:10]}): {_num(cp.before)} -> "
                f"{_num(cp.after)} ({_pct(cp.change)}), p = {cp.p_value:.3f}"
            )
    else:
        lines.append("change points: none")
    lines += [f"note: {n}" for n in t.notes]
    lines.append(f"method: {t.method}")
    return "\n".join(lines)


def trend_json(query: TrendQuery, t: Trend) -> dict[str, Any]:
    """The `trend --json` object."""
    return _clean(
        {
            "scenario": query.scenario,
            "test_type": query.test_type,
            "endpoint": query.endpoint,
            "days": query.days,
            "metric": t.metric,
            "points": [asdict(p) for p in t.points],
            "change": t.change,
            "change_percent": t.change * 100 if math.isfinite(t.change) else None,
            "change_points": [asdict(cp) for cp in t.change_points],
            "method": {
                "name": t.method,
                "min_runs": t.settings.min_runs,
                "min_segment": t.settings.min_segment,
                "alpha": t.settings.alpha,
                "permutations": t.settings.permutations,
                "seed": t.settings.seed,
            },
            "notes": list(t.notes),
        }
    )


# --------------------------------------------------------------------------------------------- run analyses


def analysis_text(a: RunAnalysis) -> str:
    """The analysis of one run as console text."""
    head = f"run {a.run.id}: {a.run.test_type} of {a.run.scenario}, version {a.run.app_version}"
    if isinstance(a.result, BreakingPoint):
        return "\n".join([head, *breaking_lines(a.result, a.source)])
    if isinstance(a.result, SpikeResult):
        return "\n".join([head, *spike_lines(a.result)])
    return "\n".join([head, *drift_lines(a.result)])


def analysis_json(a: RunAnalysis) -> dict[str, Any]:
    """The `analyze --json` object."""
    body: dict[str, Any] = asdict(a.result)
    if isinstance(a.result, SoakResult):
        body["thirds"] = (
            verdict.as_json(a.result.thirds, [], baseline="first third", candidate="last third", comparison_id=None)
            if a.result.thirds is not None
            else None
        )
        body["leak"] = a.result.leak
        body["p95"] = _slope_json(a.result.p95)
        body["memory"] = [{**asdict(m), "slope": _slope_json(m.slope)} for m in a.result.memory]
    if isinstance(a.result, BreakingPoint):
        body["slo_source"] = a.source
    return _clean({"run_id": a.run.id, "test_type": a.run.test_type, "analysis": a.kind, **body})


def _slope_json(slope: Any) -> dict[str, Any] | None:
    if slope is None:
        return None
    return {**asdict(slope), "significant": slope.significant, "relative_per_hour": relative(slope)}


def _step(r: StepResult | None) -> str:
    if r is None:
        return "none"
    return f"step {r.index} ({r.users} users, {_num(r.rps, ' rps')}, p95 {_num(r.p95_ms, ' ms', 0)})"


def breaking_lines(bp: BreakingPoint, source: str = "") -> list[str]:
    """Breaking point, steps beside the USL model, saturation."""
    lim = bp.limits
    slo = f"SLO p95 <= {lim.p95_ms:g} ms, error rate <= {lim.error_rate:.2%}" + (f" ({source})" if source else "")
    lines = [f"breaking point ({slo}):", f"  highest step meeting the SLO: {_step(bp.last_ok)}"]
    if bp.broken is not None:
        how = "; ".join(bp.broken.broke)
        lines.append(
            f"  SLO broke at {_step(bp.broken)}: {how}" + (" [shape's live stats]" if bp.source == "shape" else "")
        )
    else:
        lines.append("  SLO broke at: never")
    if bp.saturation is not None:
        s = bp.saturation
        lines.append(f"  first resource to saturate: {s.resource} of {s.subject} at step {s.step}: {s.reason}")
    else:
        lines.append("  first resource to saturate: none seen in the sidecar's samples (or no sidecar)")
    fitted = dict(zip((n for n, _ in bp.usl.measured), bp.usl.fitted, strict=True)) if bp.usl else {}
    lines.append("  step  users      rps   p95 ms  errors  USL rps  resources")
    for r in bp.steps:
        res = ", ".join(f"{k} {_resource(k, v)}" for k, v in sorted(r.resources.items()))
        model = _num(fitted[r.users]) if r.users in fitted else "-"
        lines.append(
            f"  {r.index:>4}  {r.users:>5}  {_num(r.rps):>7}  {_num(r.p95_ms, '', 0):>7}  "
            f"{_num(r.error_rate * 100, '%'):>6}  {model:>7}  {res}"
        )
    if bp.usl is not None:
        u = bp.usl
        peak = f"{u.peak_users:.0f}" if math.isfinite(u.peak_users) else "unbounded"
        lines.append(
            f"  USL fit: sigma {u.sigma:.4f}, kappa {u.kappa:.5f}, lambda {u.lam:.2f} rps/user, peak at N* = {peak} "
            f"users, max {_num(u.max_rps, ' rps')} (R^2 {_num(u.r2, '', 3)})"
        )
    lines += [f"  note: {n}" for n in bp.notes]
    return lines


def _resource(key: str, value: float) -> str:
    if key.startswith("rss_bytes"):
        return f"{value / 2**20:.0f} MiB"
    if key.startswith("cpu_percent"):
        return f"{value:.0f}%"
    return f"{value:.1f}"


def spike_lines(s: SpikeResult) -> list[str]:
    """Recovery time, band, peak and errors."""
    done = s.recovered and s.recovery_s is not None
    rec = f"{s.recovery_s:.1f} s after the spike ended" if done else "not recovered"
    cfg = s.settings
    return [
        f"spike recovery: {rec}",
        f"  pre-spike p95 {_num(s.pre_p95_ms, ' ms')}; band: rolling p95 ({cfg.rolling} windows) <= "
        f"{_num(s.band_p95_ms, ' ms')} and error rate <= {_num(s.band_error_rate * 100, '%', 2)}, "
        f"{cfg.consecutive} windows in a row",
        f"  during the spike ({s.spike_s:.1f} s): peak p95 {_num(s.peak_p95_ms, ' ms')}, "
        f"{s.spike_errors} error(s) in {s.spike_requests} requests",
        *(f"  note: {n}" for n in s.notes),
    ]


def _span(hours: float) -> str:
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{hours:.1f} h"


def drift_lines(s: SoakResult) -> list[str]:
    """Slopes with intervals, leak flags and the thirds verdict."""
    lines = [f"drift over {_span(s.hours)} of steady state ({s.windows} windows, warm-up left out):"]
    if s.p95 is not None:
        p = s.p95
        sig = "significant" if p.significant else "not significant"
        over = relative(p) * s.hours
        lines.append(
            f"  p95 slope: {p.per_hour:+.2f} ms/h [{p.low:+.2f}, {p.high:+.2f}], {_pct(over)} of {p.level:.1f} ms "
            f"over the run ({sig})"
        )
    for m in s.memory:
        flag = "LEAK" if m.leak else "no leak"
        lines.append(
            f"  RSS of {m.service}: {m.slope.per_hour:+.1f} MB/h [{m.slope.low:+.1f}, {m.slope.high:+.1f}], "
            f"{m.growth_mb:+.1f} MB over the run from {m.slope.level:.0f} MB: {flag}"
        )
    lines.append(f"  leak: {'yes' if s.leak else 'no'}")
    if s.thirds is not None:
        lines.append(verdict.table(s.thirds, "first third", "last third", gating_only=True))
    lines += [f"  note: {n}" for n in s.notes]
    return lines
