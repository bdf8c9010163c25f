"""docker-compose.benchmark.yml agrees with the code and keeps the lab locked down.

Wiring: prometheus/prometheus.yml's targets, the `benchlab` CLI's commands, flags and env names, the store URL,
the profiles (`workers`: Locust workers of the runner; `rabbitmq`: a broker and a sidecar probing it).
Security: required secrets with no defaults (.env.example documents every variable), ports on 127.0.0.1,
non-root users, pinned images, health-gated start order, Grafana on a read-only role and without anonymous
access unless asked. The file is read as `docker-compose config` resolves it (see compose_file.py).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from compose_file import (
    DOCKER_COMPOSE,
    ENV_EXAMPLE,
    REPO,
    cli_help,
    command,
    compose_defaults,
    compose_variables,
    container_ports,
    environment,
    flag_values,
    known_flags,
    listening,
    load_yaml,
    published,
    read_env_file,
    resolved,
    run_config,
    services,
    volume_pairs,
)

from benchlab.metrics.sidecar.probe import RabbitQueueSpec
from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.spec import probe_from_flag, target_from_flag

SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "GRAFANA_DB_PASSWORD", "RABBITMQ_PASSWORD")
CI_ENV = (
    *("APP_VERSION", "TARGET_HOST", "USERS", "SPAWN_RATE", "RUN_TIME", "TEST_TYPE", "BASELINE_VERSION"),
    *("FAIL_ON_REGRESSION", "BENCHLAB_THRESHOLDS", "BENCHLAB_SLO", "BENCHLAB_REPORT_DIR", "NOTIFY_WEBHOOK_URL"),
    *("BENCHLAB_CONFIRM", "BENCHLAB_DB_URL", "LOCUSTFILE", "BENCHLAB_EXPECT_WORKERS"),
)
"""Settings the runner's `benchlab ci` takes from the environment."""
DEFAULT_SERVICES = {"postgres", "redis", "target", "sidecar", "runner", "prometheus", "grafana"}
PROFILES = {"worker": ["workers"], "rabbitmq": ["rabbitmq"], "rabbitmq-sidecar": ["rabbitmq"]}
STORE_CLIENTS = ("runner", "sidecar", "rabbitmq-sidecar")
"""Services given the store's URL (a worker gets it from the runner)."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolved()


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the benchlab image (built from this repository)."""
    return {name: s for name, s in services(compose).items() if "build" in s}


def _db_url(service: dict[str, Any]) -> str:
    return (flag_values(command(service), "--db") or [environment(service).get("BENCHLAB_DB_URL", "")])[-1]


# ---------------------------------------------------------------------------------------------- secrets


def test_compose_config_is_valid_with_the_example_env() -> None:
    if not DOCKER_COMPOSE:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; make test installs it)")
    out, err = run_config(ENV_EXAMPLE).communicate(timeout=60)
    assert err == "" and "services:" in out, err


def test_compose_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    if not DOCKER_COMPOSE:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; make test installs it)")
    required = {name for name, op in compose_variables().items() if op == "?"}
    assert required == set(SECRETS)
    lines = ENV_EXAMPLE.read_text().splitlines()
    cases = {name: [f"{name}=" if line.startswith(f"{name}=") else line for line in lines] for name in SECRETS}
    cases["all"] = [line for line in lines if not line.startswith(SECRETS)]
    procs = {}
    for name, text in cases.items():
        (tmp_path / name).write_text("\n".join(text) + "\n")
        procs[name] = run_config(tmp_path / name)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and out == "", f"without {name}: exit {proc.returncode}"
        expected = SECRETS if name == "all" else (name,)
        assert any(f"set {secret} (see .env.example)" in err for secret in expected), err


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    variables = compose_variables()
    values, commented = read_env_file(ENV_EXAMPLE)
    assert set(variables) <= set(values) | set(commented), (
        f"undocumented: {set(variables) - set(values) - set(commented)}"
    )
    assert set(values) | set(commented) <= set(variables) | {"COMPOSE_PROFILES"}, "documents unused variables"
    assert set(values) == set(SECRETS), "only the secrets are set; the rest show their defaults, commented out"
    defaults = compose_defaults()
    for name, shown in commented.items():
        if name in defaults:
            assert shown == defaults[name], (
                f"{name}: .env.example shows {shown!r}, the compose default is {defaults[name]!r}"
            )
    assert all(re.fullmatch(r"[\w-]+", v) for v in values.values()), "secrets must be URL-safe"


