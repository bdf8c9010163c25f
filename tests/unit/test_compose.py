"""docker-compose.benchmark.yml keeps the lab locked down.

Required secrets with no defaults (.env.example documents every variable), ports on 127.0.0.1, non-root users,
pinned images, health-gated start order, Grafana on a read-only role and without anonymous access unless asked.
The file is read as `docker-compose config` resolves it (see compose_file.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from compose_file import (
    DEFAULT_SERVICES,
    DOCKER_COMPOSE,
    ENV_EXAMPLE,
    REPO,
    STORE_CLIENTS,
    command,
    compose_defaults,
    compose_variables,
    container_ports,
    db_url,
    environment,
    flag_values,
    load_yaml,
    published,
    read_env_file,
    resolved,
    run_config,
    services,
    volume_pairs,
)

SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "GRAFANA_DB_PASSWORD", "RABBITMQ_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved file; `resolved` is cached, so `docker-compose config` runs once for both compose test files."""
    return resolved()


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
        url = urlsplit(db_url(services(compose)[name]))
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
