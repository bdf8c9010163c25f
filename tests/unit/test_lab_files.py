"""The image and the dashboards agree with the repository: the Dockerfile against .dockerignore and the CLI's
file lookups, the Grafana dashboards against the provisioned data sources."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compose_file import REPO, load_yaml

DASHBOARDS = REPO / "dashboards"


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
    assert pg["jsonData"]["database"] == "benchlab" and pg["user"] == "${GRAFANA_DB_USER}"


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
