"""The handlers of `benchlab run`, `calibrate` and `demo`: the settings `runners.cli` parsed, run, then printed.

Each imports Locust first (gevent's monkey-patching must precede any import of ssl or sockets), and `runners.cli`
when called, since the parser names these handlers.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchlab.runners.errors import EXIT_OK


def cmd_run(ns: argparse.Namespace) -> int:
    """`benchlab run`."""
    import locust  # noqa: F401  - gevent monkey-patching before anything imports ssl or sockets

    from benchlab.runners.analyses import after_run
    from benchlab.runners.cli import build_run_spec
    from benchlab.runners.report.summary import suite_json
    from benchlab.runners.report.table import table
    from benchlab.runners.run import execute
    from benchlab.runners.verdicts import check_baseline, judge_after_run

    spec = build_run_spec(ns)
    check_baseline(spec)
    results = execute(spec)
    for result in results:
        print(table(result.rows, result.totals))
        if result.error:
            print(f"benchlab: {result.error}", file=sys.stderr)
    code = next((r.exit_code for r in results if r.exit_code != EXIT_OK), EXIT_OK)
    if code == EXIT_OK:
        code = judge_after_run(spec, [r.totals.run_id for r in results if r.totals.status == "completed"])
    after_run(spec, [(r.test_type, r.totals.run_id) for r in results if r.totals.status == "completed"])
    if spec.output.report_dir is not None:
        from benchlab.runners.reporting import report_after_run

        stored = [r.totals.run_id for r in results if r.totals.stored_samples]
        report_after_run(spec.store, spec.judge, stored, spec.output.report_dir)
    if spec.output.results_dir is not None:
        from benchlab.runners.baseline import write_runs

        for path in write_runs(spec.store, [r.totals.run_id for r in results], spec.output.results_dir):
            print(f"benchlab: baseline written to {path}", file=sys.stderr)
    if spec.output.json:
        print(json.dumps(suite_json([(r.test_type, r.rows, r.totals) for r in results], lost=results[-1].lost_workers)))
    sys.stdout.flush()
    return code


def cmd_calibrate(ns: argparse.Namespace) -> int:
    """`benchlab calibrate`."""
    import locust  # noqa: F401  - gevent monkey-patching first

    from benchlab.runners.calibrate import cmd_calibrate as calibrate

    return calibrate(ns)


def cmd_demo(ns: argparse.Namespace) -> int:
    """`benchlab demo`."""
    import locust  # noqa: F401  - gevent monkey-patching first

    from benchlab.runners.cli import demo_settings
    from benchlab.runners.demo.tour import run_demo

    return run_demo(demo_settings(ns))
