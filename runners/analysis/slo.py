"""Service level objectives: success criteria per operation, and their check against what a run measured.

A criterion is readable text such as "p95 < 100ms", "rps > 50" or "error_rate < 0.1%" (k6 spellings such as
"p(95)<100", "avg<200" and "rate<0.01" too). An operation groups criteria with the names it applies to: endpoint
names (or "METHOD name"), Locust user classes, or the scenario. The SLO file is JSON with `//` comments.
"""

from __future__ import annotations

import fnmatch
import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchlab.runners.analysis.threshold import load_json

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
"""Comparison operators a criterion may use."""
SCOPES: tuple[str, ...] = ("endpoint", "user_class", "scenario")
"""What an operation's match patterns are matched against."""
OPERATION_KEYS: tuple[str, ...] = ("criteria", "match", "scope")
"""Keys of an operation written as an object."""
LATENCY_ALIASES: dict[str, str] = {
    "mean": "mean",
    "avg": "mean",
    "average": "mean",
    "median": "p50",
    "med": "p50",
    "max": "max",
}
"""Named latency metrics and what they mean."""
RPS_ALIASES: frozenset[str] = frozenset({"rps", "throughput"})
"""Names of the requests-per-second metric."""
ERROR_ALIASES: frozenset[str] = frozenset({"error_rate", "errors", "rate", "fail_ratio", "failure_rate"})
"""Names of the error-rate metric (a fraction of requests)."""

