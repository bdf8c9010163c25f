"""P1, P1' and P7: benchlab's cost per request against bare Locust, as interleaved pairs on both stores.

Every round runs each layout once, in turn, on the same file and target: bare `locust`, benchlab on SQLite,
benchlab on Postgres, then the same with two processes (`locust --processes 2`, `benchlab run --workers 2`).
A figure is the median of its per-round ratios, printed with their min-max and the round count: one run of
bare Locust alone swings by ±15% on a 2-core machine, so a best-of or a single pair says little.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchlab.runners.selfbench.loads import Load, bare_locust, benchlab_run
from benchlab.runners.selfbench.report import Figure

STORES = ("sqlite", "postgres")
"""The stores benchlab is measured on: the embedded default and the lab's."""
LAYOUTS = (1, 2)
"""Processes generating load: one, or two (a master with two workers)."""
P1_CPU_GOAL = 1.05
"""CPU per request, benchlab ÷ bare Locust: at most 5% more."""
P1_RPS_GOAL = 0.97
"""Requests per second, benchlab ÷ bare Locust: at least 97%."""
P7_GOAL = 0.95
"""benchlab's scaling from one process to two ÷ Locust's own scaling."""


@dataclass(frozen=True, kw_only=True)
class Setup:
    """Where and how the overhead runs go."""

    locustfile: Path
    host: str
    users: int
    seconds: int
    postgres: str
    """URL of the Postgres store."""
    tmp: Path
    """Working directory; the SQLite store is a file in it."""
    before: str = ""
    """PYTHONPATH of an earlier benchlab tree: its one-process runs join each round as `before-<store>`."""


Say = Callable[[str], None]


def _key(store: str | None, processes: int) -> str:
    return f"{store or 'bare'}/{processes}"


def _run(setup: Setup, store: str | None, processes: int) -> Load:
    if store is None:
        return bare_locust(setup.locustfile, setup.host, setup.users, setup.seconds, cwd=setup.tmp, processes=processes)
    before = store.startswith("before-")
    store = store.removeprefix("before-")
    db = setup.postgres if store == "postgres" else f"sqlite:///{setup.tmp / 'overhead.db'}"
    return benchlab_run(
        setup.locustfile,
        setup.host,
        setup.users,
        setup.seconds,
        workers=0 if processes == 1 else processes,
        db=db,
        cwd=setup.tmp,
        pythonpath=setup.before if before else "",
    )


def run_rounds(setup: Setup, rounds: int, say: Say) -> list[dict[str, Load]]:
    """`rounds` rounds; each runs every layout once, the order rotated from round to round."""
    order = [(store, n) for n in LAYOUTS for store in (None, *STORES)]
    if setup.before:
        order += [(f"before-{store}", 1) for store in STORES]
    out: list[dict[str, Load]] = []
    for i in range(rounds):
        shift = i % len(order)
        loads: dict[str, Load] = {}
        for store, n in order[shift:] + order[:shift]:
            say(f"overhead round {i + 1}/{rounds}: {store or 'bare locust'}, {n} process(es), {setup.users} users")
            loads[_key(store, n)] = _run(setup, store, n)
        out.append(loads)
    return out


def spread(ratios: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of per-round ratios."""
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "rounds": len(ratios),
    }


def _label(text: str, ratios: Sequence[float]) -> str:
    s = spread(ratios)
    return f"{text} [{s['min']:.3f}-{s['max']:.3f}, n={s['rounds']}]"


def _figure(key: str, text: str, ratios: list[float], op: str, goal: float, **details: object) -> Figure:
    """One figure: the median of its per-round ratios, labelled and detailed with their spread."""
    return Figure(
        key=key,
        label=_label(text, ratios),
        value=statistics.median(ratios),
        op=op,
        goal=goal,
        details={"ratios": spread(ratios), **details},
    )


def figures(rounds: Sequence[dict[str, Load]], *, users: int, seconds: int) -> list[Figure]:
    """P1 (CPU per request), P1' (rps) per store and layout, and P7 per store, from measured rounds."""
    out: list[Figure] = []
    measured = set(rounds[0]) if rounds else set()
    for n in LAYOUTS:
        for store in (*STORES, *(f"before-{s}" for s in STORES)):
            lab, bare = _key(store, n), _key(None, n)
            if lab not in measured:
                continue
            cpu = [r[lab].cpu_per_request / r[bare].cpu_per_request for r in rounds]
            rps = [r[lab].rps / r[bare].rps for r in rounds]
            where = f"{store}, {n} proc"
            cpu_us = {
                "benchlab": [round(r[lab].cpu_per_request * 1e6, 1) for r in rounds],
                "bare": [round(r[bare].cpu_per_request * 1e6, 1) for r in rounds],
            }
            rps_abs = {"benchlab": [round(r[lab].rps) for r in rounds], "bare": [round(r[bare].rps) for r in rounds]}
            details = {"users": users, "seconds": seconds, "cpu_us_per_request": cpu_us, "rps": rps_abs}
            out.append(_figure(f"P1/{store}/{n}", f"CPU/req vs bare, {where}", cpu, "<=", P1_CPU_GOAL, **details))
            out.append(_figure(f"P1'/{store}/{n}", f"rps vs bare, {where}", rps, ">=", P1_RPS_GOAL))
    for store in STORES if {_key(None, 2), _key("sqlite", 2)} <= measured else ():
        scaling = [
            (r[_key(store, 2)].rps / r[_key(store, 1)].rps) / (r[_key(None, 2)].rps / r[_key(None, 1)].rps)
            for r in rounds
        ]
        out.append(_figure(f"P7/{store}", f"scaling 1->2 proc vs Locust's, {store}", scaling, ">=", P7_GOAL))
    return out
