"""Pre-flight of the target: which HTTP hosts the user classes will hit, and are they up before any load starts?"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence

from locust import FastHttpUser, HttpUser, User

from benchlab.runners.errors import BadInput, RunFailed

HTTP_USERS: tuple[type[User], ...] = (HttpUser, FastHttpUser)
"""User classes whose client speaks HTTP to `host` (Locust requires a host for them)."""


def is_http(user: type[User]) -> bool:
    """True for HttpUser and FastHttpUser subclasses; custom clients (XML-RPC, gRPC, a database) are not."""
    return issubclass(user, HTTP_USERS)


def class_hosts(users: Sequence[type[User]]) -> list[str]:
    """Distinct `host` attributes the user classes set themselves, in class order."""
    return list(dict.fromkeys(str(u.host).rstrip("/") for u in users if u.host))


def http_hosts(users: Sequence[type[User]], host: str) -> list[str]:
    """The HTTP base URLs the run will hit: `host` (which overrides every class's, as in Locust) or each class's own.

    Raises BadInput when an HTTP user class has no host and none is given (Locust would fail at spawn time).
    """
    http = [u for u in users if is_http(u)]
    if host:
        return [host] if http else []
    missing = [u.__name__ for u in http if not u.host]
    if missing:
        raise BadInput(f"no target host: pass --host or set TARGET_HOST ({', '.join(missing)} sets no host)")
    return class_hosts(http)


def recorded_host(users: Sequence[type[User]], host: str) -> str:
    """The host stored with the run: `host` when given, else the classes' own hosts (comma-separated), else ''."""
    return host or ", ".join(class_hosts(users))


SKIPPED = "no HttpUser or FastHttpUser class, so no HTTP host to check: health check skipped"
"""The note printed instead of a health check when the user classes bring their own clients."""


def preflight(hosts: Sequence[str], path: str = "/health") -> list[str]:
    """Check every HTTP host the run will hit (see `http_hosts`); one status line per host. RunFailed if one is down."""
    return [check_target(h, path) for h in hosts]


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
