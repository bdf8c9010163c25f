"""Regression thresholds: how much worse a candidate may be than its baseline, per metric and per endpoint.

The file is JSON with `//` and `/* */` comments. Top-level numeric keys set the defaults; "statistic" picks the
latency statistics that "response_time" gates; "endpoints" maps an endpoint name, a glob, or "METHOD name" to
overrides of the same keys. Every regression is relative (0.2 = 20% worse) except "error_rate", which is an
absolute difference of error rates (0.01 = one percentage point).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

KEYS: tuple[str, ...] = ("response_time", "error_rate", "cpu_usage", "memory_usage", "queue_length", "throughput")
"""The numeric threshold keys, in file order of the seed format."""
STATISTICS: tuple[str, ...] = ("mean", "p50", "p95", "p99")
"""Latency statistics that "response_time" can gate."""
STATISTIC_ALIASES: dict[str, str] = {"median": "p50"}
"""Other accepted spellings of a statistic."""
HTTP_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"})
"""Words that make an endpoints key "METHOD name" rather than a plain name."""
TOP_KEYS: tuple[str, ...] = (*KEYS, "statistic", "endpoints")
"""Keys allowed at the top level of the file."""
ENDPOINT_KEYS: tuple[str, ...] = (*KEYS, "statistic")
"""Keys allowed in one endpoint's overrides."""


class ThresholdError(ValueError):
    """Bad thresholds file: a one-line message naming the line or the key."""


@dataclass(frozen=True, kw_only=True)
class EndpointThresholds:
    """Overrides for the endpoints one name or glob matches."""

    pattern: str
    """Endpoint name, or a case-sensitive fnmatch glob such as "/api/v1/generate*" (without the method)."""
    values: dict[str, float]
    """Overridden numeric thresholds, a subset of KEYS."""
    statistic: tuple[str, ...] | None = None
    """Overridden latency statistics, or None to keep the defaults'."""
    method: str = ""
    """HTTP method the override is restricted to (upper case), or "" for any method."""

    @property
    def key(self) -> str:
        """The override's key as written in the file: "METHOD name" or just the name."""
        return f"{self.method} {self.pattern}" if self.method else self.pattern

    def matches(self, name: str, method: str = "") -> bool:
        """True when this override applies to endpoint `name` requested with `method`."""
        if self.method and self.method != method.upper():
            return False
        return name == self.pattern or fnmatch.fnmatchcase(name, self.pattern)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Allowed regressions of a candidate against its baseline."""

    response_time: float = 0.2
    """Relative increase allowed of each latency statistic in `statistic`."""
    error_rate: float = 0.01
    """Absolute increase allowed of the error rate (0.01 = one percentage point)."""
    cpu_usage: float = 0.15
    """Relative increase allowed of CPU usage."""
    memory_usage: float = 0.15
    """Relative increase allowed of memory usage."""
    queue_length: float = 0.25
    """Relative increase allowed of queue length."""
    throughput: float = 0.2
    """Relative drop allowed of requests per second."""
    statistic: tuple[str, ...] = ("p95",)
    """Latency statistics gated by response_time: any of mean, p50, p95, p99."""
    endpoints: tuple[EndpointThresholds, ...] = ()
    """Per-endpoint overrides, in file order."""

    def for_endpoint(self, name: str, method: str = "") -> Thresholds:
        """The thresholds for one endpoint: these defaults with every matching override applied.

        Globs apply first and exact names last, so an exact name wins; within each, overrides without a method
        apply before those restricted to one; otherwise file order. The result has no endpoint overrides.
        """
        matching = [e for e in self.endpoints if e.matches(name, method)]
        matching.sort(key=lambda e: (e.pattern == name, bool(e.method)))
        values: dict[str, float] = {}
        statistic = self.statistic
        for override in matching:
            values.update(override.values)
            if override.statistic is not None:
                statistic = override.statistic
        return dataclasses.replace(self, **values, statistic=statistic, endpoints=())

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, in the file's schema."""
        out: dict[str, object] = {key: getattr(self, key) for key in KEYS}
        out["statistic"] = list(self.statistic)
        endpoints: dict[str, object] = {}
        for override in self.endpoints:
            entry: dict[str, object] = dict(override.values)
            if override.statistic is not None:
                entry["statistic"] = list(override.statistic)
            endpoints[override.key] = entry
        out["endpoints"] = endpoints
        return out


