"""Stored comparisons (verdicts) and noise floors: plain dicts of column values in, plain dicts out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Table, func, insert, select

from benchlab.metrics.store.database import Store
from benchlab.metrics.store.model import Comparison, ComparisonResult, NoiseFloor

FLOOR_KEY = ("endpoint", "http_method", "metric", "subject")
"""Columns that name one noise floor of a version, scenario and test type."""


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _value(value: Any) -> Any:
    """NaN as None: SQLite would store NULL where Postgres stores NaN, so both get NULL."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _json(value: Any) -> Any:
    """JSON has no NaN or infinity (JSONB refuses them, SQLite would keep them): null instead, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _rows(table: Table, dicts: Sequence[dict[str, Any]], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row with every column: `defaults` where a key is missing or None, then None for nullable columns.

    ValueError on unknown keys, and on required columns left out, None or NaN.
    """
    names = [c.name for c in table.columns if not c.primary_key]
    required = [c.name for c in table.columns if not c.primary_key and not c.nullable]
    json = {c.name for c in table.columns if isinstance(c.type, JSON)}
    out = []
    for given in dicts:
        row = {k: _json(v) if k in json else _value(v) for k, v in given.items()}
        row |= {k: v for k, v in defaults.items() if row.get(k) is None}
        unknown = sorted(set(row) - set(names))
        missing = sorted(k for k in required if row.get(k) is None)
        if unknown or missing:
            problems = {"unknown": unknown, "missing (or None or NaN)": missing}
            said = "; ".join(f"{what} {', '.join(keys)}" for what, keys in problems.items() if keys)
            raise ValueError(f"{table.name} row: {said} (columns: {', '.join(names)})")
        out.append({name: row.get(name) for name in names})
    return out


def save_comparison(store: Store, header: dict[str, Any], results: Sequence[dict[str, Any]]) -> int:
    """Store a comparison and its per-metric results in one transaction; returns the comparison id.

    `header` holds `comparisons` columns (created_at defaults to now, details to {}); each result holds
    `comparison_results` columns except comparison_id. NaN is stored as NULL, and as null inside JSON.
    """
    [head] = _rows(_table(Comparison), [header], {"created_at": datetime.now(UTC), "details": {}})
    rows = _rows(_table(ComparisonResult), results, {"comparison_id": 0})
    with store.engine.begin() as conn:
        comparison_id = int(conn.execute(insert(Comparison).values(**head).returning(Comparison.id)).scalar_one())
        if rows:
            conn.execute(insert(ComparisonResult), [{**row, "comparison_id": comparison_id} for row in rows])
    return comparison_id


def get_comparison(store: Store, comparison_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A stored comparison's header and its results (in insertion order), or None."""
    comparisons, results = _table(Comparison), _table(ComparisonResult)
    with store.engine.connect() as conn:
        head = conn.execute(select(comparisons).where(comparisons.c.id == comparison_id)).mappings().first()
        if head is None:
            return None
        query = select(results).where(results.c.comparison_id == comparison_id).order_by(results.c.id)
        return dict(head), [dict(r) for r in conn.execute(query).mappings()]


def save_noise_floors(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Store noise floors (dicts of `noise_floors` columns; created_at defaults to now) in one transaction."""
    values = _rows(_table(NoiseFloor), rows, {"created_at": datetime.now(UTC)})
    if values:
        with store.engine.begin() as conn:
            conn.execute(insert(NoiseFloor), values)


def latest_noise_floors(store: Store, *, version: str, scenario: str, test_type: str) -> list[dict[str, Any]]:
    """The newest floor per (endpoint, http_method, metric, subject) of a version, scenario and test type."""
    t = _table(NoiseFloor)
    recency = (
        func.row_number()
        .over(partition_by=[t.c[k] for k in FLOOR_KEY], order_by=(t.c.created_at.desc(), t.c.id.desc()))
        .label("recency")
    )
    ranked = (
        select(t, recency)
        .where(t.c.app_version == version, t.c.scenario == scenario, t.c.test_type == test_type)
        .subquery()
    )
    columns = [ranked.c[c.name] for c in t.columns]
    query = select(*columns).where(ranked.c.recency == 1).order_by(*(ranked.c[k] for k in FLOOR_KEY))
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
