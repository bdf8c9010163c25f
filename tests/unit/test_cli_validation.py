"""`benchlab run` input validation, in process: every flag and env var into RunSpec, every bad value exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_parse import parser

from benchlab.runners import cli


@pytest.fixture
def parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """`benchlab run ARGS` up to the point the run would start: returns its RunSpec."""
    return parser(monkeypatch, tmp_path)


def test_flags_become_the_run_spec(parse: Any, tmp_path: Path) -> None:
    spec = parse(
        "-f", "my_test.py", "--user-class", "A", "--user-class", "B", "--host", "http://127.0.0.1:8000/", "-u", "7",
        "-r", "2.5", "-t", "1m30s", "--app-version", "1.2", "--test-type", "stress", "--tag", "a=b=c", "--tag",
        "empty=", "--workers", "3", "--db", "sqlite:///x/bench.db", "--spool-dir", "sp", "--stress-steps", "4",
        "--slo-p95-ms", "250", "--slo-error-rate", "0", "--spike-factor", "2", "--health-path", "/ready",
        "--no-health-check", "--metrics-port", "9999", "--monitor-pid", "42", "--monitor-process", "gunicorn",
        "--environment", "ci", "--json", "-q",
    )  # fmt: skip
    meta = spec.meta
    assert (meta.host, meta.users, meta.spawn_rate, meta.planned_duration_s) == ("http://127.0.0.1:8000", 7, 2.5, 90.0)
    assert (meta.app_version, meta.test_type, meta.workers, meta.environment) == ("1.2", "stress", 3, "ci")
    assert meta.tags == {"a": "b=c", "empty": ""} and meta.user_classes == ("A", "B")
    assert meta.scenario == "my_test:A+B" and spec.locustfile == Path("my_test.py")
    assert (spec.store.url, spec.store.spool_dir) == ("sqlite:///x/bench.db", Path("sp"))
    shape = spec.shape
    assert (shape.stress_steps, shape.slo_p95_ms, shape.slo_error_rate, shape.spike_factor) == (4, 250.0, 0.0, 2.0)
    assert (spec.health_check, spec.health_path, spec.metrics_port) == (False, "/ready", 9999)
    assert spec.monitor == ("pid:42", "process:gunicorn")
    assert (spec.output.json, spec.output.quiet, spec.output.verbose) == (True, True, False)
    assert not (tmp_path / "x").exists(), "parsing writes nothing"


def test_env_vars_are_the_fallback_and_flags_win(parse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"TARGET_HOST": "http://h:1", "USERS": "3", "SPAWN_RATE": "0.5", "RUN_TIME": "2m", "APP_VERSION": "9.9",
           "TEST_TYPE": "soak", "BENCHLAB_DB_URL": "postgresql://u@db/bench", "BENCHLAB_SPOOL_DIR": "/tmp/sp",
           "BENCHLAB_WORKERS": "2", "LOCUSTFILE": "env_test.py", "BENCHLAB_SCENARIO": "checkout"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = parse()
    meta = spec.meta
    assert (meta.host, meta.users, meta.spawn_rate, meta.planned_duration_s) == ("http://h:1", 3, 0.5, 120.0)
    assert (meta.app_version, meta.test_type, meta.workers, meta.scenario) == ("9.9", "soak", 2, "checkout")
    assert (spec.store.url, spec.store.spool_dir, spec.locustfile) == (
        "postgresql://u@db/bench",
        Path("/tmp/sp"),
        Path("env_test.py"),
    )
    flags = parse("--host", "http://other:2", "-u", "5", "--db", "sqlite:///a.db", "--spool-dir", "s2")
    assert (flags.meta.host, flags.meta.users, flags.store.url, flags.store.spool_dir) == (
        "http://other:2",
        5,
        "sqlite:///a.db",
        Path("s2"),
    )


def test_defaults(parse: Any) -> None:
    spec = parse("-f", "x.py", "--host", "https://example.com")
    meta = spec.meta
    assert (meta.users, meta.spawn_rate, meta.planned_duration_s, meta.app_version) == (10, 1.0, 300.0, "dev")
    assert (meta.test_type, meta.workers, meta.tags, meta.environment) == ("load", 0, {}, "local")
    assert spec.store.url == "sqlite:///results/benchlab.db" and spec.store.spool_dir == Path("results/spool")
    assert (spec.health_check, spec.health_path, spec.metrics_port, spec.monitor) == (True, "/health", None, ())


def test_git_commit_from_env_or_the_locustfile_repository(parse: Any, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:  # fmt: skip
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a_test.py").write_text("# locustfile\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "a_test.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert parse("-f", str(repo / "a_test.py"), "--host", "http://h").meta.git_commit == head
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "b_test.py").write_text("# locustfile\n")
    assert parse("-f", str(outside / "b_test.py"), "--host", "http://h").meta.git_commit is None
    monkeypatch.setenv("BENCHLAB_GIT_COMMIT", "abc123")
    assert parse("-f", str(repo / "a_test.py"), "--host", "http://h").meta.git_commit == "abc123"


GOOD = ["-f", "x.py", "--host", "http://127.0.0.1:8000", "-t", "2s", "--db", "sqlite:///never/b.db"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--tag", "=v"], "bad tag '=v': expected key=value"),
        (["--tag", "novalue"], "bad tag 'novalue': expected key=value"),
        (["-u", "0"], "users must be > 0, got '0'"),
        (["-u", "-3"], "users must be > 0, got '-3'"),
        (["-u", "many"], "users must be a number, got 'many'"),
        (["-u", "2.5"], "users must be a number, got '2.5'"),
        (["-r", "0"], "spawn rate must be > 0, got '0'"),
        (["--workers", "-1"], "workers must be >= 0, got '-1'"),
        (["--slo-error-rate", "-0.1"], "SLO error rate must be >= 0, got '-0.1'"),
        (["--metrics-port", "0"], "metrics port must be > 0"),
        (["--host", "127.0.0.1:8000"], "bad host URL '127.0.0.1:8000'"),
        (["--host", "ftp://h"], "bad host URL 'ftp://h': expected http(s)://host[:port]"),
        (["--host", "http://"], "bad host URL 'http://'"),
        (["--host", "http://h:99999"], "bad host URL 'http://h:99999'"),
        (["-f", ""], "no locustfile"),
        (["-t", "soon"], "bad run time 'soon'"),
        (["-t", "0s"], "bad run time '0s': must be > 0"),
        (["--test-type", "chaos"], "invalid choice: 'chaos'"),
        (["--db", "mysql://x@y/z"], "backend 'mysql' is not sqlite or postgresql"),
        (["--db", "::::"], "bad DB URL '::::'"),
        (["--db", "sqlite://"], "SQLite needs a file path"),
        (["--db", "postgresql+asyncpg://u@h/d"], "only the psycopg2 driver is supported"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    extra: list[str], needle: str, parse: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["run", *GOOD, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchlab: error: ") and needle in err[0], err
    assert not (tmp_path / "never").exists() and not (tmp_path / "results").exists()


def test_bad_test_type_from_env_exits_2(parse: Any, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_TYPE", "chaos")
    assert cli.main(["run", *GOOD]) == 2
    assert "bad test type 'chaos' (TEST_TYPE)" in capsys.readouterr().err


def test_postgres_urls_are_accepted(parse: Any) -> None:
    for url in ("postgresql://u@h/d", "postgresql+psycopg2://u@h:5433/d"):
        assert parse(*GOOD, "--db", url).store.url == url


@pytest.mark.parametrize(("text", "needle"), [("soon", "use Locust syntax"), ("0s", "must be > 0")])
def test_demo_bad_run_time_exits_2_before_anything_starts(
    text: str, needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "demo.db"
    assert cli.main(["demo", "--run-time", text, "-q", "--db", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"benchlab: error: bad run time {text!r}: ") and needle in err[0], err
    assert not db.exists()