DEFAULT_THRESHOLDS = Thresholds()
"""The seed framework's thresholds (throughput 20% and statistic p95 added)."""


def strip_comments(text: str) -> str:
    """`text` with `//` and `/* */` comments outside JSON strings blanked to spaces; newlines and offsets kept."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] not in "\r\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if text[j] not in "\r\n":
                    out[j] = " "
            i = end
        else:
            i += 1
    return "".join(out)


def load_json(text: str, source: str, error: type[ValueError]) -> object:
    """Parse commented JSON; bad JSON or a duplicate key raises `error` with the source and line."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise error(f"{source}: duplicate key {json.dumps(key)}")
            seen[key] = value
        return seen

    try:
        return json.loads(strip_comments(text), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise error(f"{source} line {e.lineno}: {e.msg}") from None


def parse_thresholds(text: str, source: str = "thresholds") -> Thresholds:
    """Thresholds from the text of a thresholds file; omitted keys keep their defaults."""
    data = load_json(text, source, ThresholdError)
    if not isinstance(data, dict):
        raise ThresholdError(f"{source}: expected a JSON object at the top level, got {_type_name(data)}")
    _check_keys(data, TOP_KEYS, source)
    values = _numbers(data, source)
    statistic = _statistic(data["statistic"], source) if "statistic" in data else DEFAULT_THRESHOLDS.statistic
    endpoints = _endpoints(data["endpoints"], source) if "endpoints" in data else ()
    return dataclasses.replace(DEFAULT_THRESHOLDS, **values, statistic=statistic, endpoints=endpoints)


def _endpoints(raw: object, source: str) -> tuple[EndpointThresholds, ...]:
    """The "endpoints" overrides, in file order."""
    if not isinstance(raw, dict):
        raise ThresholdError(f'{source}: "endpoints" must be an object of name or pattern to overrides')
    out: list[EndpointThresholds] = []
    for key, body in raw.items():
        where = f"{source}: endpoints[{json.dumps(key)}]"
        method, pattern = _split_method(key)
        if not pattern.strip():
            raise ThresholdError(f"{where}: empty endpoint name")
        if not isinstance(body, dict):
            raise ThresholdError(f"{where}: expected an object of thresholds, got {_type_name(body)}")
        _check_keys(body, ENDPOINT_KEYS, where)
        statistic = _statistic(body["statistic"], where) if "statistic" in body else None
        values = _numbers(body, where)
        out.append(EndpointThresholds(pattern=pattern, values=values, statistic=statistic, method=method))
    return tuple(out)


def _split_method(key: str) -> tuple[str, str]:
    """("POST", "/x") for "POST /x"; ("", key) when the key does not start with an HTTP method."""
    head, sep, rest = key.partition(" ")
    if sep and head in HTTP_METHODS:
        return head, rest.strip()
    return "", key


def _numbers(data: Mapping[str, object], where: str) -> dict[str, float]:
    """The numeric keys present in `data`, validated."""
    out: dict[str, float] = {}
    for key in KEYS:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ThresholdError(f'{where}: "{key}" must be a number >= 0, got {json.dumps(value)}')
        if value < 0:
            raise ThresholdError(f'{where}: "{key}" must be >= 0, got {value:g}')
        if key == "error_rate" and value > 1:
            raise ThresholdError(f'{where}: "error_rate" (an absolute difference of rates) must be <= 1, got {value:g}')
        out[key] = float(value)
    return out


def _statistic(raw: object, where: str) -> tuple[str, ...]:
    """Latency statistics from a string or a list of strings, normalised and de-duplicated."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise ThresholdError(f'{where}: "statistic" must be a string or a non-empty list of strings ({_known()})')
    out: list[str] = []
    for item in items:
        name = STATISTIC_ALIASES.get(item.strip().lower(), item.strip().lower())
        if name not in STATISTICS:
            raise ThresholdError(f'{where}: "statistic" has unknown statistic {json.dumps(item)} ({_known()})')
        if name not in out:
            out.append(name)
    return tuple(out)


def _known() -> str:
    """The accepted statistics, for messages."""
    return "one of " + ", ".join((*STATISTICS, *STATISTIC_ALIASES))


def _check_keys(data: Mapping[str, object], known: tuple[str, ...], where: str) -> None:
    """Raise naming the first key of `data` that is not in `known`."""
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ThresholdError(f"{where}: unknown key {json.dumps(key)} ({hint}known: {', '.join(known)})")


def _type_name(value: object) -> str:
    """JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"
