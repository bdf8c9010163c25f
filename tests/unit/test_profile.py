"""Behaviour profiles of the demo target, and their effect on an in-process app."""

from __future__ import annotations

import pytest

from benchlab.runners.demo.app import create_app, state_of
from benchlab.runners.demo.profile import PROFILES, Profile, resolve_profile
from benchlab.runners.settings import TargetSettings


def test_default_profile_follows_the_version() -> None:
    assert resolve_profile(TargetSettings(version="1.0")) == PROFILES["1.0"]
    assert resolve_profile(TargetSettings(version="1.1")) == PROFILES["1.1"]
    assert resolve_profile(TargetSettings(version="2.7")) == PROFILES["1.0"]
    assert resolve_profile(TargetSettings(version="1.1", profile="leaky")).name == "leaky"


def test_named_profiles_differ_as_documented() -> None:
    base, slower, leaky = PROFILES["1.0"], PROFILES["1.1"], PROFILES["leaky"]
    assert slower.content_cost >= 1.5 * base.content_cost
    assert base.leak_bytes == slower.leak_bytes == 0 < leaky.leak_bytes
    assert leaky.content_cost == base.content_cost


def test_overrides() -> None:
    profile = resolve_profile(TargetSettings(version="1.1", slowdown=3.0, leak_kb=1.5))
    assert (profile.name, profile.content_cost, profile.leak_bytes) == ("1.1", 3.0, 1536)


def test_unknown_profile_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="unknown profile 'turbo'") as caught:
        resolve_profile(TargetSettings(profile="turbo"))
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError):
        Profile(name="bad", content_cost=0)


def test_leaky_app_retains_memory_per_request_up_to_its_cap() -> None:
    profile = Profile(name="leaky", leak_bytes=1000, leak_cap_bytes=2500)
    app = create_app(version="9", profile=profile)
    client = app.test_client()
    for _ in range(2):
        assert client.get("/health").status_code == 200
    assert state_of(app).retained_bytes == 2000
    for _ in range(3):
        client.get("/health")
    assert state_of(app).retained_bytes == 2000  # a third chunk would pass the cap
    assert client.get("/api/v1/status").json["retained_bytes"] == 2000


def test_baseline_app_retains_nothing_and_worker_runs_in_process() -> None:
    app = create_app(version="1.0")
    client = app.test_client()
    job = client.post("/api/v1/jobs", json={"kind": "notify"}).json
    assert client.get(f"/api/v1/jobs/{job['job_id']}").json["status"] == "queued"
    assert state_of(app).worker.run_once(timeout=1.0)
    assert client.get(f"/api/v1/jobs/{job['job_id']}").json["status"] == "done"
    assert state_of(app).retained_bytes == 0