_CRITERION = re.compile(
    r"""\s*(?P<metric>p\s*\(\s*[0-9.]+\s*\)|p[0-9.]+|[a-z_]+)
        \s*(?P<op><=|>=|<|>)
        \s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
        \s*(?P<unit>ms|s|%)?\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_PERCENTILE = re.compile(r"p\s*\(?\s*([0-9.]+)\s*\)?", re.IGNORECASE)


class SLOError(ValueError):
    """Bad SLO file or criterion: a one-line message naming the criterion and the operation."""


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One success criterion, such as p95 < 100 ms."""

    metric: str
    """"p<q>" (p50, p95, p99.9...), "mean", "max", "rps" or "error_rate"."""
    op: str
    """Comparison: "<", "<=", ">" or ">="."""
    limit: float
    """Limit in ms for latency, requests per second for rps, a fraction (0.001) for error_rate."""
    text: str
    """The criterion as written."""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise SLOError(f"criterion {json.dumps(self.text)}: unknown operator {json.dumps(self.op)}")

    @property
    def quantile(self) -> float | None:
        """0.95 for p95, 0.999 for p99.9; None for metrics that are not percentiles."""
        match = re.fullmatch(r"p([0-9.]+)", self.metric)
        return round(float(match.group(1)) / 100, 6) if match else None

    def holds(self, value: float) -> bool:
        """True when `value` meets the criterion (a NaN never does)."""
        return OPS[self.op](value, self.limit)


@dataclass(frozen=True, kw_only=True)
class Operation:
    """A named group of criteria and the endpoints, user classes or scenarios they apply to."""

    name: str
    """Operation name, as in the SLO table."""
    match: tuple[str, ...]
    """Names or globs, matched case-insensitively."""
    scope: str
    """What `match` is matched against: "endpoint", "user_class" or "scenario"."""
    criteria: tuple[Criterion, ...]
    """The criteria, in file order."""

    def matches(
        self, *, endpoint: str = "", method: str = "", user_classes: Sequence[str] = (), scenario: str = ""
    ) -> bool:
        """True when the operation applies: by endpoint name or "METHOD name", user class, or scenario."""
        if self.scope == "endpoint":
            names = [endpoint, f"{method} {endpoint}"] if endpoint and method else [endpoint] if endpoint else []
        elif self.scope == "user_class":
            names = [c for c in user_classes if c]
        else:
            names = [scenario] if scenario else []
        return any(fnmatch.fnmatchcase(n.lower(), p.lower()) for n in names for p in self.match)


@dataclass(frozen=True, kw_only=True)
class SLOSet:
    """All operations of an SLO file."""

    operations: tuple[Operation, ...]
    """Operations in file order."""


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What was measured for one endpoint, or for the whole run when endpoint is ""."""

    endpoint: str
    """Endpoint name, or "" for the total over all endpoints."""
    method: str
    """HTTP method (Locust request type), or ""."""
    requests: int
    """Requests made."""
    rps: float
    """Requests per second."""
    error_rate: float
    """Failed requests as a fraction of requests."""
    mean_ms: float
    """Mean response time in ms."""
    max_ms: float
    """Largest response time in ms."""
    percentiles: dict[float, float]
    """Quantile to response time in ms, such as {0.5: 12.0, 0.95: 80.0, 0.99: 120.0}."""


@dataclass(frozen=True, kw_only=True)
class Check:
    """One criterion of one operation evaluated on one observed row."""

    operation: str
    """Operation name."""
    endpoint: str
    """Endpoint of the observed row, or "" for the run's total."""
    method: str
    """Method of the observed row."""
    criterion: Criterion
    """The criterion checked."""
    value: float | None
    """Measured value in the criterion's unit, or None when it is not known."""
    passed: bool | None
    """Whether the criterion holds, or None when the value is not known."""


def _slos(name: str, match: tuple[str, ...], scope: str, criteria: tuple[str, ...]) -> Operation:
    """An operation of the defaults."""
    return Operation(name=name, match=match, scope=scope, criteria=tuple(parse_criterion(c, name) for c in criteria))


def parse_criterion(text: str, operation: str = "") -> Criterion:
    """A criterion from text such as "p95 < 100ms", "p(99)<1500", "rps > 50" or "error_rate < 0.1%"."""
    where = f'operation "{operation}": ' if operation else ""
    found = _CRITERION.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise SLOError(
            f"{where}bad criterion {json.dumps(text)}: expected METRIC OP LIMIT such as "
            '"p95 < 100ms", "rps > 50" or "error_rate < 0.1%" (OP one of <, <=, >, >=)'
        )
    name = re.sub(r"\s+", "", found["metric"].lower())
    op, number, unit = found["op"], float(found["number"]), (found["unit"] or "").lower()

    def bad(reason: str) -> SLOError:
        return SLOError(f"{where}bad criterion {json.dumps(text)}: {reason}")

    percentile = _PERCENTILE.fullmatch(name)
    if percentile or name in LATENCY_ALIASES:
        if percentile:
            try:
                q = float(percentile.group(1))
            except ValueError:
                raise bad(f"bad percentile {json.dumps(percentile.group(1))}") from None
            if not 0 < q < 100:
                raise bad("a percentile must be above 0 and below 100 (use max for the largest)")
            metric = f"p{q:.10g}"
        else:
            metric = LATENCY_ALIASES[name]
        if unit == "%":
            raise bad("a latency limit takes ms or s, not %")
        limit = round(number * 1000, 9) if unit == "s" else number
    elif name in RPS_ALIASES:
        if unit:
            raise bad(f"a requests-per-second limit takes no unit, got {unit}")
        metric, limit = "rps", number
    elif name in ERROR_ALIASES:
        if unit in ("ms", "s"):
            raise bad(f"an error rate limit is a fraction or a percentage, not {unit}")
        metric, limit = "error_rate", round(number / 100, 12) if unit == "%" else number
        if limit > 1:
            hint = "" if unit == "%" else f"; write {number:g}% for a percentage"
            raise bad(f"an error rate limit must be at most 1 (100%){hint}")
    else:
        raise bad(
            f"unknown metric {json.dumps(found['metric'])} "
            "(known: p<N>, p(<N>), mean, avg, median, med, max, rps, throughput, error_rate, errors, rate, fail_ratio)"
        )
    return Criterion(metric=metric, op=op, limit=limit, text=text.strip())


def parse_slos(text: str, source: str = "slo") -> SLOSet:
    """Operations from the text of an SLO file (JSON with comments); the file replaces the defaults."""
    data = load_json(text, source, SLOError)
    if not isinstance(data, dict):
        raise SLOError(f"{source}: expected a JSON object of operation name to criteria at the top level")
    operations: list[Operation] = []
    for name, body in data.items():
        try:
            operations.append(_operation(name, body))
        except SLOError as e:
            raise SLOError(f"{source}: {e}") from None
    return SLOSet(operations=tuple(operations))


def _operation(name: str, body: object) -> Operation:
    """One operation from its file entry: a list of criteria, or an object with criteria, match and scope."""
    where = f"operation {json.dumps(name)}"
    if not name.strip():
        raise SLOError("empty operation name")
    if isinstance(body, list):
        body = {"criteria": body}
    if not isinstance(body, dict):
        raise SLOError(f'{where}: expected a list of criteria or an object with "criteria", "match" and "scope"')
    unknown = [key for key in body if key not in OPERATION_KEYS]
    if unknown:
        names = ", ".join(json.dumps(k) for k in unknown)
        raise SLOError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {names} (known: criteria, match, scope)")
    if "criteria" not in body:
        raise SLOError(f'{where}: missing "criteria"')
    criteria = _strings(body["criteria"], f'{where}: "criteria"')
    match = _strings(body["match"], f'{where}: "match"') if "match" in body else (name,)
    scope = body.get("scope", "endpoint")
    if scope not in SCOPES:
        raise SLOError(f'{where}: "scope" must be one of {", ".join(SCOPES)}, got {json.dumps(scope)}')
    return Operation(name=name, match=match, scope=scope, criteria=tuple(parse_criterion(c, name) for c in criteria))


def _strings(raw: object, where: str) -> tuple[str, ...]:
    """A non-empty list of non-empty strings (a single string is accepted as a list of one)."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise SLOError(f"{where} must be a non-empty list of non-empty strings")
    return tuple(items)


def check(
    slos: SLOSet, observed: Sequence[Observed], *, user_classes: Sequence[str] = (), scenario: str = ""
) -> list[Check]:
    """Every criterion of every operation on every observed row it applies to, in operation then row order.

    Endpoint-scoped operations apply to the endpoint rows they match (never the total row). Operations scoped
    to user classes or the scenario apply to the total row (endpoint ""); when they match but no total row was
    observed, their checks are unknown rather than left out.
    """
    totals = [row for row in observed if row.endpoint == ""]
    out: list[Check] = []
    for operation in slos.operations:
        rows: list[Observed | None]
        if operation.scope == "endpoint":
            rows = [r for r in observed if r.endpoint and operation.matches(endpoint=r.endpoint, method=r.method)]
        elif operation.matches(user_classes=user_classes, scenario=scenario):
            rows = [*totals] if totals else [None]
        else:
            rows = []
        for row in rows:
            for criterion in operation.criteria:
                value = None if row is None else _value(criterion, row)
                out.append(
                    Check(
                        operation=operation.name,
                        endpoint="" if row is None else row.endpoint,
                        method="" if row is None else row.method,
                        criterion=criterion,
                        value=value,
                        passed=None if value is None else criterion.holds(value),
                    )
                )
    return out


def may_apply(slos: SLOSet, *, user_classes: Sequence[str] = (), scenario: str = "") -> bool:
    """False when no operation can apply to a run of this scenario and these user classes, whatever its endpoints."""
    return any(
        op.scope == "endpoint" or op.matches(user_classes=user_classes, scenario=scenario) for op in slos.operations
    )


def _value(criterion: Criterion, row: Observed) -> float | None:
    """The observed value a criterion is about; None when unknown (no requests, a missing percentile, NaN)."""
    if criterion.metric == "rps":
        value: float | None = row.rps
    elif row.requests <= 0:
        value = None
    elif criterion.metric == "error_rate":
        value = row.error_rate
    elif criterion.metric == "mean":
        value = row.mean_ms
    elif criterion.metric == "max":
        value = row.max_ms
    else:
        quantile = criterion.quantile
        by_quantile = {round(q, 6): ms for q, ms in row.percentiles.items()}
        value = None if quantile is None else by_quantile.get(quantile)
    return None if value is None or math.isnan(value) else float(value)


DEFAULT_SLOS = SLOSet(
    operations=(
        _slos("health checks", ("*health*",), "scenario", ("p95 < 100ms", "rps > 50", "error_rate < 0.1%")),
        _slos(
            "content generation", ("*content*", "*generat*"), "scenario", ("p95 < 5000ms", "rps > 5", "error_rate < 5%")
        ),
        _slos("mixed workload", ("*mixed*",), "scenario", ("p95 < 3000ms", "rps > 10", "error_rate < 2%")),
    )
)
"""The seed framework's success criteria, for the whole run of a scenario (or user class) named after them."""
