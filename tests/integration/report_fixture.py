"""Synthetic stored runs for the report tests (Store.write_samples), and the report opened in headless Chromium."""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from run_meta import run_meta

from benchlab.metrics.settings import RunMeta
from benchlab.metrics.store.database import Store

NASTY = "<script>alert(1)</script>"
"""An endpoint name that must render as text."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]


def _meta(version: str, test_type: str, seconds: float, users: int) -> RunMeta:
    return run_meta(
        scenario="synthetic",
        test_type=test_type,
        app_version=version,
        locustfile="synthetic.py",
        users=users,
        spawn_rate=float(users),
        planned_duration_s=seconds,
    )


def write_run(
    store: Store, version: str, *, scale: float, t0: float, seconds: int = 40, rps: int = 150, seed: int = 1
) -> int:
    """A completed load run: /health and the nasty endpoint, 1% errors, sidecar CPU, RSS and a queue."""
    rng = np.random.default_rng(seed)
    run_id = store.start_run(_meta(version, "load", seconds, 20), started_at=datetime.fromtimestamp(t0, UTC))
    n = seconds * rps
    ts = t0 + np.arange(n) / rps
    rt = rng.lognormal(np.log(20 * scale), 0.4, n)
    ok = rng.random(n) > 0.01
    rows = [
        (float(t), "/health" if i % 3 else NASTY, "GET", float(r), 100, 10, 200 if o else 500, bool(o), None)
        if o
        else (float(t), "/health" if i % 3 else NASTY, "GET", float(r), 0, 10, 500, False, "HTTPError('500 <b>x</b>')")
        for i, (t, r, o) in enumerate(zip(ts, rt, ok, strict=True))
    ]
    store.write_samples(run_id, None, rows)
    store.add_events(
        [
            (run_id, t0, "start", 0, "load run", None),
            (run_id, t0 + 0.2, "users", 20, "users=20", None),
            (run_id, t0 + 0.3, "stage", 20, "hold", None),
            (run_id, t0 + seconds, "stop", 0, "completed", None),
        ]
    )
    _sidecar(store, run_id, t0, seconds)
    _finish(store, run_id, t0 + seconds, rps=float(rps), p95=float(np.percentile(rt, 95)))
    return run_id


def _sidecar(store: Store, run_id: int, t0: float, seconds: int) -> None:
    at = [datetime.fromtimestamp(t0 + s, UTC) for s in range(seconds)]
    store.write_resource_samples(
        [
            {"run_id": run_id, "ts": ts, "service": "api", "process_count": 1, "restarts": 0}
            | {"cpu_percent": 30.0 + s % 5, "rss_bytes": 100_000_000 + s * 50_000}
            for s, ts in enumerate(at)
        ]
    )
    store.write_queue_samples(
        [
            {"run_id": run_id, "ts": ts, "queue": "jobs", "backend": "redis", "length": s % 7}
            | {"backlog_age_seconds": 0.3 * (s % 7)}
            for s, ts in enumerate(at)
        ]
    )


def _finish(store: Store, run_id: int, end: float, *, rps: float, p95: float) -> None:
    from sqlalchemy import update

    from benchlab.metrics.store.model import Run

    store.finish_run(run_id, status="completed", summary={"rps": rps, "p95_ms": p95})
    with store.engine.begin() as conn:  # the run ended when its samples did, not when the test stored them
        conn.execute(update(Run).where(Run.id == run_id).values(ended_at=datetime.fromtimestamp(end, UTC)))


def write_stress(store: Store, *, t0: float, seed: int = 3) -> int:
    """A stress run of 4 steps of 10 s (5 to 20 users); throughput flattens and the SLO breaks in the last step."""
    rng = np.random.default_rng(seed)
    steps, length = (5, 10, 15, 20), 10
    run_id = store.start_run(_meta("1.1", "stress", 40, 20), started_at=datetime.fromtimestamp(t0, UTC))
    events = [(run_id, t0, "start", 0, "stress run", None)]
    rows = []
    for i, users in enumerate(steps):
        start = t0 + i * length
        events.append((run_id, start + 0.1, "stress_step", users, f"step {i + 1}/4 users={users}", None))
        events.append((run_id, start + 0.2, "users", users, f"users={users}", None))
        rps = 40 * users / (1 + 0.15 * (users - 1))
        latency = 20 * (1 + 0.02 * users**2)
        n = int(rps * length)
        for t, r in zip(start + np.arange(n) / rps, rng.lognormal(np.log(latency), 0.3, n), strict=True):
            rows.append((float(t), "/work", "GET", float(r), 10, 10, 200, True, None))
    breach = "step 4/4 users=20: p95 9000 ms > slo p95_ms<=500 fail_ratio<=0.05"
    events.append((run_id, t0 + 3 * length + 6, "slo_break", 20, breach, None))
    store.write_samples(run_id, None, rows)
    store.add_events(events)
    _finish(store, run_id, t0 + 4 * length, rps=100.0, p95=500.0)
    return run_id


def seed_store(store: Store) -> tuple[int, int, int]:
    """Baseline 1.0, candidate 1.1 (30% slower) and a stress run, all of the `synthetic` scenario."""
    now = time.time() - 600
    base = write_run(store, "1.0", scale=1.0, t0=now, seed=1)
    cand = write_run(store, "1.1", scale=1.3, t0=now + 60, seed=2)
    stress = write_stress(store, t0=now + 120)
    return base, cand, stress


@dataclass
class PageCheck:
    """What a report looked like in Chromium."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    endpoint_text: str = ""
    distinct_colours: int = 0
    narrow_overflow: bool = False


def open_in_chromium(path: Path) -> PageCheck:
    """Open a report file in Debian's headless Chromium: requests, console messages, DOM, a screenshot."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    check = PageCheck()
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: check.requests.append(r.url))
            page.on("console", lambda m: check.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: check.console.append(("pageerror", str(e))))
            page.on("dialog", lambda d: (check.dialogs.append(d.message), d.dismiss()))
            page.goto(path.resolve().as_uri(), wait_until="load")
            check.charts = page.eval_on_selector_all("figure.chart", "els => els.map(e => e.dataset.chart)")
            check.tables = page.eval_on_selector_all("table", "els => els.map(e => e.id)")
            check.endpoint_text = page.inner_text("#endpoints")
            shot = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
            check.distinct_colours = len(shot.getcolors(maxcolors=1 << 24) or [])
            page.set_viewport_size({"width": 400, "height": 800})
            check.narrow_overflow = bool(
                page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth + 1")
            )
        finally:
            browser.close()
    return check
