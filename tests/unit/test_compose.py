"""The lab's container files agree with each other and with the code: docker-compose.benchmark.yml against
prometheus/prometheus.yml and the `benchlab` CLI, the Dockerfile against .dockerignore, the dashboards against
the provisioned data sources, and the CI workflow's triggers and comparison step.

YAML is read with PyYAML when it is installed, else with the interpreter docker-compose v1 runs on (it depends
on PyYAML); `docker-compose config` interpolates the compose file as Docker would.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.spec import probe_from_flag, target_from_flag

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.benchmark.yml"
WORKFLOW = REPO / ".github" / "workflows" / "benchmark.yml"
DASHBOARDS = REPO / "dashboards"
DOCKER_COMPOSE = shutil.which("docker-compose")
SEED_ENV = ("APP_VERSION", "TARGET_HOST", "USERS", "SPAWN_RATE", "RUN_TIME", "TEST_TYPE", "BENCHLAB_DB_URL")
"""Settings the runner service must take from the environment (the names the CLI reads as fallbacks)."""
OUR_IMAGE_SERVICES = ("target", "sidecar", "runner")
LISTEN_FLAGS = {
    "target": ("--bind", "--port"),
    "run": ("--metrics-bind", "--metrics-port"),
    "sidecar": ("--metrics-addr", "--metrics-port"),
}
"""Per `benchlab` subcommand: the flags of its listening address and port (the CLI's default address is 127.0.0.1)."""

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


def _clean_env() -> dict[str, str]:
    """This environment without the lab's settings, so the compose file's defaults apply."""
    names = (*SEED_ENV, "LOCUSTFILE", "BASELINE_VERSION", "FAIL_ON_REGRESSION")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in names and not k.startswith(("BENCHLAB_", "POSTGRES_", "GRAFANA_", "PROMETHEUS_", "TARGET_"))
    }


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}` (used without docker-compose)."""

    def value(match: re.Match[str]) -> str:
        name, colon, default = match.group(1), match.group(2), match.group(3)
        if name in env and (env[name] or not colon):
            return env[name]
        return default or ""

    return re.sub(r"\$\{(\w+)(?:(:?)-([^}]*))?\}", value, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it (defaults, merge keys, absolute paths)."""
    if DOCKER_COMPOSE:
        out = subprocess.run(
            [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config"],
            cwd=REPO,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return dict(load_yaml(out.stdout))
    data = dict(load_yaml(_interpolate(COMPOSE_FILE.read_text(), _clean_env())))
    for service in data["services"].values():
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


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


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
        ports = flag_values(argv, port_flag)
        if not ports and argv[0] == "run":
            ports = [environment(service).get("BENCHLAB_METRICS_PORT", "")]
        addr = (flag_values(argv, addr_flag) or ["127.0.0.1"])[-1]
        return {(addr, int(p)) for p in ports if p.isdigit()}
    return set()


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service exposes to the network (expose:, or the container side of ports:)."""
    ports = {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        if isinstance(mapping, dict):
            ports.add(int(mapping["target"]))
        else:
            ports.add(int(str(mapping).split("/")[0].rsplit(":", 1)[-1]))
    return ports


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


# ---------------------------------------------------------------------------------------------- compose


def test_compose_config_is_valid() -> None:
    if not DOCKER_COMPOSE:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_every_prometheus_target_is_a_service_listening_on_that_port(compose: dict[str, Any]) -> None:
    config = load_yaml((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert len(targets) == 4
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services(compose), f"{target}: no compose service named {host}"
        service = services(compose)[host]
        listens = listening(host, service)
        assert any(p == int(port) for _, p in listens), f"{target}: {host} listens on {listens}"
        assert all(addr in ("0.0.0.0", "::", "") for addr, p in listens if p == int(port)), (
            f"{target}: {host} listens on {listens}, unreachable from the prometheus container"
        )
        assert int(port) in container_ports(service), f"{target}: {host} exposes {container_ports(service)}"


def test_our_services_use_only_flags_the_cli_knows(compose: dict[str, Any]) -> None:
    subcommands = set(re.search(r"\{([\w,]+)\}", cli_help()).group(1).split(","))  # type: ignore[union-attr]
    for name in OUR_IMAGE_SERVICES:
        argv = command(services(compose)[name])
        assert argv and argv[0] in subcommands, f"{name}: {argv[:1]} is not a benchlab command"
        known = known_flags(argv[0])
        used = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
        assert used <= known, f"{name}: benchlab {argv[0]} does not know {sorted(used - known)}"


def test_known_flags_are_read_from_the_cli() -> None:
    assert {"--metrics-port", "--metrics-bind", "--host", "-u", "--users", "--db"} <= known_flags("run")
    assert {"--metrics-addr", "--process", "--redis-list", "--scrape", "--run-id"} <= known_flags("sidecar")
    assert "--metrics-addr" not in known_flags("run")


def test_sidecar_watches_the_target_and_not_itself(compose: dict[str, Any]) -> None:
    sidecar, target = services(compose)["sidecar"], services(compose)["target"]
    assert sidecar.get("pid") == "service:target", "the sidecar must share the target's PID namespace"
    argv = command(sidecar)
    watched = [target_from_flag("process", v) for v in flag_values(argv, "--process")]
    assert watched and all(isinstance(t, Target) and t.pattern for t in watched)
    # Command lines as /proc shows them (the console script runs under the venv's python; init wraps it).
    target_lines = [
        "/opt/venv/bin/python /opt/venv/bin/benchlab " + " ".join(command(target)),
        "/sbin/docker-init -- benchlab " + " ".join(command(target)),
    ]
    own_lines = [
        "/opt/venv/bin/python /opt/venv/bin/benchlab " + " ".join(argv),
        "/sbin/docker-init -- benchlab " + " ".join(argv),
    ]
    for t in watched:
        assert re.search(str(t.pattern), target_lines[0]), f"{t.pattern!r} misses the target"
        for line in own_lines:
            assert not re.search(str(t.pattern), line), f"{t.pattern!r} matches the sidecar itself: {line}"
    for value in flag_values(argv, "--redis-list"):
        probe_from_flag("redis", value)
    for value in flag_values(argv, "--scrape"):
        probe_from_flag("scrape", value)
        assert urlsplit(value.split("=", 1)[-1] if "=" in value.split("//")[0] else value).hostname == "target"
    assert flag_values(argv, "--run-id") == ["auto"]


def test_runner_takes_its_settings_from_the_seed_env_names(compose: dict[str, Any]) -> None:
    runner = services(compose)["runner"]
    env = environment(runner)
    assert set(SEED_ENV) <= set(env), f"missing {set(SEED_ENV) - set(env)}"
    assert env["TARGET_HOST"] == "http://target:8000"
    overriding = {
        "--host",
        "-u",
        "--users",
        "-r",
        "--spawn-rate",
        "-t",
        "--run-time",
        "--app-version",
        "--test-type",
        "--db",
    }
    assert not overriding & set(command(runner)), "a flag would override its env var"
    assert env["APP_VERSION"] == environment(services(compose)["target"]).get("APP_VERSION", env["APP_VERSION"])
    target_version = flag_values(command(services(compose)["target"]), "--version")
    assert target_version == [env["APP_VERSION"]], "target and runner must default to the same version"


def test_the_cli_reads_the_env_names_the_runner_is_given(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each variable, made invalid, is the one `benchlab run` complains about: so it is read."""
    from benchlab.runners.cli import main

    env = {**environment(services(compose)["runner"]), "BENCHLAB_DB_URL": "sqlite:///unused.db"}
    env["TARGET_HOST"] = "http://127.0.0.1:9"  # were a bad value accepted, the health check fails fast here
    cases = {
        "TARGET_HOST": ("ftp://target", "bad host URL"),
        "USERS": ("0", "users must be > 0"),
        "SPAWN_RATE": ("fast", "spawn rate must be a number"),
        "RUN_TIME": ("forever", "bad run time"),
        "BENCHLAB_DB_URL": ("mysql://x/y", "mysql"),
        "LOCUSTFILE": ("no_such_file.py", "no_such_file.py"),
    }
    for name, (bad, message) in cases.items():
        for key, value in {**env, name: bad}.items():
            monkeypatch.setenv(key, value)
        code = main(["run", "--json"])
        err = capsys.readouterr().err
        assert code == 2 and message in err, f"{name}={bad}: exit {code}, {err}"


def _db_url(service: dict[str, Any]) -> str:
    argv = command(service)
    return (flag_values(argv, "--db") or [environment(service).get("BENCHLAB_DB_URL", "")])[-1]


def test_runner_and_sidecar_store_into_the_compose_postgres(compose: dict[str, Any]) -> None:
    pg = environment(services(compose)["postgres"])
    for name in ("runner", "sidecar"):
        url = urlsplit(_db_url(services(compose)[name]))
        assert url.scheme == "postgresql" and url.hostname == "postgres" and (url.port or 5432) == 5432, name
        assert url.username == pg["POSTGRES_USER"] and url.path == "/" + pg["POSTGRES_DB"], name
        assert url.password == pg.get("POSTGRES_PASSWORD"), f"{name}: password differs from POSTGRES_PASSWORD"


def test_services_start_in_order(compose: dict[str, Any]) -> None:
    svc = services(compose)
    healthcheck = " ".join(svc["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in healthcheck and "-h 127.0.0.1" in healthcheck, (
        "check over TCP: the init server is socket-only"
    )
    assert svc["runner"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["runner"]["depends_on"]["target"]["condition"] in ("service_started", "service_healthy")
    assert svc["sidecar"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in svc["target"] and "/health" in " ".join(svc["target"]["healthcheck"]["test"])
    for name in OUR_IMAGE_SERVICES:
        assert svc[name]["build"]["context"] in (str(REPO), "."), name
        assert svc[name]["image"] == svc["target"]["image"], "one image for runner, sidecar and target"


def test_schema_prometheus_and_grafana_files_are_mounted(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert Path(volume_pairs(svc["postgres"])["/docker-entrypoint-initdb.d"]) == REPO / "schema"
    prom = volume_pairs(svc["prometheus"])
    [config] = flag_values(command(svc["prometheus"]), "--config.file")
    mount = next(target for target in prom if config.startswith(target + "/"))
    assert Path(prom[mount]) == REPO / "prometheus" and (REPO / "prometheus" / Path(config).name).is_file()
    grafana = volume_pairs(svc["grafana"])
    assert Path(grafana["/etc/grafana/provisioning"]) == DASHBOARDS / "provisioning"
    providers = load_yaml((DASHBOARDS / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    for provider in providers:
        path = provider["options"]["path"]
        assert path in grafana, f"provider path {path} is not mounted"
        assert list(Path(grafana[path]).glob("*.json")), f"no dashboard JSON in {grafana[path]}"
    env = environment(svc["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert any(home.startswith(p + "/") and (Path(grafana[p]) / Path(home).name).is_file() for p in grafana), home
    assert 3000 in container_ports(svc["grafana"]) and 9090 in container_ports(svc["prometheus"])


# ---------------------------------------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[list[str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [line.split(None, 1) for line in lines]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        alternatives = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatch(p, alt) for p in prefixes for alt in alternatives):
            ignored = not negate
    return ignored


def test_dockerfile_copies_what_the_image_needs_and_dockerignore_keeps_it() -> None:
    instructions = _dockerfile()
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for keyword, rest in instructions:
        if keyword.upper() == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
                copied.append(source.rstrip("/"))
    for needed in ("pyproject.toml", "README.md", "runners", "metrics", "load_tests", "schema", "prometheus"):
        assert needed in copied, f"the image lacks {needed}"
    assert _ignored(".venv", patterns) and _ignored("tests", patterns) and _ignored(".git", patterns)
    assert instructions[0][1].startswith("python:3.11-slim")
    assert [i[1] for i in instructions if i[0].upper() == "FROM"][-1].startswith("python:3.11-slim")
    assert any(k.upper() == "RUN" and "pip install ." in r for k, r in instructions)
    users = [r for k, r in instructions if k.upper() == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    [entrypoint] = [json.loads(r) for k, r in instructions if k.upper() == "ENTRYPOINT"]
    assert entrypoint == ["benchlab"]
    workdir = [r for k, r in instructions if k.upper() == "WORKDIR"][-1]
    assert any(
        k.upper() == "COPY" and r.split()[-1] in ("./load_tests", f"{workdir}/load_tests") for k, r in instructions
    ), "load_tests/ must sit in the working directory, where `-f NAME` looks it up"


# ---------------------------------------------------------------------------------------------- Grafana


def _dashboards() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((DASHBOARDS / "json").glob("*.json")):
        yield path, json.loads(path.read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def test_provisioned_data_sources_have_fixed_uids() -> None:
    config = load_yaml((DASHBOARDS / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_uid = {ds["uid"]: ds for ds in config["datasources"]}
    assert by_uid["benchlab-prometheus"]["type"] == "prometheus"
    assert by_uid["benchlab-prometheus"]["url"] == "http://prometheus:9090"
    pg = by_uid["benchlab-postgres"]
    assert pg["type"] == "grafana-postgresql-datasource" and pg["url"] == "postgres:5432"
    assert pg["jsonData"]["database"] == "benchlab" and pg["user"] == "benchlab"


def test_dashboards_are_valid_and_use_only_provisioned_data_sources() -> None:
    config = load_yaml((DASHBOARDS / "provisioning" / "datasources" / "datasources.yml").read_text())
    types = {ds["uid"]: ds["type"] for ds in config["datasources"]}
    found: dict[str, str] = {}
    for path, dashboard in _dashboards():
        assert dashboard["uid"] not in found, (
            f"{path.name}: uid {dashboard['uid']} also in {found.get(dashboard['uid'])}"
        )
        found[dashboard["uid"]] = path.name
        assert 36 <= dashboard["schemaVersion"] <= 41, path.name
        refs: list[tuple[str, Any]] = []
        ids, titles = [], []
        for panel in _panels(dashboard):
            ids.append(panel["id"])
            titles.append(panel["title"])
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, f"{path.name}: {panel['title']} {pos}"
            if panel["type"] == "row":
                continue
            assert panel.get("targets"), f"{path.name}: {panel['title']} has no query"
            refs.append((panel["title"], panel["datasource"]))
            for target in panel["targets"]:
                refs.append((f"{panel['title']} {target['refId']}", target.get("datasource", panel["datasource"])))
                assert target.get("rawSql") or target.get("expr"), f"{path.name}: {panel['title']} {target['refId']}"
        for var in dashboard["templating"]["list"]:
            if var["type"] == "query":
                refs.append((f"variable {var['name']}", var["datasource"]))
        for anno in dashboard["annotations"]["list"]:
            if not anno.get("builtIn"):
                refs.append((f"annotation {anno['name']}", anno["datasource"]))
        for where, ref in refs:
            assert ref["uid"] in types, f"{path.name}: {where} uses data source {ref}"
            assert ref["type"] == types[ref["uid"]], f"{path.name}: {where}: type {ref['type']} != {types[ref['uid']]}"
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        assert len(titles) == len(set(titles)), f"{path.name}: duplicate panel titles"
    assert found == {
        "benchlab-api": "api-performance.json",
        "benchlab-resources": "resource-utilization.json",
        "benchlab-versions": "version-comparison.json",
    }


def test_version_dashboard_compares_two_chosen_versions() -> None:
    dashboard = json.loads((DASHBOARDS / "json" / "version-comparison.json").read_text())
    names = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"baseline", "candidate", "scenario"} <= set(names)
    assert names["baseline"]["query"] == "SELECT DISTINCT app_version FROM runs ORDER BY 1"
    sql = " ".join(t.get("rawSql", "") for p in _panels(dashboard) for t in p.get("targets", []))
    assert "${baseline:sqlstring}" in sql and "${candidate:sqlstring}" in sql


# ---------------------------------------------------------------------------------------------- CI workflow


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return dict(load_yaml(WORKFLOW.read_text()))


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as true.
    for key in ("on", True, "true"):
        if key in workflow:
            return dict(workflow[key])
    raise AssertionError("the workflow has no triggers")


def test_workflow_triggers(workflow: dict[str, Any]) -> None:
    on = _triggers(workflow)
    [schedule] = on["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and fields[4] != "*", "weekly"
    inputs = on["workflow_dispatch"]["inputs"]
    assert {"environment", "baseline_version", "app_version", "test_type"} <= set(inputs)
    assert set(inputs["test_type"]["options"]) == {"baseline", "load", "stress", "spike", "soak", "complete"}
    assert "v*-rc*" in on["push"]["tags"]
    assert {"APP_VERSION", "BASELINE_VERSION", "FAIL_ON_REGRESSION", "TEST_TYPE", "USERS", "RUN_TIME"} <= set(
        workflow["env"]
    )


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    [job] = workflow["jobs"].values()
    return list(job["steps"])


def test_workflow_runs_the_lab_and_always_tears_it_down(workflow: dict[str, Any], compose: dict[str, Any]) -> None:
    steps = _steps(workflow)
    scripts = [s.get("run", "") for s in steps]
    text = "\n".join(scripts)
    assert (
        "docker compose -f docker-compose.benchmark.yml up -d --wait postgres redis target sidecar prometheus" in text
    )
    assert re.search(r"docker compose -f docker-compose\.benchmark\.yml run --rm --use-aliases -T runner", text)
    assert "runner runs --json" in text and "export --run" in text
    for name in re.findall(r"up -d [^\n]*", text):
        for service in name.split()[2:]:
            assert service.startswith("-") or service in services(compose), f"{service}: no such compose service"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == "results"
    assert "down -v" in steps[-1]["run"] and steps[-1]["if"] == "always()"


FAKE_DOCKER = """#!{python}
import json, os, sys

argv = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as fh:
    env = {{k: os.environ.get(k) for k in ("APP_VERSION", "BASELINE_VERSION", "FAIL_ON_REGRESSION")}}
    fh.write(json.dumps({{"argv": argv, "env": env}}) + "\\n")
if "compare" not in argv:
    print('{{"run_id": 1}}')
    sys.exit(0)
cmd = argv[argv.index("compare") :]
test_type = cmd[cmd.index("--test-type") + 1]
rc = json.loads(os.environ["FAKE_RC"]).get(test_type, 0)
if rc == 2:
    sys.exit(print("benchlab: no completed run of version '1.1' for test type " + test_type, file=sys.stderr) or 2)
regressed = rc == 3
if "--json" in cmd:
    print(json.dumps({{"test_type": test_type, "gate_failed": regressed}}))
else:
    print("## benchlab: 1.1 against 1.0: **" + ("regression" if regressed else "no change") + "**")
    print("SLO pass: " + test_type)
if regressed:
    print("benchlab: GET /: p95 regressed +50.0 %", file=sys.stderr)
sys.exit(3 if regressed and "--fail-on-regression" in cmd else 0)
"""
"""Stands in for `docker`: logs argv and env, answers `runner compare` like benchlab (FAKE_RC: exit per test type)."""


def _step(workflow: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in _steps(workflow) if s.get("id") == step_id)


def _run_step(
    workflow: dict[str, Any], step_id: str, tmp_path: Path, rcs: dict[str, int] | None = None, **env: str
) -> tuple[int, str, str, list[dict[str, Any]]]:
    """Run a step's script as Actions does (`bash -e`) with a fake docker: exit code, output, summary, docker calls."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    step = _step(workflow, step_id)
    assert step.get("shell", "bash") == "bash", f"{step_id} must be a bash step"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_DOCKER.format(python=sys.executable))
    fake.chmod(0o755)
    (tmp_path / "script.sh").write_text(step["run"])
    for name in ("summary.md", "output.txt", "docker.log"):
        (tmp_path / name).write_text("")
    full_env = {
        **_clean_env(),
        **{k: str(v) for k, v in workflow["env"].items() if "${{" not in str(v)},
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "APP_VERSION": "1.1",
        "BASELINE_VERSION": "1.0",
        "TEST_TYPE": "load",
        "FAIL_ON_REGRESSION": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAKE_RC": json.dumps(rcs or {}),
        **env,
    }
    out = subprocess.run(
        [bash, "-e", str(tmp_path / "script.sh")],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [json.loads(line) for line in (tmp_path / "docker.log").read_text().splitlines()]
    return out.returncode, out.stdout + out.stderr, (tmp_path / "summary.md").read_text(), calls


def _compare_calls(calls: list[dict[str, Any]]) -> list[list[str]]:
    return [c["argv"] for c in calls if "compare" in c["argv"]]


def test_workflow_has_no_inline_python_and_one_gate(workflow: dict[str, Any]) -> None:
    steps = _steps(workflow)
    assert not [s.get("name") for s in steps if s.get("shell") == "python"], "the gate is `benchlab compare` only"
    assert not {"REGRESSION_P95_PCT", "REGRESSION_ERROR_RATE"} & set(workflow["env"])
    gate = _step(workflow, "compare")
    script = gate["run"]
    assert "runner compare" in script and '--version "$APP_VERSION"' in script
    assert '--baseline-version "$BASELINE_VERSION"' in script and "--format markdown" in script
    assert re.search(r'if \[ "\$FAIL_ON_REGRESSION" = true \]; then gate=\(--fail-on-regression\)', script)
    assert "BASELINE_VERSION" in gate["if"] and "APP_VERSION" in gate["if"]
    assert "--fail-on-regression" not in _step(workflow, "bench")["run"]


def test_workflow_runs_record_without_deciding_the_gate(workflow: dict[str, Any], tmp_path: Path) -> None:
    code, _, _, calls = _run_step(workflow, "bench", tmp_path)
    runs = [c for c in calls if "runner" in c["argv"] and c["argv"][c["argv"].index("runner") - 1] == "-T"]
    assert code == 0 and [c["env"]["APP_VERSION"] for c in runs] == ["1.0", "1.1"]
    assert all(c["env"]["BASELINE_VERSION"] == "" and c["env"]["FAIL_ON_REGRESSION"] == "false" for c in runs)
    assert (tmp_path / "results" / "summary-1.1.json").read_text().strip() == '{"run_id": 1}'


def test_workflow_gate_fails_on_a_regression_only_when_asked(workflow: dict[str, Any], tmp_path: Path) -> None:
    code, log, summary, calls = _run_step(workflow, "compare", tmp_path, {"load": 3})
    assert code == 3 and "::error::benchlab compare (load): regression or SLO failure" in log
    assert "::error::load: GET /: p95 regressed +50.0 %" in log
    assert "**regression**" in summary and "- SLO pass: load" in summary
    assert json.loads((tmp_path / "results" / "compare-load.json").read_text())["gate_failed"] is True
    [markdown, as_json] = _compare_calls(calls)
    assert "--fail-on-regression" in markdown and "--format markdown" in " ".join(markdown)
    assert "--json" in as_json and "--fail-on-regression" not in as_json
    assert all(c["env"]["FAIL_ON_REGRESSION"] == "false" for c in calls), "the flag alone decides"
    code, log, _, calls = _run_step(workflow, "compare", tmp_path, {"load": 3}, FAIL_ON_REGRESSION="false")
    assert code == 0 and "::error::" not in log
    assert not any("--fail-on-regression" in argv for argv in _compare_calls(calls))
    assert _run_step(workflow, "compare", tmp_path, {"load": 0})[0] == 0
    code, log, _, _ = _run_step(workflow, "compare", tmp_path, {"load": 2})
    assert code == 2 and "::error::benchlab compare (load): bad input (exit 2)" in log


def test_workflow_gate_compares_each_test_type_of_a_complete_suite(workflow: dict[str, Any], tmp_path: Path) -> None:
    code, log, summary, calls = _run_step(workflow, "compare", tmp_path, {"spike": 3}, TEST_TYPE="complete")
    types = [argv[argv.index("--test-type") + 1] for argv in _compare_calls(calls)]
    assert types == [t for t in ("baseline", "load", "stress", "spike", "soak") for _ in range(2)]
    assert code == 3 and "(spike): regression" in log and "(load)" not in log
    assert all((tmp_path / "results" / f"compare-{t}.json").is_file() for t in set(types))
    assert summary.count("### Test type") == 5


def test_workflow_gate_mounts_the_thresholds_file_when_there_is_one(workflow: dict[str, Any], tmp_path: Path) -> None:
    _, _, _, calls = _run_step(workflow, "compare", tmp_path)
    assert not any("--thresholds" in argv for argv in _compare_calls(calls))
    (tmp_path / "benchlab-thresholds.json").write_text("{}")
    _, _, _, calls = _run_step(workflow, "compare", tmp_path)
    for argv in _compare_calls(calls):
        runner = argv.index("runner")
        mount = argv[argv.index("-v") + 1]
        assert argv.index("-v") < runner and mount.startswith(f"{tmp_path}/benchlab-thresholds.json:")
        inside = mount.split(":")[1]
        assert argv[argv.index("--thresholds") + 1] == inside and argv.index("--thresholds") > runner
    assert "--thresholds" in known_flags("compare") and "--fail-on-regression" in known_flags("compare")
