"""Behaviour profiles: how each version of the demo target differs from the baseline."""

from __future__ import annotations

from dataclasses import dataclass, replace

from benchlab.runners.settings import TargetSettings

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "resolve_profile"]


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Knobs that make one version of the demo target faster, slower or leakier than another."""

    name: str
    """Name the profile is selected by."""
    content_cost: float = 1.0
    """Multiplier of the CPU work done by content generation (1.0 = baseline)."""
    leak_bytes: int = 0
    """Bytes kept alive for the life of the process on every request."""
    leak_cap_bytes: int = 1 << 30
    """Retention stops growing past this many bytes, to protect the machine in long runs."""
    extra_latency_s: float = 0.0
    """Added wait (cooperative sleep) on every API request, in seconds."""

    def __post_init__(self) -> None:
        if self.content_cost <= 0:
            raise ValueError(f"profile {self.name}: content_cost must be > 0, got {self.content_cost}")
        if self.leak_bytes < 0 or self.extra_latency_s < 0:
            raise ValueError(f"profile {self.name}: leak_bytes and extra_latency_s must be >= 0")


PROFILES: dict[str, Profile] = {
    "1.0": Profile(name="1.0"),
    "1.1": Profile(name="1.1", content_cost=1.6),
    "leaky": Profile(name="leaky", leak_bytes=16 * 1024),
}
"""Named profiles: `1.0` baseline, `1.1` with 1.6x content-generation work, `leaky` keeping 16 KiB/request."""

DEFAULT_PROFILE = "1.0"


def resolve_profile(settings: TargetSettings) -> Profile:
    """Pick the profile named by `settings.profile` (else by the version, else `1.0`) and apply overrides.

    Raises ValueError for an unknown profile name.
    """
    if settings.profile is not None:
        name = settings.profile
    else:
        name = settings.version if settings.version in PROFILES else DEFAULT_PROFILE
    profile = PROFILES.get(name)
    if profile is None:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    if settings.slowdown is not None:
        profile = replace(profile, content_cost=settings.slowdown)
    if settings.leak_kb is not None:
        profile = replace(profile, leak_bytes=round(settings.leak_kb * 1024))
    if settings.delay_ms is not None:
        profile = replace(profile, extra_latency_s=settings.delay_ms / 1000)
    return profile
