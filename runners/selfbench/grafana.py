"""The queries of the dashboards in dashboards/json, expanded the way Grafana expands them.

Used by selfbench's P6 (every SQL query timed on a big store) and by tests/integration/test_dashboards.py and
test_dashboards_promql.py (every query run against real Postgres and Prometheus). SQL (the
`grafana-postgresql-datasource` plugin): the frontend first replaces template variables (`$var`, `${var}`,
`${var:format}`, `[[var]]`); variables it does not
know, such as `$__timeFilter`, stay. The backend then replaces `$__interval_ms`, `$__interval`,
`$__unixEpochFrom()` and `$__unixEpochTo()`, and finally every `$__name(args)` macro
(pkg/tsdb/grafana-postgresql-datasource/macros.go); an unknown macro is an error there, and so it is here.
PromQL: template variables (a multi-value variable as a regex alternation, `All` as its custom all-value) and
the built-ins `$__rate_interval`, `$__interval`, `$__range`. Anything that still looks like a variable after
expansion is reported, so a misspelt name fails a test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROMETHEUS_UID = "benchlab-prometheus"
POSTGRES_UID = "benchlab-postgres"

Value = str | Sequence[str]
"""A variable's current value: one string, or several (multi-value or All)."""

_TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_MACRO = re.compile(r"\$(\w+)\(([^)]*)\)")
_LEFTOVER = re.compile(r"\$\{?\w|\[\[\w")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")


@dataclass(frozen=True)
class Query:
    """One query of a dashboard: a panel target, a template variable or an annotation."""

    dashboard: str
    """Dashboard uid."""
    where: str
    """Readable location, e.g. `panel "Users" B`."""
    kind: str
    """panel | variable | annotation."""
    datasource: str
    """Data source uid."""
    text: str
    """rawSql or PromQL expression or variable query, as stored."""
    fmt: str
    """table | time_series | heatmap (panels), variable, annotation."""
    title: str = ""
    """Panel title, variable name or annotation name."""

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.where}"


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range, as the backend receives it."""

    start: datetime
    end: datetime


def load(path: Path) -> dict[str, Any]:
    """A dashboard JSON file."""
    return dict(json.loads(path.read_text()))


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (rows themselves too)."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _uid(datasource: Any) -> str:
    return str(datasource.get("uid", "")) if isinstance(datasource, dict) else str(datasource or "")


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every query of a dashboard, in the order Grafana shows them."""
    uid = str(dashboard["uid"])
    found: list[Query] = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        text = var["query"] if isinstance(var["query"], str) else var["query"].get("rawSql") or var["query"]["query"]
        found.append(
            Query(uid, f"variable {var['name']}", "variable", _uid(var["datasource"]), text, "variable", var["name"])
        )
    for anno in dashboard.get("annotations", {}).get("list", []):
        if anno.get("builtIn"):
            continue
        target = anno.get("target", {})
        text = target.get("rawSql") or target.get("expr") or anno.get("rawQuery") or anno.get("expr", "")
        found.append(
            Query(
                uid,
                f"annotation {anno['name']}",
                "annotation",
                _uid(anno["datasource"]),
                text,
                "annotation",
                anno["name"],
            )
        )
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            datasource = _uid(target.get("datasource") or panel.get("datasource"))
            text = target.get("rawSql") if "rawSql" in target else target.get("expr", "")
            fmt = target.get("format", "time_series")
            where = f'panel "{panel["title"]}" {target["refId"]}'
            found.append(Query(uid, where, "panel", datasource, text, fmt, panel["title"]))
    return found


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Template variable definitions by name."""
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


# ---------------------------------------------------------------------------------------------- template variables


def _sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _prom_regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape: a regex escape, doubled for a PromQL string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def _format(value: Value, fmt: str | None, definition: Mapping[str, Any], language: str) -> str:
    if value == "$__all":
        # Grafana inserts a custom all-value as it is, unformatted; without one, All means every option.
        if definition.get("allValue") is None:
            raise ValueError("All without a custom all-value: pass the list of options instead")
        return str(definition["allValue"])
    values = [value] if isinstance(value, str) else list(value)
    several = not isinstance(value, str) or bool(definition.get("multi")) or bool(definition.get("includeAll"))
    if fmt == "sqlstring":
        return ",".join(_sql_quote(v) for v in values)
    if fmt == "raw":
        return ",".join(values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "regex":
        return values[0] if len(values) == 1 else "(" + "|".join(re.escape(v) for v in values) + ")"
    if fmt is not None:
        raise ValueError(f"variable format {fmt!r} is not emulated")
    if language == "sql":
        return ",".join(_sql_quote(v) for v in values) if several else values[0]
    if language == "promql":
        if not several:
            return values[0]
        escaped = [_prom_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    raise ValueError(f"unknown query language {language!r}")


def replace_variables(
    text: str, values: Mapping[str, Value], definitions: Mapping[str, Mapping[str, Any]], language: str
) -> str:
    """The frontend's template substitution; names it does not know are left as they are."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name not in values:
            return match.group(0)
        return _format(values[name], fmt, definitions.get(name, {}), language)

    return _TEMPLATE.sub(substitute, text)


