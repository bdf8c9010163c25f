"""The CI job of `benchlab ci`, from its parsed `CiSettings` to one exit code.

Runs the baseline version first where it has no completed run, then the candidate; judges each run against the
baseline, reruns both versions interleaved before a regression is believed (`--confirm N`), writes the HTML,
Markdown and JUnit reports and the job summary, and posts significant findings to the webhook."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchlab.runners.errors import EXIT_OK, EXIT_REGRESSION, BadInput, RunFailed, gate_exit
from benchlab.runners.settings import JudgeSettings, RunSpec

if TYPE_CHECKING:  # these modules bring Locust and the store: imported when the job runs
    from benchlab.runners.analysis.gate import GateResult
    from benchlab.runners.ci import CiSettings
    from benchlab.runners.judge import Verdict
    from benchlab.runners.run import RunResult

SUITE = ("baseline", "load", "stress", "spike", "soak")
REPORT_FORMATS = ("html", "md", "junit")


@dataclass(frozen=True, kw_only=True)
class Judged:
    """One test type's final verdict, the runs it was made on, and its gate."""

    test_type: str
    judge: JudgeSettings
    verdict: Verdict
    gate: GateResult
    confirmation: str | None = None


def perform(cfg: CiSettings) -> int:
    """Plan, run, judge, confirm, report, summarise, notify; one exit code."""
    from benchlab.runners.analyses import after_run

    spec = cfg.spec
    codes: list[int] = []
    for test_type in _missing_baselines(cfg):
        codes += [r.exit_code for r in _run(_variant(cfg, test_type, baseline=True, tag="baseline"), "baseline first")]
    results = _run(spec, "candidate") if not any(codes) else []
    codes += [r.exit_code for r in results]
    done = [r for r in results if r.totals.status == "completed"]
    judged = [_judge(cfg, r.test_type, r.totals.run_id, codes) for r in done]
    for item in judged:
        _print_verdict(item)
    after_run(spec, [(r.test_type, r.totals.run_id) for r in done])
    failed_run = next((c for c in codes if c != EXIT_OK), None)
    assert spec.judge is not None
    gate_failed = any(j.gate.failed for j in judged)
    code = failed_run if failed_run is not None else gate_exit(gate_failed, enabled=spec.judge.fail_on_regression)
    reports, markdowns = _reports(cfg, judged)
    summary = _summary(cfg, judged, markdowns, code)
    notified = _notify(cfg, judged, code)
    if spec.output.json:
        print(json.dumps(_as_json(judged, reports, summary, notified, code)))
    sys.stdout.flush()
    return code


def _missing_baselines(cfg: CiSettings) -> list[str]:
    """Test types whose baseline version has no completed run of the scenario; BadInput without a baseline host."""
    from benchlab.metrics.store.database import Store, StoreUnavailable
    from benchlab.metrics.store.query import latest_runs, versions

    spec, judge = cfg.spec, cfg.spec.judge
    if judge is None or judge.baseline_version is None:
        return []
    try:
        store = Store(settings=spec.store).open()
    except StoreUnavailable as exc:
        raise RunFailed(str(exc)) from None
    scenario, version = spec.meta.scenario, judge.baseline_version
    types = SUITE if spec.shape.test_type == "complete" else (spec.shape.test_type,)
    try:
        missing = [t for t in types if not latest_runs(store, version=version, scenario=scenario, test_type=t)]
        known = versions(store, scenario=scenario)
    finally:
        store.close()
    if missing and cfg.baseline_host is None:
        listed = ", ".join(known) if known else "none"
        raise BadInput(
            f"no completed {'/'.join(missing)} run of baseline version {version!r} for scenario "
            f"{scenario}; versions with completed runs: {listed} (set BASELINE_HOST to run it first)"
        )
    return missing


def _variant(cfg: CiSettings, test_type: str, *, baseline: bool, tag: str) -> RunSpec:
    """One run of one test type, of the baseline version on its host or of the candidate, tagged `ci=<tag>`."""
    spec = cfg.spec
    meta = replace(spec.meta, test_type=test_type, tags=spec.meta.tags | {"ci": tag})
    if baseline:
        assert spec.judge is not None and spec.judge.baseline_version is not None and cfg.baseline_host
        meta = replace(meta, app_version=spec.judge.baseline_version, host=cfg.baseline_host)
    return replace(spec, meta=meta, shape=replace(spec.shape, test_type=test_type))


