"""The seed CLI's verbs (`--type baseline|stress|spike|soak|complete|compare|trend`) as benchlab commands."""

from __future__ import annotations

import os

from benchlab.runners.errors import BadInput

SEED_RUN_TYPES = ("baseline", "load", "stress", "spike", "soak", "complete")
SEED_DEFAULT_HOST = "http://localhost:8000"


def seed_argv(argv: list[str]) -> list[str]:
    """The seed CLI's verbs as benchlab commands: `--type T` without a command (README: "Seed CLI mapping").

    `--type baseline|stress|spike|soak|complete` is `run --test-type T` (`--operation` names the scenario;
    `-f locustfile.py` and `--host http://localhost:8000` unless given or set in the environment);
    `--type compare --operation NAME` is `compare --operation NAME`; `--type trend --operation NAME_TYPE` is
    `trend --scenario NAME --test-type TYPE`.
    """
    if not argv or not argv[0].startswith("-") or not any(a == "--type" or a.startswith("--type=") for a in argv):
        return argv
    rest, kind = [], ""
    items = iter(argv)
    for arg in items:
        if arg == "--type":
            kind = next(items, "")
        elif arg.startswith("--type="):
            kind = arg.partition("=")[2]
        else:
            rest.append(arg)
    if kind == "trend" and "--operation" in rest[:-1]:  # content_generation_baseline: a scenario and a test type
        from benchlab.runners.analysis.baseline import split_operation

        at = rest.index("--operation")
        scenario, test_type = split_operation(rest[at + 1])
        rest[at : at + 2] = ["--scenario", scenario, *(["--test-type", test_type] if test_type else [])]
    if kind in ("compare", "trend"):
        return [kind, *rest]
    if kind not in SEED_RUN_TYPES:
        raise BadInput(f"bad --type {kind!r}: expected one of {', '.join((*SEED_RUN_TYPES, 'compare', 'trend'))}")
    rest = ["--scenario" if a == "--operation" else a for a in rest]

    def given(*flags: str) -> bool:
        return any(a in flags or a.startswith(tuple(f + "=" for f in flags)) for a in rest)

    if not given("-f", "--locustfile", "--test-script") and not os.environ.get("LOCUSTFILE"):
        rest = ["-f", "locustfile.py", *rest]
    if not given("--host") and not os.environ.get("TARGET_HOST"):
        rest = ["--host", SEED_DEFAULT_HOST, *rest]
    return ["run", "--test-type", kind, *rest]
