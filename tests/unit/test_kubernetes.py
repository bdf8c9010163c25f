"""deploy/kubernetes/: every manifest validates offline against the Kubernetes schemas (kubernetes-validate,
strict), and the pieces are wired to each other and to the code: the workers find the master's Service and
port, the Secret and ConfigMaps they read exist with those keys, the locustfile ConfigMap is load_tests/ as
it is, the env names are ones benchlab reads, and every container runs unprivileged with requests and limits.

`python tests/unit/test_kubernetes.py` rewrites deploy/kubernetes/locustfile.yaml from load_tests/.
"""

from __future__ import annotations

import ast
import copy
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
LOAD_TESTS = REPO / "load_tests"
LOCUSTFILE_MAP = KUBE / "locustfile.yaml"
LOCUSTFILE = "locustfile.py"
CODE_DIRS = (REPO / "runners", REPO / "metrics", REPO / "benchlab")
FOREIGN_ENV = {"MPLCONFIGDIR"}
"""Env names read by libraries, not by benchlab."""


# ------------------------------------------------------------------------------------------ the ConfigMap


def locustfile_sources() -> dict[str, str]:
    """locustfile.py and the load_tests/ modules it imports (transitively): file name -> text."""
    sources: dict[str, str] = {}
    pending = [LOCUSTFILE]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        sources[name] = (LOAD_TESTS / name).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(sources[name])):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            pending += [f"{m}.py" for m in modules if (LOAD_TESTS / f"{m}.py").is_file()]
    return dict(sorted(sources.items()))


def configmap_text() -> str:
    """deploy/kubernetes/locustfile.yaml: the ConfigMap of locustfile_sources(), as literal blocks."""
    lines = [
        "# The Locust file and the load_tests/ modules it imports, mounted at /locust (LOCUSTFILE in settings.yaml).",
        "# Generated from load_tests/ by `python tests/unit/test_kubernetes.py`; for your own file:",
        "#   kubectl create configmap benchlab-locustfile --from-file=locustfile.py=PATH [--from-file=...]",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: benchlab-locustfile",
        "  labels:",
        "    app.kubernetes.io/name: benchlab",
        "data:",
    ]
    for name, text in locustfile_sources().items():
        lines.append(f"  {name}: |")
        lines += [f"    {line}" if line else "" for line in text.splitlines()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ manifests


@cache
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return tuple(docs)


def _one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for _, d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return copy.deepcopy(doc)


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]) for _, d in _documents() if d["kind"] in ("Job", "Deployment")
    ]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _resolved_args(container: dict[str, Any]) -> list[str]:
    """The container's args with $(NAME) replaced as the kubelet does, from its literal env values."""
    env = {k: v for k, v in _env(container).items() if isinstance(v, str)}
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _kube_version() -> str:
    import kubernetes_validate

    return str(kubernetes_validate.latest_version())


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    version = _kube_version()
    kinds = [d["kind"] for _, d in _documents()]
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "Deployment", "Job", "Secret", "Service"]
    for _, doc in _documents():
        kubernetes_validate.validate(doc, version, strict=True)
    # The validator is strict: a misspelt field fails, a wrong type fails.
    broken = _one("Deployment", "benchlab-worker")
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
    broken = _one("Service", "benchlab-master")
    broken["spec"]["ports"][0]["port"] = "5557"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == {m for m in manifests if not m.endswith(".template.yaml")}
    assert "secret.template.yaml" in manifests
    images = {c["image"] for _, pod in _pod_specs() for c in pod["spec"]["containers"]}
    [image] = images
    name, tag = image.rsplit(":", 1)
    assert kustomization["images"] == [{"name": name, "newTag": tag}]
    assert name.startswith("registry.example.com/"), "the image is a documented placeholder"


def test_the_workers_reach_the_master_through_its_service() -> None:
    service = _one("Service", "benchlab-master")
    job = _one("Job", "benchlab-master")["spec"]
    deployment = _one("Deployment", "benchlab-worker")["spec"]
    [master] = job["template"]["spec"]["containers"]
    [worker] = deployment["template"]["spec"]["containers"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in master["ports"]}

    args = _resolved_args(worker)
    assert args[0] == "worker" and _flag(args, "--master-host") == service["metadata"]["name"]
    port = int(_flag(args, "--master-port"))
    assert port == ports["locust"]["port"] == container_ports[ports["locust"]["targetPort"]]
    master_args = _resolved_args(master)
    assert master_args[:2] == ["run", "--master"] and int(_flag(master_args, "--master-port")) == port
    assert _flag(master_args, "--master-bind") == "0.0.0.0"
    assert int(_flag(master_args, "--metrics-port")) == container_ports[ports["metrics"]["targetPort"]]
    assert _flag(master_args, "--metrics-bind") == "0.0.0.0"
    assert deployment["replicas"] == int(_flag(master_args, "--expect-workers")) > 0

    selector = service["spec"]["selector"]
    master_labels = job["template"]["metadata"]["labels"]
    worker_labels = deployment["template"]["metadata"]["labels"]
    assert selector.items() <= master_labels.items() and not selector.items() <= worker_labels.items()
    assert deployment["selector"]["matchLabels"].items() <= worker_labels.items()
    assert job["template"]["spec"]["restartPolicy"] == "Never" and job["backoffLimit"] == 0


