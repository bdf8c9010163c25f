"""Mutation score per module from `mutmut results --all true`, run in mutmut's working directory (`make mutate`)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

DETECTED = ("killed", "timeout", "caught by type check", "segfault")
"""Outcomes in which a mutant did not get through: the tests (or a checker) noticed it."""
LINE = re.compile(r"^\s*(?P<module>[\w.]+)\.x[_ǁ](?P<func>\S*)__mutmut_\d+: (?P<status>.+)$")


def main() -> int:
    """Print killed/total per module and overall; exit 1 under 80% or when nothing was checked."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in out.stdout.splitlines():
        if m := LINE.match(line):
            by_module[m["module"]][m["status"].strip()] += 1
    checked = Counter[str]()
    print(f"{'module':48} {'killed':>7} {'total':>6} {'score':>7}  survived / no tests / other")
    for module, counts in sorted(by_module.items()):
        total = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
        killed = sum(counts[s] for s in DETECTED)
        other = total - killed - counts["survived"] - counts["no tests"]
        score = f"{killed / total:.1%}" if total else "-"
        print(f"{module:48} {killed:7d} {total:6d} {score:>7}  {counts['survived']} / {counts['no tests']} / {other}")
        checked["killed"] += killed
        checked["total"] += total
    if not checked["total"]:
        print("no mutant was checked")
        return 1
    score = checked["killed"] / checked["total"]
    print(f"{'all':48} {checked['killed']:7d} {checked['total']:6d} {score:7.1%}")
    return 0 if score >= 0.8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
