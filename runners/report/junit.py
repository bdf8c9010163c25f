"""JUnit XML for CI systems: one test case per SLO criterion and per gating regression check.

A failure carries the numbers (baseline, candidate, change, interval, threshold). Failures are what the gate
fails on without `--fail-on-inconclusive`: regressions of gating metrics and SLO breaches; an inconclusive
metric or an SLO value that could not be measured is a skipped case.
"""

from __future__ import annotations

import math

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from benchlab.runners.analysis.compare import MetricResult
from benchlab.runners.analysis.gate import describe
from benchlab.runners.analysis.verdict import INCONCLUSIVE, REGRESSION
from benchlab.runners.report.data import ReportData


def _where(r: MetricResult) -> str:
    return r.subject or (f"{r.method} {r.endpoint}".strip() if r.endpoint else "all endpoints")


def _numbers(r: MetricResult) -> str:
    def f(v: float) -> str:
        return "n/a" if not math.isfinite(v) else f"{v:.6g}"

    return (
        f"baseline={f(r.baseline)} candidate={f(r.candidate)} change={f(r.change)} ({r.change_kind})"
        f" interval=[{f(r.ci_low)}, {f(r.ci_high)}] threshold={f(r.threshold)} q_value={f(r.q_value)}"
    )


def _slo_suite(data: ReportData) -> TestSuite:
    scenario = data.candidate[0].scenario
    suite = TestSuite(f"benchlab SLO: {scenario} {data.candidate_label}")
    for c in data.checks:
        where = f"{c.method} {c.endpoint}".strip() if c.endpoint else "all endpoints"
        case = TestCase(f"{c.operation}: {c.criterion.text} on {where}", classname=f"slo.{scenario}")
        value = "n/a" if c.value is None else f"{c.value:.6g}"
        if c.passed is False:
            failure = Failure(f"SLO breach: {c.criterion.text} on {where}: measured {value}", "slo_breach")
            failure.text = (
                f"operation={c.operation} criterion={c.criterion.text} measured={value} limit={c.criterion.limit:g}"
            )
            case.result = [failure]
        elif c.passed is None:
            case.result = [Skipped(f"not measured: {c.criterion.text} on {where}")]
        else:
            case.system_out = f"measured {value}"
        suite.add_testcase(case)
    return suite


def _regression_suite(data: ReportData) -> TestSuite | None:
    if data.comparison is None:
        return None
    scenario = data.candidate[0].scenario
    suite = TestSuite(f"benchlab regression: {scenario} {data.candidate_label} vs {data.baseline_label}")
    for r in data.comparison.results:
        if not r.gating:
            continue
        case = TestCase(f"{r.metric} of {_where(r)}", classname=f"regression.{scenario}")
        if r.verdict == REGRESSION:
            failure = Failure(describe(r), "regression")
            failure.text = _numbers(r)
            case.result = [failure]
        elif r.verdict == INCONCLUSIVE:
            case.result = [Skipped(f"inconclusive: {_numbers(r)}" + (f"; {r.note}" if r.note else ""))]
        else:
            case.system_out = f"{r.verdict}: {_numbers(r)}"
        suite.add_testcase(case)
    return suite


def render(data: ReportData) -> str:
    """The XML document (UTF-8 text)."""
    xml = JUnitXml(name=f"benchlab: {data.title}")
    for suite in (_slo_suite(data), _regression_suite(data)):
        if suite is not None:
            suite.update_statistics()
            xml.add_testsuite(suite)
    xml.update_statistics()
    body: bytes = xml.tostring()
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body.decode("utf-8")
