"""The verdict rules: how a change, its interval and its adjusted p-value become one word.

Changes are first turned "worse-positive": for a metric where higher is worse (latency, errors, CPU), the
worse-ness is the change itself; where higher is better (throughput), it is the negated change.

- regression: the change is worse than the threshold, the interval lies entirely on the worse side of zero,
  and the change is significant after the false-discovery-rate adjustment;
- improvement: the mirror image, better than the threshold;
- unchanged: the whole interval lies inside the threshold band (-threshold, +threshold), so any change
  there may be is smaller than what the threshold tolerates;
- inconclusive: everything else, including too little data. It is never reported as unchanged.

When the run-to-run spread is unknown (too few runs a side and no calibrated noise floor), the interval holds
within-run noise only and is too narrow for a claim about versions: two runs of one version differ by more
than it. Then a regression (or improvement) needs its whole interval beyond the threshold, not just beyond
zero: the data must show the change exceeds what the threshold tolerates even at the interval's near end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REGRESSION, IMPROVEMENT, UNCHANGED, INCONCLUSIVE)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What decides one metric."""

    threshold: float
    """Tolerated change: a fraction for relative metrics, a difference for absolute ones."""
    higher_is_worse: bool
    """True for latency, errors and resources; False for throughput."""
    alpha: float = 0.05
    """Significance level of the adjusted p-value."""


def decide(
    change: float, low: float, high: float, q_value: float, rule: Rule, *, enough: bool = True, margin: bool = False
) -> str:
    """The verdict of one metric from its change, interval [low, high] and adjusted p-value.

    `margin`: the run-to-run spread is unknown, so a regression or improvement needs its whole interval
    beyond the threshold.
    """
    if not enough or not all(math.isfinite(x) for x in (change, low, high)):
        return INCONCLUSIVE
    sign = 1.0 if rule.higher_is_worse else -1.0
    worse, lo, hi = sign * change, min(sign * low, sign * high), max(sign * low, sign * high)
    significant = q_value < rule.alpha
    edge = rule.threshold if margin else 0.0
    if worse > rule.threshold and lo > edge and significant:
        return REGRESSION
    if worse < -rule.threshold and hi < -edge and significant:
        return IMPROVEMENT
    if -rule.threshold < lo and hi < rule.threshold:
        return UNCHANGED
    return INCONCLUSIVE


def overall(verdicts: list[str]) -> str:
    """One word for a set of gating verdicts: any regression, else any inconclusive, else any improvement."""
    for word in (REGRESSION, INCONCLUSIVE, IMPROVEMENT):
        if word in verdicts:
            return word
    return UNCHANGED