def _run(spec: RunSpec, role: str) -> list[RunResult]:
    """`execute` with the console table of each run, as `benchlab run` prints it."""
    from benchlab.runners.report.table import table
    from benchlab.runners.run import execute

    what = f"{spec.shape.test_type} test of version {spec.meta.app_version} against {spec.meta.host}"
    print(f"benchlab ci: {role}: {what}", flush=True)
    results = execute(spec)
    for result in results:
        print(table(result.rows, result.totals), flush=True)
        if result.error:
            print(f"benchlab: {result.error}", file=sys.stderr)
    return results


def _verdict(spec: RunSpec, judge: JudgeSettings) -> tuple[Verdict, GateResult]:
    from benchlab.metrics.store.database import Store
    from benchlab.runners.analysis.gate import evaluate
    from benchlab.runners.judge import judge_runs, select

    store = Store(settings=spec.store).open()
    try:
        verdict = judge_runs(store, judge, select(store, judge))
    finally:
        store.close()
    return verdict, evaluate(verdict.comparison, verdict.checks, fail_on_inconclusive=judge.fail_on_inconclusive)


def _pinned(judge: JudgeSettings, verdict: Verdict) -> JudgeSettings:
    """The judge settings naming the verdict's runs by id (what the reports and a re-judging use)."""
    cand, base = (tuple(r.id for r in runs) for runs in (verdict.selection.candidate, verdict.selection.baseline))
    return replace(judge, candidate_runs=cand, baseline_runs=base, baseline_version=None, scenario=None, test_type=None)


def _regressed(verdict: Verdict) -> list[str]:
    from benchlab.runners.analysis.gate import describe

    comparison = verdict.comparison
    return [describe(r) for r in comparison.results if r.gating and r.verdict == "regression"] if comparison else []


def _judge(cfg: CiSettings, test_type: str, run_id: int, codes: list[int]) -> Judged:
    """The run against its baseline; a regression is confirmed on pooled runs first when --confirm asks."""
    assert cfg.spec.judge is not None
    judge = replace(cfg.spec.judge, candidate_runs=(run_id,), scenario=None, test_type=None)
    verdict, gate = _verdict(cfg.spec, judge)
    judged = Judged(test_type=test_type, judge=_pinned(judge, verdict), verdict=verdict, gate=gate)
    if cfg.confirm and verdict.selection.baseline and _regressed(verdict):
        judged = _confirm(cfg, judged, codes)
    return judged


def _confirm(cfg: CiSettings, judged: Judged, codes: list[int]) -> Judged:
    """N more runs of the baseline and the candidate, interleaved (B, C, B, C...), judged pooled with the first."""
    base, cand = judged.verdict.baseline_label, judged.verdict.candidate_label
    t, n = judged.test_type, cfg.confirm
    print(f"benchlab ci: {t}: regression of {cand} against {base}; confirming on {n} more run(s) of each, interleaved")
    base_ids, cand_ids = list(judged.judge.baseline_runs), list(judged.judge.candidate_runs)
    for i in range(n):
        for ids, is_base in ((base_ids, True), (cand_ids, False)):
            role = f"confirmation {i + 1} of {n}"
            (result,) = _run(_variant(cfg, t, baseline=is_base, tag=f"confirm-{i + 1}"), role)
            codes.append(result.exit_code)
            if result.totals.status != "completed":
                note = f"confirmation ({t}): not concluded, run {result.totals.run_id} did not complete"
                print(f"benchlab ci: {note}", flush=True)
                return replace(judged, confirmation=note)
            ids.append(result.totals.run_id)
    pooled = replace(judged.judge, baseline_runs=tuple(base_ids), candidate_runs=tuple(cand_ids))
    verdict, gate = _verdict(cfg.spec, pooled)
    runs = f"{base} runs {_ids(base_ids)} against {cand} runs {_ids(cand_ids)}"
    regressed = _regressed(verdict)
    if regressed:
        note = f"confirmation ({t}): the regression holds on the pooled runs ({runs}): {len(regressed)} metric(s)"
    else:
        overall = verdict.comparison.overall if verdict.comparison else "n/a"
        note = f"confirmation ({t}): the regression did not hold on the pooled runs ({runs}); overall {overall}"
    print(f"benchlab ci: {note}", flush=True)
    return Judged(test_type=t, judge=pooled, verdict=verdict, gate=gate, confirmation=note)


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)


def _print_verdict(judged: Judged) -> None:
    """The verdict table and SLO lines on stdout, the gate's failures on stderr (as `benchlab run` prints them)."""
    from benchlab.runners.report import verdict as report

    v = judged.verdict
    if v.comparison is not None:
        print(f"[{judged.test_type}] " + report.table(v.comparison, v.baseline_label, v.candidate_label))
    for line in report.slo_lines(v.checks):
        print(f"[{judged.test_type}] {line}")
    for line in judged.gate.failures:
        print(f"benchlab: {judged.test_type}: {line}", file=sys.stderr)


