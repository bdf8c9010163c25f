"""docker-compose.benchmark.yml agrees with the code.

prometheus/prometheus.yml's targets, the `benchlab` CLI's commands, flags and env names, the store URL, the
profiles (`workers`: Locust workers of the runner; `rabbitmq`: a broker and a sidecar probing it). The file is
read as `docker-compose config` resolves it (see compose_file.py).
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
    DEFAULT_SERVICES,
    REPO,
    STORE_CLIENTS,
    cli_help,
    command,
    container_ports,
    db_url,
    environment,
    flag_values,
    known_flags,
    listening,
    load_yaml,
    resolved,
    services,
    volume_pairs,
)

from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.queue import RabbitQueueSpec
from benchlab.metrics.sidecar.spec import probe_from_flag, target_from_flag

CI_ENV = (
    *("APP_VERSION", "TARGET_HOST", "USERS", "SPAWN_RATE", "RUN_TIME", "TEST_TYPE", "BASELINE_VERSION"),
    *("FAIL_ON_REGRESSION", "BENCHLAB_THRESHOLDS", "BENCHLAB_SLO", "BENCHLAB_REPORT_DIR", "NOTIFY_WEBHOOK_URL"),
    *("BENCHLAB_CONFIRM", "BENCHLAB_DB_URL", "LOCUSTFILE", "BENCHLAB_EXPECT_WORKERS"),
)
"""Settings the runner's `benchlab ci` takes from the environment."""
PROFILES = {"worker": ["workers"], "rabbitmq": ["rabbitmq"], "rabbitmq-sidecar": ["rabbitmq"]}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved file; `resolved` is cached, so `docker-compose config` runs once for both compose test files."""
    return resolved()


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the benchlab image (built from this repository)."""
    return {name: s for name, s in services(compose).items() if "build" in s}


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
        url = urlsplit(db_url(services(compose)[name]))
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
