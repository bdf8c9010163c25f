"""Noise floors: the run-to-run spread of each metric over repeated A/A runs of one version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ABSOLUTE_METRICS = ("error_rate",)
"""Metrics whose spread is the sd of the value; for the others it is the sd of its logarithm."""


@dataclass(frozen=True, kw_only=True)
class Floor:
    """The spread of one metric of one endpoint across calibration runs."""

    endpoint: str
    method: str
    metric: str
    runs: int
    mean_value: float
    spread: float
    """Sample sd of log(value) (about the relative sd) or, for absolute metrics, of the value."""

    @property
    def change_kind(self) -> str:
        """relative or absolute, as the comparison treats the metric."""
        return "absolute" if self.metric in ABSOLUTE_METRICS else "relative"


def floors(per_run: Sequence[Mapping[tuple[str, str], Mapping[str, float]]]) -> list[Floor]:
    """Spread of every (endpoint, metric) that all runs have; needs at least two runs."""
    if len(per_run) < 2:
        raise ValueError(f"a noise floor needs at least 2 runs, got {len(per_run)}")
    keys = set(per_run[0]).intersection(*per_run[1:])
    out = []
    for key in sorted(keys):
        for metric in sorted(set(per_run[0][key]).intersection(*(r[key] for r in per_run[1:]))):
            values = np.array([r[key][metric] for r in per_run], dtype=float)
            if not np.isfinite(values).all():
                continue
            if metric in ABSOLUTE_METRICS:
                spread = float(np.std(values, ddof=1))
            elif (values > 0).all():
                spread = float(np.std(np.log(values), ddof=1))
            else:
                continue
            out.append(
                Floor(
                    endpoint=key[0],
                    method=key[1],
                    metric=metric,
                    runs=len(per_run),
                    mean_value=float(values.mean()),
                    spread=spread,
                )
            )
    return out