def _reports(cfg: CiSettings, judged: Sequence[Judged]) -> tuple[list[Path], list[str]]:
    """HTML, Markdown and JUnit reports of each test type's verdict; the Markdown texts for the summary."""
    from benchlab.metrics.store.database import Store
    from benchlab.runners.report import markdown, output
    from benchlab.runners.reporting import build

    paths: list[Path] = []
    texts: list[str] = []
    store = Store(settings=cfg.spec.store).open()
    try:
        for item in judged:
            try:
                data = build(store, replace(item.judge, save=False))
                texts.append(markdown.render(data))
                if cfg.reports:
                    paths += output.write(data, REPORT_FORMATS, cfg.report_dir, db_url=store.settings.url)
            except Exception as exc:  # a report is a by-product: it never changes the verdict's exit code
                print(f"benchlab: {item.test_type} report not written: {exc}", file=sys.stderr)
    finally:
        store.close()
    for path in paths:
        print(f"report: {path}")
    return paths, texts


def summary_text(cfg: CiSettings, judged: Sequence[Judged], markdowns: Sequence[str], code: int) -> str:
    """The job summary: the outcome, one line per test type, then each test type's Markdown report."""
    from benchlab.runners.report.markdown import escape

    spec = cfg.spec
    base = spec.judge.baseline_version if spec.judge else None
    title = f"{spec.meta.app_version} against {base}" if base else spec.meta.app_version
    lines = [f"# benchlab ci: {escape(title)}", ""]
    if code != EXIT_OK:
        status = "regression or SLO breach" if code == EXIT_REGRESSION else "a run did not complete"
        status = f"**failed**: {status} (exit {code})"
    elif any(j.gate.failed for j in judged):
        status = "passed: regression or SLO breach found, FAIL_ON_REGRESSION is off (exit 0)"
    else:
        status = "passed (exit 0)"
    lines += [f"_scenario {escape(spec.meta.scenario)}_: {status}", ""]
    for j in judged:
        v = j.verdict
        overall = v.comparison.overall if v.comparison else "no baseline"
        runs = f"candidate runs {_ids(j.judge.candidate_runs)}"
        runs += f", baseline runs {_ids(j.judge.baseline_runs)}" if j.judge.baseline_runs else ""
        lines.append(f"- **{escape(j.test_type)}**: {overall}; {len(j.gate.failures)} gate failure(s); {runs}")
        lines += [f"  - {escape(f)}" for f in j.gate.failures]
        if j.confirmation:
            lines.append(f"  - {escape(j.confirmation)}")
    if not judged:
        lines.append("- no completed run to judge")
    return "\n".join([*lines, "", *markdowns]).rstrip() + "\n"


def _summary(cfg: CiSettings, judged: Sequence[Judged], markdowns: Sequence[str], code: int) -> Path:
    """summary.md in the report dir (always), appended to $GITHUB_STEP_SUMMARY when set."""
    from benchlab.runners.report import summary_ci

    text = summary_text(cfg, judged, markdowns, code)
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.report_dir / "summary.md"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    summary_ci.append(text)
    print(f"summary: {path}")
    return path


def _notify(cfg: CiSettings, judged: Sequence[Judged], code: int) -> bool | None:
    """Post the significant findings: True when posted, False when the post failed, None when nothing was sent."""
    from benchlab.runners import notify

    if not cfg.notify_url:
        return None
    scenario, base = cfg.spec.meta.scenario, cfg.spec.judge.baseline_version if cfg.spec.judge else None
    outcomes = [
        notify.Outcome(
            test_type=j.test_type, scenario=scenario, comparison=j.verdict.comparison, checks=tuple(j.verdict.checks),
            confirmation=j.confirmation,
        )
        for j in judged
    ]  # fmt: skip
    payload = notify.build(
        outcomes, candidate=cfg.spec.meta.app_version, baseline=base or "", exit_code=code, link=notify.run_link()
    )
    return notify.send(cfg.notify_url, payload)


def _as_json(
    judged: Sequence[Judged], reports: Sequence[Path], summary: Path, notified: bool | None, code: int
) -> dict[str, Any]:
    """The `--json` object, printed last."""
    return {
        "exit_code": code,
        "test_types": [
            {
                "test_type": j.test_type,
                "candidate_runs": list(j.judge.candidate_runs),
                "baseline_runs": list(j.judge.baseline_runs),
                "overall": j.verdict.comparison.overall if j.verdict.comparison else None,
                "comparison_id": j.verdict.comparison_id,
                "gate_failures": list(j.gate.failures),
                "confirmation": j.confirmation,
            }
            for j in judged
        ],
        "reports": [str(p) for p in reports],
        "summary": str(summary),
        "notified": notified,
    }
