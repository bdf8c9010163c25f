"""The dashboards' queries expanded as Grafana expands them (benchlab.runners.selfbench.grafana, which selfbench's
P6 shares), and what Grafana checks in a query's result."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from benchlab.runners.selfbench.grafana import (
    POSTGRES_UID,
    PROMETHEUS_UID,
    Query,
    TimeRange,
    Value,
    expand_promql,
    expand_sql,
    label_values_call,
    load,
    panels,
    parse_duration,
    queries,
    replace_variables,
    variables,
)

__all__ = [
    "POSTGRES_UID",
    "PROMETHEUS_UID",
    "Query",
    "TimeRange",
    "Value",
    "check_frame",
    "expand_promql",
    "expand_sql",
    "label_values_call",
    "load",
    "panels",
    "parse_duration",
    "queries",
    "replace_variables",
    "variables",
]


def check_frame(query: Query, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Raise AssertionError where Grafana would refuse the result for the query's format."""
    if query.fmt == "variable":
        assert len(columns) == 1 or {"__text", "__value"} <= set(columns), f"{query.id}: variable columns {columns}"
        return
    if query.fmt == "annotation":
        assert "time" in columns, f"{query.id}: an annotation needs a time column, got {columns}"
        return
    if query.fmt != "time_series":
        return
    assert "time" in columns, f"{query.id}: time series without a time column: {columns}"
    t = columns.index("time")
    times = [row[t] for row in rows]
    assert times == sorted(times), f"{query.id}: rows not sorted by time (Grafana's long-to-wide needs that)"
    numeric = 0
    for i, name in enumerate(columns):
        if i == t:
            continue
        kinds = {type(row[i]) for row in rows if row[i] is not None}
        if kinds <= {str}:
            continue
        assert kinds <= {int, float, Decimal}, f"{query.id}: column {name!r} is neither numeric nor a label: {kinds}"
        numeric += 1
    assert numeric, f"{query.id}: no value column in {columns}"
