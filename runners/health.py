"""Pre-flight check of the target: is it up before any load starts?"""

from __future__ import annotations

import urllib.error
import urllib.request

from benchlab.runners.errors import RunFailed


def check_target(host: str, path: str = "/health", timeout: float = 5.0) -> str:
    """GET host+path (falling back to GET / when the path is 404); return a one-line status or raise RunFailed."""
    for candidate in (path, "/"):
        url = host.rstrip("/") + candidate
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return f"{url} answered {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            if exc.code < 500:
                return f"{url} answered {exc.code}"
            raise RunFailed(f"target {host} is unhealthy: GET {candidate} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RunFailed(f"target {host} is unreachable: {reason}") from None
    raise RunFailed(f"target {host} answered 404 on {path} and /")
