"""The regression gate: which results fail a CI job. The exit code itself is chosen in `runners.errors`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchlab.runners.analysis.compare import Comparison, MetricResult
from benchlab.runners.analysis.slo import Check
from benchlab.runners.analysis.verdict import INCONCLUSIVE, REGRESSION


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """What the gate found."""

    failures: tuple[str, ...]
    """One line per failed check: a regression, an SLO breach or (when asked) an inconclusive metric."""

    @property
    def failed(self) -> bool:
        """True when anything failed."""
        return bool(self.failures)


def evaluate(
    comparison: Comparison | None, checks: Sequence[Check], *, fail_on_inconclusive: bool = False
) -> GateResult:
    """Regressions of gating metrics and SLO breaches fail; inconclusive metrics fail only when asked."""
    lines: list[str] = []
    if comparison is not None:
        for r in comparison.results:
            if r.gating and (r.verdict == REGRESSION or (fail_on_inconclusive and r.verdict == INCONCLUSIVE)):
                lines.append(describe(r))
    for c in checks:
        if c.passed is False:
            where = c.endpoint or "all endpoints"
            lines.append(f"SLO breach: {c.operation}: {c.criterion.text} on {where} (measured {c.value:.4g})")
    return GateResult(failures=tuple(lines))


def describe(r: MetricResult) -> str:
    """One line with the numbers of a judged metric."""
    where = r.subject or (f"{r.method} {r.endpoint}".strip() if r.endpoint else "all endpoints")
    if r.change_kind == "absolute":
        change = f"{r.change:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], threshold {r.threshold:g}"
    else:
        change = f"{r.change:+.1%} [{r.ci_low:+.1%}, {r.ci_high:+.1%}], threshold {r.threshold:.0%}"
    return f"{r.verdict}: {r.metric} of {where}: {r.baseline:.4g} -> {r.candidate:.4g} ({change})"
