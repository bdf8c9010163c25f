"""Charts as inline SVG text, drawn by matplotlib's Agg backend from aggregated windows (never from raw samples).

Text stays text in the SVG (`svg.fonttype: none`), so pages stay small and searchable. Labels that come from
users' data (versions, services, queues) are passed through `_label`, which keeps matplotlib's mathtext off.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchlab.runners.report.data import Capacity, Distribution, HistoryPoint, Section, Timeline, ValueTrack

STYLE: Any = {
    "svg.fonttype": "none",
    "svg.hashsalt": "benchlab",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 72,
}
CANDIDATE, BASELINE = "#1f5fa8", "#9a9a9a"
STAGE_COLOURS = {"slo_break": "#c0392b", "spike_start": "#d35400", "spike_end": "#27ae60"}
METRIC_TITLES = {
    "cpu_percent": "CPU (%)",
    "rss_bytes": "Memory RSS (MiB)",
    "queue_length": "Queue length",
    "backlog_age_s": "Backlog age (s)",
}


NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
"""No RDF block: smaller, deterministic SVG without namespace URLs."""


def _label(text: str) -> str:
    """User text as a literal label: no mathtext, no leading underscore (which hides a legend entry)."""
    return text.replace("$", r"\$").lstrip("_") or "-"


def _svg(fig: Figure) -> str:
    """The figure as an <svg> element (no XML prolog), and the figure closed."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "benchlab"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata=NO_METADATA)
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _finite(values: Sequence[float]) -> list[float]:
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def timeline_svg(timelines: Sequence[Timeline]) -> str:
    """Three panels on one time axis: p50/p95/p99, requests and failures per second, users with stages marked."""
    with matplotlib.rc_context(STYLE):
        fig, (lat, thr, usr) = plt.subplots(3, 1, sharex=True, figsize=(10, 7.5), height_ratios=(3, 2, 1.4))
        for i, tl in enumerate(timelines):
            colour, style = (CANDIDATE, "-") if i == 0 else (BASELINE, "--")
            name = _label(f"{tl.version} (run {tl.run_id})")
            if i == 0:
                lat.plot(tl.t, _finite(tl.p50), color="#5fa8d3", lw=1, label=f"p50 {name}")
                lat.plot(tl.t, _finite(tl.p95), color=colour, lw=1.4, label=f"p95 {name}")
                lat.plot(tl.t, _finite(tl.p99), color="#7b2d8b", lw=1, label=f"p99 {name}")
            else:
                lat.plot(tl.t, _finite(tl.p95), color=colour, ls=style, lw=1.2, label=f"p95 {name}")
            thr.plot(tl.t, tl.rps, color=colour, ls=style, lw=1.2, label=f"requests/s {name}")
            thr.plot(tl.t, tl.fails, color="#c0392b", ls=style, lw=1, label=f"failures/s {name}")
            _users(usr, tl, colour, style, name)
        lat.set_ylabel("response time (ms)")
        lat.set_yscale("log")
        thr.set_ylabel("per second")
        usr.set_ylabel("users")
        usr.set_xlabel("seconds since the run started")
        if timelines:
            _stages(fig, (lat, thr, usr), timelines[0])
        for ax in (lat, thr, usr):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", fontsize=7, ncol=3, framealpha=0.7)
        return _svg(fig)


def _users(ax: Axes, tl: Timeline, colour: str, style: str, name: str) -> None:
    points = [(m.t, m.users) for m in tl.users if m.users is not None]
    if not points:
        return
    end = tl.t[-1] + tl.window_s if tl.t else points[-1][0]
    xs = [p[0] for p in points] + [max(end, points[-1][0])]
    ys = [p[1] for p in points] + [points[-1][1]]
    ax.step(xs, ys, where="post", color=colour, ls=style, lw=1.2, label=f"users {name}")


