"""The webhook message of `benchlab ci`: `build` keeps the significant findings (pure), `post` sends them.

The message is Slack-compatible (`{"text": ..., "blocks": [...]}`); other chat tools read `text`. Only
significant findings are listed: regressions and improvements of gating metrics (verdicts that already passed
the threshold, the interval and the false-discovery-rate test) and SLO breaches. With none, `build` returns None and
nothing is posted.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from benchlab.runners.analysis.compare import Comparison
from benchlab.runners.analysis.gate import describe
from benchlab.runners.analysis.slo import Check
from benchlab.runners.analysis.verdict import IMPROVEMENT, REGRESSION

TIMEOUT_S = 5.0
"""How long a post may take before it is given up."""
MAX_LINES = 15
"""Findings listed in one message; the rest are counted."""
MAX_SECTION = 2900
"""Slack refuses a section text over 3000 characters."""


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What `benchlab ci` concluded for one test type, as plain data."""

    test_type: str
    """Test type of the judged runs."""
    scenario: str
    """Scenario of the judged runs."""
    comparison: Comparison | None
    """The comparison with the baseline, None without one."""
    checks: Sequence[Check] = ()
    """SLO checks of the candidate runs."""
    confirmation: str | None = None
    """What `--confirm` concluded, if it ran."""


def findings(outcome: Outcome) -> list[str]:
    """One line per significant finding of a gating metric: regressions, then SLO breaches, then improvements."""
    results = [r for r in outcome.comparison.results if r.gating] if outcome.comparison is not None else []
    regressions = [_arrow(describe(r)) for r in results if r.verdict == REGRESSION]
    improvements = [_arrow(describe(r)) for r in results if r.verdict == IMPROVEMENT]
    breaches = [
        f"SLO breach: {c.operation}: {c.criterion.text} on {c.endpoint or 'all endpoints'}"
        + ("" if c.value is None else f" (measured {c.value:.4g})")
        for c in outcome.checks
        if c.passed is False
    ]
    return regressions + breaches + improvements


def _arrow(line: str) -> str:
    return line.replace(" -> ", " → ")


def _escape(text: str) -> str:
    """Slack mrkdwn control characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _headline(lines: Sequence[str], *, candidate: str, baseline: str, exit_code: int) -> str:
    counts = {
        "regression": sum(line.startswith(REGRESSION) for line in lines),
        "SLO breach": sum(line.startswith("SLO breach") for line in lines),
        "improvement": sum(line.startswith(IMPROVEMENT) for line in lines),
    }
    found = ", ".join(
        f"{n} {word}{'es' if word.endswith('h') else 's'}" if n > 1 else f"{n} {word}"
        for word, n in counts.items()
        if n
    )
    against = f"{candidate} against {baseline}" if baseline else candidate
    gate_off = " (the gate is off)" if exit_code == 0 and (counts["regression"] or counts["SLO breach"]) else ""
    return f"benchlab: {against}: {found}; exit {exit_code}{gate_off}"


def build(
    outcomes: Sequence[Outcome],
    *,
    candidate: str,
    baseline: str = "",
    exit_code: int = 0,
    link: str | None = None,
    max_lines: int = MAX_LINES,
) -> dict[str, Any] | None:
    """The webhook payload of the significant findings, or None when there are none."""
    found = {o.test_type: findings(o) for o in outcomes}
    notes = {o.test_type: o.confirmation for o in outcomes if o.confirmation and found[o.test_type]}
    found = {k: v for k, v in found.items() if v}
    if not found:
        return None
    head = _headline(
        [line for lines in found.values() for line in lines],
        candidate=candidate,
        baseline=baseline,
        exit_code=exit_code,
    )
    scenario = next(o.scenario for o in outcomes if o.test_type in found)
    bullets = [f"• {t} test: {line}" for t, lines in found.items() for line in lines]
    more = len(bullets) - max_lines
    bullets = bullets[:max_lines] + ([f"… and {more} more in the report"] if more > 0 else [])
    bullets += [f"• {note}" for note in notes.values()]
    body = _escape("\n".join(bullets))
    if len(body) > MAX_SECTION:
        body = body[: MAX_SECTION - 1].rsplit("\n", 1)[0] + "\n…"
    top = _escape(f"{head}; scenario {scenario}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{top}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
    ]
    text = f"{top}\n{body}"
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|CI run and reports>"}]})
        text += f"\n{link}"
    return {"text": text, "blocks": blocks}


def post(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT_S) -> str | None:
    """POST the payload as JSON; None when the receiver answered 2xx, else one line saying why not.

    The URL is a secret (a Slack webhook URL is its own credential): it never appears in the line.
    """
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return f"{exc.reason}"
    except (TimeoutError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None if 200 <= status < 300 else f"HTTP {status}"


def run_link(env: Mapping[str, str] | None = None) -> str | None:
    """The GitHub Actions run the job is part of, when it is one."""
    env = os.environ if env is None else env
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}" if all(parts) else None


def send(url: str, payload: dict[str, Any] | None) -> bool | None:
    """Post and say so in one line (the host only): True when posted, False when not, None with nothing to post."""
    host = urlsplit(url).hostname
    if payload is None:
        print(f"webhook: nothing significant, nothing posted to {host}")
        return None
    error = post(url, payload)
    if error is not None:
        print(f"benchlab: webhook to {host} not delivered: {error}", file=sys.stderr)
        return False
    print(f"webhook: findings posted to {host}")
    return True
