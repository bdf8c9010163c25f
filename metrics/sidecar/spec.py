"""Target and queue-probe specs of the sidecar, from flag values and config files.

Flag values (`benchlab.runners.cli` turns them into `SidecarSettings` with these helpers):
- targets, `target_from_flag(kind, value)`: kind `pid | process | port | cgroup`, value `[SERVICE=]VALUE`,
  e.g. `--pid 4242`, `--process 'api=gunicorn: master'`, `--port web=8000`, `--cgroup system.slice/x.scope`;
  `parse_target("api=port:8000")` takes one string. The service defaults to `--service`, else to `pid-4242`,
  `port-8000`, the regex, or the cgroup's last component. A regex with `=` needs one: `api=a=b`.
- probes, `probe_from_flag(kind, value, url=...)`: `redis` value `[LABEL=]KEY` (with `--redis-url`),
  `rabbitmq` value `[LABEL=]QUEUE` (with `--rabbitmq-url`), `scrape` value `[LABEL=]URL`.
- `--run-id`: `parse_run_id("auto" | "none" | N)`.
The config file format is described in `metrics/sidecar/daemon.py`.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.queue import ProbeSpec, RabbitQueueSpec, RedisListSpec, ScrapeSpec

RunIdSetting = int | Literal["auto"] | None
"""`"auto"`: the run in progress in the store; an int: that run; None: no run."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
_LABELLED = re.compile(r"([A-Za-z_][\w.-]*)=(.+)", re.DOTALL)
_KINDS = ("pid", "process", "port", "cgroup")
_SECTIONS: dict[str, Any] = dict(target=Target, redis=RedisListSpec, rabbitmq=RabbitQueueSpec, scrape=ScrapeSpec)
_RENAMED = {"target": ("process", "pattern"), "rabbitmq": ("queue", "name")}
"""Config keys that differ from the field names."""


def _split_label(value: str) -> tuple[str | None, str]:
    match = _LABELLED.fullmatch(value)
    return (match.group(1), match.group(2)) if match else (None, value)


def target_from_flag(kind: str, value: str, *, service: str | None = None) -> Target:
    """A target from `--pid/--process/--port/--cgroup [SERVICE=]VALUE`; ValueError on a bad value."""
    named, raw = _split_label(value.strip())
    return _target(kind, raw, named or service, value)


def _target(kind: str, raw: str, service: str | None, value: str) -> Target:
    if kind not in _KINDS or not raw or (kind in ("pid", "port") and not raw.isdigit()):
        raise ValueError(f"bad target {kind} {value!r}: expected [SERVICE=]VALUE, a number for pid and port")
    if kind == "pid":
        return Target(service=service or f"pid-{int(raw)}", pid=int(raw))
    if kind == "port":
        return Target(service=service or f"port-{int(raw)}", port=int(raw))
    if kind == "process":
        return Target(service=service or raw, pattern=raw)
    return Target(service=service or raw.rstrip("/").rsplit("/", 1)[-1] or raw, cgroup=raw)


def parse_target(spec: str, *, service: str | None = None) -> Target:
    """A target from `[SERVICE=]KIND:VALUE`, e.g. `api=port:8000`, `pid:4242`; ValueError if bad."""
    match = re.fullmatch(r"(?:([A-Za-z_][\w.-]*)=)?(pid|process|port|cgroup):(.+)", spec.strip(), re.DOTALL)
    if not match:
        raise ValueError(f"bad target {spec!r}: expected [SERVICE=]pid|process|port|cgroup:VALUE")
    named, kind, value = match.groups()
    return _target(kind, value.strip(), named or service, spec)


def probe_from_flag(kind: str, value: str, *, url: str | None = None) -> ProbeSpec:
    """A probe from `--redis-list [LABEL=]KEY`, `--rabbitmq-queue [LABEL=]QUEUE` or `--scrape [LABEL=]URL`."""
    label, raw = _split_label(value.strip())
    if not raw:
        raise ValueError(f"bad {kind} probe {value!r}: empty")
    if kind == "redis":
        return RedisListSpec(url=url or DEFAULT_REDIS_URL, key=raw, label=label)
    if kind == "rabbitmq":
        return RabbitQueueSpec(url=url or DEFAULT_RABBITMQ_URL, name=raw, label=label)
    if kind == "scrape":
        if not raw.startswith(("http://", "https://")):
            raise ValueError(f"bad scrape URL {raw!r}: expected http:// or https://")
        return ScrapeSpec(url=raw, label=label)
    raise ValueError(f"bad probe kind {kind!r}: expected redis, rabbitmq or scrape")


def parse_run_id(text: str) -> RunIdSetting:
    """`auto`, `none` or a positive run id; ValueError otherwise."""
    value = text.strip().lower()
    if value in ("auto", "none"):
        return "auto" if value == "auto" else None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"bad run id {text!r}: expected auto, none or a positive integer")
    return int(value)


def load_config(path: Path) -> tuple[tuple[Target, ...], tuple[ProbeSpec, ...]]:
    """Targets and probes of a TOML or JSON config file; ValueError (one line) when it is bad."""
    try:
        text = path.read_text()
        data: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ValueError(f"bad sidecar config {path}: {str(exc).splitlines()[0]}") from None
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ValueError(f"bad sidecar config {path}: unknown sections {sorted(unknown)}")
    targets: list[Target] = []
    probes: list[ProbeSpec] = []
    for section, items in data.items():
        for i, item in enumerate(items if isinstance(items, list) else [items], 1):
            try:
                fields = dict(item)
                old, new = _RENAMED.get(section, ("", ""))
                if old in fields:
                    fields[new] = fields.pop(old)
                made = _SECTIONS[section](**fields)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bad sidecar config {path}: [[{section}]] #{i}: {exc}") from None
            (targets if isinstance(made, Target) else probes).append(made)
    return tuple(targets), tuple(probes)
