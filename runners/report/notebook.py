"""A Jupyter notebook (nbformat v4) whose cells load the runs from the store by DB URL and run id, then plot
latency, throughput, resources and the comparison. Its cells are code, not pictures: re-run them to refresh."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sqlalchemy.engine import make_url

from benchlab.runners.report.data import ReportData
from benchlab.runners.report.markdown import escape

LOAD = """\
%matplotlib inline
import math
from datetime import timezone

import matplotlib.pyplot as plt
import numpy as np

from benchlab.metrics.settings import StoreSettings
from benchlab.metrics.store.database import Store
from benchlab.metrics.store.query import endpoint_stats, runs_by_id
from benchlab.metrics.store.window import queue_rows, resource_rows, window_rows
from benchlab.runners.analysis.series import BUCKETS_PER_E, MIN_MS, hist_percentiles, latency_series

store = Store(settings=StoreSettings(url=DB_URL)).open()
runs = runs_by_id(store, RUN_IDS + BASELINE_IDS)
for run in runs:
    print(f"run {run.id}: {run.app_version} {run.scenario} {run.test_type} {run.status} from {run.started_at}")
print(f"{'method':7} {'endpoint':40} {'requests':>9} {'fails':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
for row in endpoint_stats(store, RUN_IDS):
    name = (row.name or "Aggregated")[:40]
    times = f"{row.p50_ms:>8.1f} {row.p95_ms:>8.1f} {row.p99_ms:>8.1f}"
    print(f"{row.method:7} {name:40} {row.requests:>9} {row.failures:>6} {times}")
"""

SERIES = """\
def epoch(ts):
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()


def window_of(run):
    seconds = ((epoch(run.ended_at) if run.ended_at else 0) - epoch(run.started_at)) or 60
    return float(max(1, math.ceil(seconds / 600)))


def timeline(run):
    \"\"\"Seconds since start, the all-endpoints series, and p50/p95/p99 per window, aggregated in SQL.\"\"\"
    w = window_of(run)
    rows = window_rows(store, [run.id], window_s=w, buckets_per_e=BUCKETS_PER_E, min_ms=MIN_MS)
    if not rows:
        return None
    series = latency_series(rows, w)[run.id][("", "")]
    first = min(r[3] for r in rows)
    t = (first + np.arange(series.windows)) * w - epoch(run.started_at)
    return t, series, hist_percentiles(series.hist, series.buckets, (0.5, 0.95, 0.99))


timelines = {run.id: timeline(run) for run in runs}
"""

LATENCY = """\
fig, ax = plt.subplots(figsize=(10, 4))
for run in runs:
    if timelines[run.id] is None:
        continue
    t, series, pct = timelines[run.id]
    for j, q in enumerate(("p50", "p95", "p99")):
        ax.plot(t, pct[:, j], label=f"{q} {run.app_version} #{run.id}", ls="-" if run.id in RUN_IDS else "--")
ax.set_yscale("log")
ax.set_xlabel("seconds since the run started")
ax.set_ylabel("response time (ms)")
ax.legend(fontsize=7)
plt.show()
"""

THROUGHPUT = """\
fig, ax = plt.subplots(figsize=(10, 3))
for run in runs:
    if timelines[run.id] is None:
        continue
    t, series, _ = timelines[run.id]
    style = "-" if run.id in RUN_IDS else "--"
    ax.plot(t, series.counts / series.window_s, ls=style, label=f"requests/s {run.app_version} #{run.id}")
    ax.plot(t, series.failures / series.window_s, ls=style, label=f"failures/s {run.app_version} #{run.id}")
ax.set_xlabel("seconds since the run started")
ax.set_ylabel("per second")
ax.legend(fontsize=7)
plt.show()
"""

RESOURCES = """\
readings = []
for run in runs:
    w = window_of(run)
    for metric in ("cpu_percent", "rss_bytes"):
        readings += [(metric, run, r) for r in resource_rows(store, [run.id], window_s=w, column=metric)]
    readings += [("queue_length", run, r) for r in queue_rows(store, [run.id], window_s=w)]
if not readings:
    print("no sidecar readings for these runs")
else:
    metrics = sorted({m for m, _, _ in readings})
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 2.5 * len(metrics)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        keys = sorted({(run.id, row[1]) for m, run, row in readings if m == metric})
        for run_id, label in keys:
            run = next(r for r in runs if r.id == run_id)
            points = [(row[2] * window_of(run) - epoch(run.started_at), row[3]) for m, r, row in readings
                      if m == metric and r.id == run_id and row[1] == label]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=f"{label} #{run_id}")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    plt.show()
"""

COMPARE = """\
if BASELINE_IDS:
    from benchlab.runners.judge import judge_runs, select
    from benchlab.runners.report.verdict import table
    from benchlab.runners.settings import JudgeSettings

    judge = JudgeSettings(candidate_runs=tuple(RUN_IDS), baseline_runs=tuple(BASELINE_IDS), save=False, replicates=500)
    verdict = judge_runs(store, judge, select(store, judge))
    print(table(verdict.comparison, verdict.baseline_label, verdict.candidate_label, gating_only=True))
    gating = [r for r in verdict.comparison.results if r.gating and r.change_kind == "relative"]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(gating) + 1.2))
    for i, r in enumerate(gating):
        colour = {"regression": "red", "improvement": "green", "unchanged": "grey"}.get(r.verdict, "orange")
        ax.errorbar([r.change], [i], xerr=[[r.change - r.ci_low], [r.ci_high - r.change]], fmt="o", color=colour)
    ax.set_yticks(range(len(gating)), [f"{r.metric} {r.method} {r.endpoint or r.subject or 'all'}" for r in gating])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("change (log ratio) with its 95% interval")
    plt.show()
else:
    print("no baseline: nothing to compare")
"""


def safe_url(url: str) -> str:
    """The DB URL without its password (psycopg2 reads PGPASSWORD or ~/.pgpass), a SQLite path made absolute."""
    parsed = make_url(url).set(password=None)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=False)


def render(data: ReportData, db_url: str) -> str:
    """The notebook as JSON text."""
    cand = [r.run_id for r in data.candidate]
    base = [r.run_id for r in data.baseline]
    params = (
        "# The store's URL without a password: Postgres reads it from PGPASSWORD or ~/.pgpass.\n"
        f"DB_URL = {json.dumps(safe_url(db_url))}\n"
        f"RUN_IDS = {json.dumps(cand)}\n"
        f"BASELINE_IDS = {json.dumps(base)}\n"
    )
    intro = (
        f"# benchlab: {escape(data.title)}\n\n"
        "Loads the runs from the metrics store (windows and histograms aggregated in SQL) and plots latency, "
        "throughput, resources and the comparison. Change `DB_URL` or the run ids below to look at other runs."
    )
    nb = new_notebook(
        cells=[
            new_markdown_cell(intro),
            new_code_cell(params),
            new_code_cell(LOAD),
            new_markdown_cell("## Latency over time"),
            new_code_cell(SERIES + "\n" + LATENCY),
            new_markdown_cell("## Throughput and failures"),
            new_code_cell(THROUGHPUT),
            new_markdown_cell("## Resources and queues (when the sidecar ran)"),
            new_code_cell(RESOURCES),
            new_markdown_cell("## Comparison"),
            new_code_cell(COMPARE),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.validate(nb)
    return str(nbformat.writes(nb))
