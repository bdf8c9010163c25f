"""`make test`'s pytest: the suite in three concurrent groups, since most integration time is spent waiting.

pytest-xdist cannot serve here: its workers' threads deadlock once a test imports Locust (gevent patches
threading). The groups are balanced by measured duration (`--durations`); each has its own base temp dir.
Every group's output is printed in full when it ends; the exit code is the first non-zero one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "tests" / "integration"
SLOW_ALONE = ["test_verdict.py", "test_report.py", "test_plainfile.py"]
"""About 6 minutes of real runs on two stores, the reports, and plain Locust files (with the unit tests)."""
SECOND = ["test_run.py", "test_suite.py", "test_demo.py", "test_ci.py", "test_remote.py"]
"""About 6 minutes together: runs, suites, the demo, `benchlab ci` and workers in network namespaces."""


def groups() -> list[list[str]]:
    """Three lists of test paths covering tests/ exactly once."""
    every = sorted(p.name for p in INTEGRATION.glob("test_*.py"))
    rest = [name for name in every if name not in SLOW_ALONE + SECOND]
    named = [[*SLOW_ALONE], SECOND, rest]
    out = [[str(INTEGRATION / name) for name in group] for group in named]
    out[0].append(str(ROOT / "tests" / "unit"))
    return out


def main() -> int:
    """Run the groups at once; print each one's output as it finishes."""
    logs, procs = [], []
    for i, paths in enumerate(groups()):
        log = ROOT / "build" / f"pytest-group{i + 1}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = log.open("w")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={log.with_suffix('')}"]
        procs.append(subprocess.Popen([*cmd, *sys.argv[1:], *paths], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT))
        logs.append((log, fh))
    started, code = time.monotonic(), 0
    pending = dict(enumerate(procs))
    while pending:
        for i, proc in list(pending.items()):
            if proc.poll() is None:
                continue
            del pending[i]
            logs[i][1].close()
            print(f"===== group {i + 1} (exit {proc.returncode}, {time.monotonic() - started:.0f} s) =====", flush=True)
            print(logs[i][0].read_text(), flush=True)
            code = code or proc.returncode
        time.sleep(0.5)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
