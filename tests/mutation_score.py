"""Mutation score per module from `mutmut results --all true`, run in mutmut's working directory (`make mutate`).

`--survivors` also lists every surviving mutant (see one with `mutmut show NAME` in the same directory).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

DETECTED = ("killed", "timeout", "caught by type check", "segfault")
"""Outcomes in which a mutant did not get through: the tests (or a checker) noticed it."""
LINE = re.compile(r"^\s*(?P<name>(?P<module>[\w.]+)\.x[_ǁ](?P<func>\S*)__mutmut_\d+): (?P<status>.+)$")
GOAL = 0.8
"""Share of checked mutants the tests must detect, per module and overall."""


def main(argv: list[str]) -> int:
    """Print killed/total per module and overall; exit 1 when a module or the total is under GOAL, or none ran."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for line in out.stdout.splitlines():
        if m := LINE.match(line):
            status = m["status"].strip()
            by_module[m["module"]][status] += 1
            if status in ("survived", "no tests"):
                survivors.append(f"{m['name']}  ({status})")
    checked = Counter[str]()
    low: list[str] = []
    print(f"{'module':48} {'killed':>7} {'total':>6} {'score':>7}  survived / no tests / other")
    for module, counts in sorted(by_module.items()):
        total = sum(n for s, n in counts.items() if s not in ("not checked", "skipped"))
        if not total:
            continue
        killed = sum(counts[s] for s in DETECTED)
        other = total - killed - counts["survived"] - counts["no tests"]
        print(
            f"{module:48} {killed:7d} {total:6d} {killed / total:7.1%}  "
            f"{counts['survived']} / {counts['no tests']} / {other}"
        )
        checked["killed"] += killed
        checked["total"] += total
        if killed / total < GOAL:
            low.append(module)
    if not checked["total"]:
        print("no mutant was checked")
        return 1
    score = checked["killed"] / checked["total"]
    print(f"{'all':48} {checked['killed']:7d} {checked['total']:6d} {score:7.1%}")
    if "--survivors" in argv:
        print("\n".join(sorted(survivors)))
    if low:
        print(f"under {GOAL:.0%}: {', '.join(low)}")
    return 0 if score >= GOAL and not low else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
