"""docker-compose.benchmark.yml as Docker reads it, and the `benchlab` CLI it calls, for tests/unit/test_compose*.py.

`docker-compose config` (v1, Debian's package; `make test` installs it) interpolates the file with
.env.example as its env file, merges the YAML anchors and resolves paths. Without it the file is interpolated
here (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`) and parsed with PyYAML.
YAML is read with PyYAML when it is installed, else with the interpreter docker-compose v1 runs on.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.benchmark.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKER_COMPOSE = shutil.which("docker-compose")
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?)([-?])([^}]*))?\}")
"""Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`."""

DEFAULT_SERVICES = {"postgres", "redis", "target", "sidecar", "runner", "prometheus", "grafana"}
"""Services a plain `up` starts (those of no profile)."""
STORE_CLIENTS = ("runner", "sidecar", "rabbitmq-sidecar")
"""Services given the store's URL (a worker gets it from the runner)."""

_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


@cache
def _yaml_interpreter() -> str | None:
    """A Python that has PyYAML: docker-compose v1's own interpreter, or the system's."""
    candidates = []
    if DOCKER_COMPOSE:
        first = Path(DOCKER_COMPOSE).read_bytes()[:200].split(b"\n", 1)[0]
        if first.startswith(b"#!"):
            candidates.append(first[2:].decode().strip().split()[0])
    candidates += [p for p in (shutil.which("python3"), "/usr/bin/python3") if p]
    for python in candidates:
        if (
            os.access(python, os.X_OK)
            and subprocess.run([python, "-c", "import yaml"], capture_output=True).returncode == 0
        ):
            return python
    return None


def load_yaml(text: str) -> Any:
    """Parse YAML (skip the test when no YAML parser is at hand)."""
    try:
        import yaml
    except ImportError:
        python = _yaml_interpreter()
        if python is None:
            pytest.skip("no YAML parser: PyYAML is not installed (pip install pyyaml) and no system python3 has it")
        out = subprocess.run([python, "-c", _TO_JSON], input=text, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    return yaml.safe_load(text)


def compose_variables() -> dict[str, str]:
    """Every variable the compose file reads → '?' (required), '-' (has a default) or '' (plain)."""
    ops: dict[str, set[str]] = {}
    for name, _colon, op, _rest in VARIABLE.findall(COMPOSE_FILE.read_text()):
        ops.setdefault(name, set()).add(op)
    return {name: "?" if "?" in found else "-" if "-" in found else "" for name, found in ops.items()}


def compose_defaults() -> dict[str, str]:
    """The default of each variable given one (`${NAME:-default}`)."""
    return {name: rest for name, _colon, op, rest in VARIABLE.findall(COMPOSE_FILE.read_text()) if op == "-"}


def read_env_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(the `NAME=value` lines, the commented-out `# NAME=value` lines) of an env file."""
    values, commented = {}, {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line.strip()):
            values[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=(.*)", line.strip()):
            commented[match.group(1)] = match.group(2)
    return values, commented


def clean_env() -> dict[str, str]:
    """This environment without any variable the compose file (or compose itself) reads."""
    names = set(compose_variables())
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}


def run_config(env_file: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`docker-compose --env-file FILE config`, started (several run at once)."""
    assert DOCKER_COMPOSE
    return subprocess.Popen(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        cwd=REPO,
        env={**clean_env(), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation, for when docker-compose is not installed; KeyError for a missing `:?` value."""

    def value(match: re.Match[str]) -> str:
        name, colon, op, rest = match.groups()
        if name in env and (env[name] or not colon):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return VARIABLE.sub(value, text)


@cache
def resolved(extra: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The compose file resolved with .env.example (and `extra` variables), as `docker-compose config` does."""
    if DOCKER_COMPOSE:
        proc = run_config(ENV_EXAMPLE, dict(extra))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return dict(load_yaml(out))
    env = {**read_env_file(ENV_EXAMPLE)[0], **dict(extra)}
    data = dict(load_yaml(interpolate(COMPOSE_FILE.read_text(), env)))
    for service in data["services"].values():
        if "build" in service:
            service["build"]["context"] = str((REPO / service["build"]["context"]).resolve())
        service["volumes"] = [
            str(REPO / v[2:]) + v[v.index(":", 2) :] if isinstance(v, str) and v.startswith("./") else v
            for v in service.get("volumes", [])
        ]
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def flag_values(argv: list[str], flag: str) -> list[str]:
    """Values given to `flag` as `--flag VALUE` or `--flag=VALUE`."""
    found = []
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith(flag + "="):
            found.append(arg.split("=", 1)[1])
    return found


def db_url(service: dict[str, Any]) -> str:
    """The store URL a service is given: its last `--db`, else BENCHLAB_DB_URL."""
    return (flag_values(command(service), "--db") or [environment(service).get("BENCHLAB_DB_URL", "")])[-1]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service exposes to the network (expose:, or the container side of ports:)."""
    ports = {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        if isinstance(mapping, dict):
            ports.add(int(mapping["target"]))
        else:
            ports.add(int(str(mapping).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each published port ('' for an address or port left to Docker)."""
    found = []
    for mapping in service.get("ports", []):
        if isinstance(mapping, dict):
            found.append((str(mapping.get("host_ip", "")), str(mapping.get("published", ""))))
            continue
        parts = str(mapping).split("/")[0].split(":")
        if len(parts) == 3:
            found.append((parts[0], parts[1]))
        else:
            found.append(("", parts[0] if len(parts) == 2 else ""))
    return found


def volume_pairs(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path (or volume name) of the service's mounts."""
    pairs = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            pairs[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            pairs[target] = source
    return pairs


LISTEN_FLAGS = {
    "target": ("--bind", "--port"),
    "run": ("--metrics-bind", "--metrics-port"),
    "ci": ("--metrics-bind", "--metrics-port"),
    "sidecar": ("--metrics-addr", "--metrics-port"),
}
"""Per `benchlab` subcommand: the flags of its listening address and port (the CLI's default address is 127.0.0.1)."""


@cache
def cli_help(*args: str) -> str:
    """`benchlab ARGS --help`, from the real parser."""
    from benchlab.runners.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


def known_flags(subcommand: str) -> set[str]:
    """Option strings of `benchlab SUBCOMMAND --help`."""
    return set(re.findall(r"(?:^|[\s,\[])(--?[A-Za-z][\w.-]*)", cli_help(subcommand)))


def listening(service_name: str, service: dict[str, Any]) -> set[tuple[str, int]]:
    """(address, port) pairs the service's process listens on, read from its command line."""
    argv = command(service)
    if service_name == "prometheus":
        address = (flag_values(argv, "--web.listen-address") or [":9090"])[-1]
        host, _, port = address.rpartition(":")
        return {(host or "0.0.0.0", int(port))}
    if argv and argv[0] in LISTEN_FLAGS:
        addr_flag, port_flag = LISTEN_FLAGS[argv[0]]
        ports = flag_values(argv, port_flag) or [environment(service).get("BENCHLAB_METRICS_PORT", "")]
        addr = (flag_values(argv, addr_flag) or ["127.0.0.1"])[-1]
        return {(addr, int(p)) for p in ports if p.isdigit()}
    return set()