def test_the_secret_and_the_configmaps_they_read_exist_with_those_keys() -> None:
    secret = _one("Secret", "benchlab-db")
    url = secret["stringData"]["BENCHLAB_DB_URL"]
    assert url.startswith("postgresql://") and "<password>" in url, "a template, never a usable password"
    configmaps = {d["metadata"]["name"]: d["data"] for _, d in _documents() if d["kind"] == "ConfigMap"}
    settings = configmaps["benchlab-settings"]
    readers = {}
    for name, pod in _pod_specs():
        [container] = pod["spec"]["containers"]
        readers[name] = [(e["name"], e["valueFrom"]["secretKeyRef"]) for e in container["env"] if "valueFrom" in e]
        assert [r["configMapRef"]["name"] for r in container["envFrom"]] == ["benchlab-settings"], name
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        locustfile = Path(settings["LOCUSTFILE"])
        assert locustfile.name in configmaps[mounts[str(locustfile.parent)]["configMap"]["name"]], name
    # The master reads the store's URL from the Secret; its workers get it from the master, never the Secret.
    ref = {"name": secret["metadata"]["name"], "key": "BENCHLAB_DB_URL"}
    assert readers == {"benchlab-master": [("BENCHLAB_DB_URL", ref)], "benchlab-worker": []}


def _code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for d in CODE_DIRS for p in d.rglob("*.py"))


def test_every_env_name_and_command_is_one_benchlab_reads() -> None:
    from benchlab.runners.cli import build_parser

    code = _code_text()
    names = set(_one("ConfigMap", "benchlab-settings")["data"])
    for _, pod in _pod_specs():
        [container] = pod["spec"]["containers"]
        names |= set(_env(container))
    unread = sorted(n for n in names - FOREIGN_ENV if f'"{n}"' not in code)
    assert not unread, f"env names no benchlab module reads: {unread}"
    parser = build_parser()
    for _, pod in _pod_specs():
        [container] = pod["spec"]["containers"]
        args = _resolved_args(container)
        assert parser.parse_args(args).command == args[0]


def test_containers_run_unprivileged_with_requests_and_limits() -> None:
    uid = int(re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text(encoding="utf-8")).group(1))  # type: ignore[union-attr]
    for name, pod in _pod_specs():
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False, name
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == uid and ctx["runAsGroup"] == uid, name
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        [container] = spec["containers"]
        sec = container["securityContext"]
        assert sec["allowPrivilegeEscalation"] is False and sec["capabilities"]["drop"] == ["ALL"], name
        assert sec["readOnlyRootFilesystem"] is True, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        writable = {m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]}
        assert {"/tmp", "/app/results"} <= writable, f"{name}: benchlab writes its spool and reports there"
        resources = container["resources"]
        for key in ("cpu", "memory"):
            request, limit = _quantity(resources["requests"][key]), _quantity(resources["limits"][key])
            assert 0 < request <= limit, f"{name}: {key}"


_SUFFIX = {"m": 1e-3, "": 1.0, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(text: str | int) -> float:
    number, suffix = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|)", str(text)).groups()  # type: ignore[union-attr]
    return float(number) * _SUFFIX[suffix]


def test_the_locustfile_configmap_is_load_tests_as_it_is() -> None:
    data = _one("ConfigMap", "benchlab-locustfile")["data"]
    sources = locustfile_sources()
    assert {LOCUSTFILE, "checks.py"} <= set(sources), "locustfile.py imports checks"
    assert data == sources, "stale: run `python tests/unit/test_kubernetes.py` to regenerate it"
    assert LOCUSTFILE_MAP.read_text(encoding="utf-8") == configmap_text()


if __name__ == "__main__":
    LOCUSTFILE_MAP.write_text(configmap_text(), encoding="utf-8")
    print(f"wrote {LOCUSTFILE_MAP.relative_to(REPO)}", file=sys.stderr)