def test_no_password_has_a_default(compose: dict[str, Any]) -> None:
    for name, op in compose_variables().items():
        if re.search(r"PASS|SECRET|TOKEN", name):
            assert op == "?", f"{name} must be required (${{{name}:?...}}), not defaulted"
    secrets = read_env_file(ENV_EXAMPLE)[0]
    for service_name, service in services(compose).items():
        for key, value in environment(service).items():
            if re.search(r"PASS|SECRET|TOKEN", key):
                assert value in secrets.values(), f"{service_name}: {key} does not come from a required secret"
            if "://" in value and urlsplit(value).password is not None:
                assert urlsplit(value).password in secrets.values(), f"{service_name}: {key} has a built-in password"
    for name in STORE_CLIENTS:
        url = urlsplit(_db_url(services(compose)[name]))
        assert url.password == secrets["POSTGRES_PASSWORD"], f"{name}: the store's password is not POSTGRES_PASSWORD"
        assert "--db" not in command(services(compose)[name]), f"{name}: the password would show in the process list"


# ---------------------------------------------------------------------------------------------- locked down


def test_published_ports_listen_on_loopback_only(compose: dict[str, Any]) -> None:
    publishing = {name for name, s in services(compose).items() if s.get("ports")}
    assert publishing == {"postgres", "target", "prometheus", "grafana", "rabbitmq"}
    for name in publishing:
        for address, port in published(services(compose)[name]):
            assert address == "127.0.0.1" and port.isdigit(), f"{name} publishes on {address or 'every address'}:{port}"


def test_containers_run_as_non_root(compose: dict[str, Any]) -> None:
    dockerfile_users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    for name, service in services(compose).items():
        user = str(service.get("user", ""))
        assert user, f"{name}: no user: it would run as its image's default"
        assert user.split(":")[0] not in ("root", "0"), f"{name} runs as root"
        assert not service.get("privileged") and not service.get("cap_add"), f"{name} asks for privileges"
        if "build" in service:
            assert user == dockerfile_users[-1] == "10001:10001", f"{name}: {user} is not the image's user"


def test_third_party_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service["image"]
        if "build" in service:
            assert image == "benchlab:local" and Path(service["build"]["context"]) == REPO, name
            continue
        repo, _, tag = image.partition(":")
        # A full release number: Postgres numbers its releases MAJOR.MINOR, the others MAJOR.MINOR.PATCH.
        release = r"\d+\.\d+" if repo == "postgres" else r"v?\d+\.\d+\.\d+"
        assert re.fullmatch(rf"{release}(-[a-z]+)?", tag) or "@sha256:" in image, f"{name}: {image} is not pinned"