def _stages(fig: Figure, axes: Sequence[Axes], tl: Timeline) -> None:
    for mark in tl.stages:
        colour = STAGE_COLOURS.get(mark.kind, "#888888")
        for ax in axes:
            ax.axvline(mark.t, color=colour, ls=":", lw=1)
        axes[-1].annotate(
            _label(mark.kind.replace("_", " ")),
            (mark.t, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=6,
            va="top",
            ha="right",
            color=colour,
        )


def distribution_svg(distributions: Sequence[Distribution]) -> str:
    """Cumulative distribution of response times of each side, overlaid on a log time axis."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for i, d in enumerate(distributions):
            total = sum(d.counts)
            if not total:
                continue
            running, ys = 0.0, []
            for c in d.counts:
                running += c
                ys.append(running / total)
            colour, style = (CANDIDATE, "-") if i == 0 else (BASELINE, "--")
            ax.step(d.lower_ms, ys, where="post", color=colour, ls=style, lw=1.4, label=_label(d.version))
        for q in (0.5, 0.95, 0.99):
            ax.axhline(q, color="#888888", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("response time (ms)")
        ax.set_ylabel("share of requests at or below")
        ax.legend(loc="lower right")
        return _svg(fig)


def resources_svg(tracks: Sequence[ValueTrack]) -> str:
    """One panel per metric (CPU, memory, queue length, backlog age), one line per service or queue and run."""
    metrics = [m for m in METRIC_TITLES if any(t.metric == m for t in tracks)]
    with matplotlib.rc_context(STYLE):
        fig, axes = plt.subplots(len(metrics), 1, sharex=True, figsize=(10, 2.2 * len(metrics) + 0.4), squeeze=False)
        for ax, metric in zip(axes[:, 0], metrics, strict=True):
            for track in (t for t in tracks if t.metric == metric):
                scale = 1 / 2**20 if metric == "rss_bytes" else 1.0
                base = track.version != tracks[0].version
                ax.plot(
                    track.t,
                    [v * scale for v in track.values],
                    ls="--" if base else "-",
                    lw=1.2,
                    label=_label(f"{track.subject} {track.version}"),
                )
            ax.set_ylabel(METRIC_TITLES[metric])
            ax.legend(loc="upper left", fontsize=7, ncol=3)
        axes[-1, 0].set_xlabel("seconds since the run started")
        return _svg(fig)


def history_svg(points: Sequence[HistoryPoint], change_points: Sequence[int] | None) -> str:
    """p95 and rps per run of the scenario, labelled by version; change points as vertical lines."""
    with matplotlib.rc_context(STYLE):
        fig, (lat, thr) = plt.subplots(2, 1, sharex=True, figsize=(10, 4.6))
        xs = list(range(len(points)))
        lat.plot(xs, _finite([p.p95_ms if p.p95_ms is not None else math.nan for p in points]), "o-", color=CANDIDATE)
        thr.plot(xs, _finite([p.rps if p.rps is not None else math.nan for p in points]), "s-", color="#2e8b57")
        lat.set_ylabel("p95 (ms)")
        thr.set_ylabel("requests/s")
        for index in change_points or ():
            for ax in (lat, thr):
                ax.axvline(index - 0.5, color="#c0392b", ls="--", lw=1)
        step = max(1, len(points) // 25)
        thr.set_xticks(xs[::step], [_label(f"{p.version}\n#{p.run_id}") for p in points][::step], fontsize=7)
        thr.set_xlabel("completed runs of the scenario, oldest first (version, run id)")
        return _svg(fig)


def capacity_svg(cap: Capacity) -> str:
    """Throughput and p95 against users for each step of the last stress run; the breaking step in red."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10, 3.4))
        users = [s.users for s in cap.steps]
        ax.plot(users, [s.rps for s in cap.steps], "o-", color="#2e8b57", label="requests/s")
        for s in cap.steps:
            if not s.sustained:
                ax.plot([s.users], [s.rps], "X", color="#c0392b", ms=10, label="SLO broke")
        ax.set_xlabel("users")
        ax.set_ylabel("requests/s")
        other = ax.twinx()
        other.plot(users, _finite([s.p95_ms for s in cap.steps]), "d--", color=CANDIDATE, label="p95 (ms)")
        other.set_ylabel("p95 (ms)")
        ax.legend(loc="upper left")
        other.legend(loc="lower right")
        return _svg(fig)


def section_svg(section: Section) -> str:
    """Measured points and the model's curve of an analysis (the USL throughput against users, say)."""
    with matplotlib.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10, 3.4))
        if section.curve:
            ax.plot([x for x, _ in section.curve], [y for _, y in section.curve], "-", color="#7b2d8b", label="model")
        ax.plot([x for x, _ in section.points], [y for _, y in section.points], "o", color="#2e8b57", label="measured")
        ax.set_xlabel(_label(section.x_label))
        ax.set_ylabel(_label(section.y_label))
        ax.legend(loc="upper left")
        return _svg(fig)