def _check_leftovers(text: str, where: str) -> None:
    leftover = _LEFTOVER.search(text)
    if leftover:
        start = max(0, leftover.start() - 30)
        raise ValueError(f"{where}: unresolved variable near {text[start : leftover.end() + 30]!r}")


# ---------------------------------------------------------------------------------------------- SQL macros


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time: no trailing zeros in the fraction, `Z` for UTC."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_duration(text: str) -> timedelta:
    """`10s`, `5m`, `1h` (gtime.ParseInterval for the forms dashboards use)."""
    match = _DURATION.match(text.strip().strip("'\""))
    if not match:
        raise ValueError(f"bad interval {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return timedelta(seconds=amount * seconds)


def _go_float(seconds: float) -> str:
    """fmt's %v of a float64 such as 10 or 0.5."""
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _macro(name: str, args: list[str], time_range: TimeRange) -> str:
    start, end = _rfc3339(time_range.start), _rfc3339(time_range.end)
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise ValueError(f"macro {name} needs a time column and an interval")
        if len(args) == 3:
            raise ValueError(f"macro {name}: the fill argument is not emulated")
        seconds = _go_float(parse_duration(args[1]).total_seconds())
        group = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    if name == "__unixEpochFilter":
        lo, hi = int(time_range.start.timestamp()), int(time_range.end.timestamp())
        return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
    raise ValueError(f"unknown macro {name!r}")


def expand_sql(
    query: Query,
    values: Mapping[str, Value],
    definitions: Mapping[str, Mapping[str, Any]],
    time_range: TimeRange,
    interval: timedelta = timedelta(seconds=10),
) -> str:
    """SQL as the data source sends it to Postgres."""
    sql = replace_variables(query.text, values, definitions, "sql")
    interval_ms = round(interval.total_seconds() * 1000)
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", f"{round(interval.total_seconds())}s")
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))

    def evaluate(match: re.Match[str]) -> str:
        name = match.group(1)
        args = [a.strip() for a in match.group(2).split(",")]
        # Grafana: `$__timeGroup(...)` directly followed by a comma means the pre-5.3 aliased form.
        if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, args, time_range)

    sql = _MACRO.sub(evaluate, sql)
    _check_leftovers(sql, query.id)
    return sql


# ---------------------------------------------------------------------------------------------- PromQL


def expand_promql(
    query: Query,
    values: Mapping[str, Value],
    definitions: Mapping[str, Mapping[str, Any]],
    builtins: Mapping[str, str],
) -> str:
    """An expression with its template variables and Grafana's built-ins replaced."""
    expr = replace_variables(query.text, values, definitions, "promql")
    for name in sorted(builtins, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", builtins[name]).replace(f"${name}", builtins[name])
    _check_leftovers(expr, query.id)
    return expr


def label_values_call(text: str) -> tuple[str, str | None]:
    """(label, metric or None) of a `label_values(...)` variable query; ValueError for other forms."""
    match = re.fullmatch(r"\s*label_values\(\s*(?:([^,()]+?)\s*,\s*)?(\w+)\s*\)\s*", text)
    if not match:
        raise ValueError(f"variable query {text!r} is not label_values(...)")
    return match.group(2), match.group(1)