def test_every_dependency_is_waited_for_until_healthy(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name, service in svc.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, how in depends.items():
            assert how.get("condition") == "service_healthy", f"{name} → {dep}: {how}"
            check = svc[dep].get("healthcheck", {})
            assert check.get("test") and not check.get("disable"), f"{dep} has no health check"
    for name in DEFAULT_SERVICES - {"runner"}:
        assert svc[name].get("healthcheck", {}).get("test"), f"{name}: no health check (`up --wait` needs one)"
    pg_check = " ".join(svc["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg_check and "-h 127.0.0.1" in pg_check, "over TCP: the init server is socket-only"
    assert "/health" in " ".join(svc["target"]["healthcheck"]["test"])


# ---------------------------------------------------------------------------------------------- Grafana


def _grafana_expand(value: str, env: dict[str, str]) -> str:
    """Grafana's provisioning expansion: `$__env{NAME}`, `${NAME}` and `$NAME` from its environment."""
    return re.sub(
        r"\$(?:__env\{(\w+)\}|\{(\w+)\}|(\w+))", lambda m: env.get(next(g for g in m.groups() if g), ""), value
    )


def test_grafana_reads_the_store_as_the_read_only_role(compose: dict[str, Any]) -> None:
    svc = services(compose)
    config = load_yaml((REPO / "dashboards/provisioning/datasources/datasources.yml").read_text())
    [store] = [ds for ds in config["datasources"] if ds["type"] == "grafana-postgresql-datasource"]
    grafana, pg = environment(svc["grafana"]), environment(svc["postgres"])
    user = _grafana_expand(str(store["user"]), grafana)
    password = _grafana_expand(str(store["secureJsonData"]["password"]), grafana)
    assert user == pg["GRAFANA_DB_USER"] and password == pg["GRAFANA_DB_PASSWORD"], "not the role schema/ creates"
    assert user != pg["POSTGRES_USER"] and password != pg["POSTGRES_PASSWORD"], "Grafana must not be the owner"
    assert "password" not in store and "password" not in store.get("jsonData", {}), "the password is secure data"
    initdb = Path(volume_pairs(svc["postgres"])["/docker-entrypoint-initdb.d"])
    assert initdb == REPO / "schema"
    scripts = sorted(p.name for p in initdb.iterdir() if p.suffix in (".sql", ".sh"))
    assert scripts == ["001_schema.sql", "002_grafana_role.sh"], "the role comes after the tables"
    script = initdb / "002_grafana_role.sh"
    assert os.access(script, os.X_OK), "executable: the image sources a non-executable .sh into its own shell"
    text = script.read_text()
    assert "roles/readonly.sql" in text and (initdb / "roles" / "readonly.sql").is_file()
    assert "GRAFANA_DB_USER" in text and "${GRAFANA_DB_PASSWORD:?" in text


def test_grafana_has_no_anonymous_access_unless_asked(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == read_env_file(ENV_EXAMPLE)[0]["GRAFANA_ADMIN_PASSWORD"]
    opened = environment(services(resolved((("GRAFANA_ANONYMOUS", "true"),)))["grafana"])
    assert opened["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and opened["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_schema_prometheus_and_grafana_files_are_mounted(compose: dict[str, Any]) -> None:
    svc = services(compose)
    prom = volume_pairs(svc["prometheus"])
    [config] = flag_values(command(svc["prometheus"]), "--config.file")
    mount = next(target for target in prom if config.startswith(target + "/"))
    assert Path(prom[mount]) == REPO / "prometheus" and (REPO / "prometheus" / Path(config).name).is_file()
    grafana = volume_pairs(svc["grafana"])
    dashboards = REPO / "dashboards"
    assert Path(grafana["/etc/grafana/provisioning"]) == dashboards / "provisioning"
    providers = load_yaml((dashboards / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    for provider in providers:
        path = provider["options"]["path"]
        assert path in grafana, f"provider path {path} is not mounted"
        assert list(Path(grafana[path]).glob("*.json")), f"no dashboard JSON in {grafana[path]}"
    home = environment(svc["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert any(home.startswith(p + "/") and (Path(grafana[p]) / Path(home).name).is_file() for p in grafana), home
    assert 3000 in container_ports(svc["grafana"]) and 9090 in container_ports(svc["prometheus"])


# ---------------------------------------------------------------------------------------------- wiring


def test_every_prometheus_target_is_a_service_listening_on_that_port(compose: dict[str, Any]) -> None:
    config = load_yaml((REPO / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    found = [
        f"{n}:{sd['port']}"
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for n in sd["names"]
    ]
    assert len(targets) == 4 and found == ["rabbitmq-sidecar:9647"]
    for target in targets + found:
        host, port = target.rsplit(":", 1)
        assert host in services(compose), f"{target}: no compose service named {host}"
        service = services(compose)[host]
        listens = listening(host, service)
        assert any(p == int(port) for _, p in listens), f"{target}: {host} listens on {listens}"
        assert all(addr in ("0.0.0.0", "::", "") for addr, p in listens if p == int(port)), (
            f"{target}: {host} listens on {listens}, unreachable from the prometheus container"
        )
        assert int(port) in container_ports(service), f"{target}: {host} exposes {container_ports(service)}"


def test_our_services_use_only_commands_and_flags_the_cli_knows(compose: dict[str, Any]) -> None:
    subcommands = set(re.search(r"\{([\w,-]+)\}", cli_help()).group(1).split(","))  # type: ignore[union-attr]
    assert set(ours(compose)) == {"target", "sidecar", "runner", "worker", "rabbitmq-sidecar"}
    for name, service in ours(compose).items():
        argv = command(service)
        assert argv and argv[0] in subcommands, f"{name}: {argv[:1]} is not a benchlab command"
        known = known_flags(argv[0])
        used = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
        assert used <= known, f"{name}: benchlab {argv[0]} does not know {sorted(used - known)}"
    assert {"--metrics-addr", "--process", "--redis-list", "--rabbitmq-queue", "--run-id"} <= known_flags("sidecar")
    assert "--metrics-addr" not in known_flags("run")


def test_sidecar_watches_the_target_and_not_itself(compose: dict[str, Any]) -> None:
    sidecar, target = services(compose)["sidecar"], services(compose)["target"]
    assert sidecar.get("pid") == "service:target", "the sidecar must share the target's PID namespace"
    assert sidecar["user"] == target["user"], "reading the target's /proc/<pid>/io needs its user"
    argv = command(sidecar)
    watched = [target_from_flag("process", v) for v in flag_values(argv, "--process")]
    assert watched and all(isinstance(t, Target) and t.pattern for t in watched)
    # Command lines as /proc shows them (the console script runs under the venv's python; init wraps it).
    target_line = "/opt/venv/bin/python /opt/venv/bin/benchlab " + " ".join(command(target))
    own_lines = [
        "/opt/venv/bin/python /opt/venv/bin/benchlab " + " ".join(argv),
        "/sbin/docker-init -- benchlab " + " ".join(argv),
    ]
    for t in watched:
        assert re.search(str(t.pattern), target_line), f"{t.pattern!r} misses the target"
        for line in own_lines:
            assert not re.search(str(t.pattern), line), f"{t.pattern!r} matches the sidecar itself: {line}"
    for value in flag_values(argv, "--redis-list"):
        probe_from_flag("redis", value)
    for value in flag_values(argv, "--scrape"):
        assert urlsplit(probe_from_flag("scrape", value).url).hostname == "target"
    assert flag_values(argv, "--run-id") == ["auto"]
    assert not flag_values(argv, "--rabbitmq-queue") and "RABBITMQ_URL" not in environment(sidecar)


def test_runner_runs_ci_from_env_settings_and_keeps_its_reports(compose: dict[str, Any]) -> None:
    runner, target = services(compose)["runner"], services(compose)["target"]
    env = environment(runner)
    assert command(runner)[0] == "ci"
    assert set(CI_ENV) <= set(env), f"missing {set(CI_ENV) - set(env)}"
    assert env["TARGET_HOST"] == "http://target:8000" and env["BENCHLAB_EXPECT_WORKERS"] == "0"
    overriding = {"--host", "-u", "--users", "-r", "--spawn-rate", "-t", "--run-time", "--app-version", "--db"}
    assert not overriding & set(command(runner)), "a flag would override its env var"
    assert flag_values(command(target), "--version") == [env["APP_VERSION"]], "target and runner: one version"
    mounts = volume_pairs(runner)
    report_mount = next((m for m in mounts if env["BENCHLAB_REPORT_DIR"].startswith(m + "/")), None)
    assert report_mount and mounts[report_mount] == "results", "reports go to the results volume"
    on_host = volume_pairs(services(resolved((("BENCHLAB_RESULTS", "./results"),)))["runner"])
    assert Path(on_host[report_mount]) == REPO / "results", "BENCHLAB_RESULTS=./results puts them on the host"


def test_the_cli_reads_the_env_names_the_runner_is_given(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each variable, made invalid, is the one the runner's command complains about: so it is read."""
    from benchlab.runners.cli import main

    runner = services(compose)["runner"]
    env = {**environment(runner), "BENCHLAB_DB_URL": "sqlite:///unused.db", "BENCHLAB_REPORT_DIR": str(tmp_path)}
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
        code = main(command(runner))
        err = capsys.readouterr().err
        assert code == 2 and message in err, f"{name}={bad}: exit {code}, {err}"


def test_store_clients_use_the_compose_postgres(compose: dict[str, Any]) -> None:
    pg = environment(services(compose)["postgres"])
    for name in STORE_CLIENTS:
        url = urlsplit(_db_url(services(compose)[name]))
        assert url.scheme == "postgresql" and url.hostname == "postgres" and (url.port or 5432) == 5432, name
        assert url.username == pg["POSTGRES_USER"] and url.path == "/" + pg["POSTGRES_DB"], name
        assert services(compose)[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


# ---------------------------------------------------------------------------------------------- profiles


def test_profiles_keep_workers_and_rabbitmq_out_of_a_plain_up(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert {name: s["profiles"] for name, s in svc.items() if s.get("profiles")} == PROFILES
    assert set(svc) == DEFAULT_SERVICES | set(PROFILES)
    for name in DEFAULT_SERVICES:
        assert not set(svc[name].get("depends_on", {})) & set(PROFILES), f"{name} would pull in a profile service"


def test_workers_connect_to_the_runner_as_their_master(compose: dict[str, Any]) -> None:
    worker, runner = services(compose)["worker"], services(compose)["runner"]
    env = environment(runner)
    assert command(worker) == ["worker", "--master-host", "runner", "--master-port", env["BENCHLAB_MASTER_PORT"]]
    assert env["BENCHLAB_MASTER_PORT"] == "5557" and env["BENCHLAB_MASTER_BIND"] == "0.0.0.0"
    assert 5557 in container_ports(runner)
    assert worker["depends_on"]["runner"]["condition"] == "service_healthy", "workers wait for the master port"
    assert worker["depends_on"]["target"]["condition"] == "service_healthy"
    assert not worker.get("ports") and "container_name" not in worker, "`--scale worker=N` needs neither"
    assert environment(worker) == {"LOCUSTFILE": env["LOCUSTFILE"]}, "the master's file; the rest comes from it"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy", "its writer stores into Postgres"


def _runner_check(compose: dict[str, Any], env: dict[str, str]) -> int:
    test = services(compose)["runner"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return subprocess.run([sys.executable, "-c", test[3]], env={**os.environ, **env}, timeout=30).returncode


def test_runner_is_healthy_once_its_workers_can_connect(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["runner"])
    assert _runner_check(compose, env) == 0, "with no worker expected it is healthy at once"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = str(listener.getsockname()[1])
        waiting = {**env, "BENCHLAB_EXPECT_WORKERS": "2", "BENCHLAB_MASTER_PORT": port}
        assert _runner_check(compose, waiting) != 0, "not healthy before the master port listens"
        listener.listen()
        assert _runner_check(compose, waiting) == 0


def test_rabbitmq_profile_probes_the_broker_queue(compose: dict[str, Any]) -> None:
    svc = services(compose)
    sidecar, broker = svc["rabbitmq-sidecar"], svc["rabbitmq"]
    env, broker_env = environment(sidecar), environment(broker)
    argv = command(sidecar)
    [queue] = flag_values(argv, "--rabbitmq-queue")
    spec = probe_from_flag("rabbitmq", queue, url=env["RABBITMQ_URL"])
    assert isinstance(spec, RabbitQueueSpec) and spec.name == broker_env["BENCHLAB_RABBITMQ_QUEUE"]
    url = urlsplit(spec.url)
    assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672) and 5672 in container_ports(broker)
    assert (url.username, url.password) == (broker_env["RABBITMQ_DEFAULT_USER"], broker_env["RABBITMQ_DEFAULT_PASS"])
    assert "--rabbitmq-url" not in argv, "the URL holds the password: env only"
    assert sidecar["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    check = " ".join(broker["healthcheck"]["test"]).replace("$$", "$")  # `config` prints `$` escaped
    assert 'declare queue name="$BENCHLAB_RABBITMQ_QUEUE"' in check, "the probe only looks the queue up"
    assert flag_values(argv, "--run-id") == ["auto"]
