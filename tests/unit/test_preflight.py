"""Before a run of a plain Locust file: which HTTP hosts to check, what host to record, which shape drives it."""

from __future__ import annotations

import pytest
from locust import FastHttpUser, HttpUser, LoadTestShape, User

from benchlab.runners.choice import choose, file_deadline
from benchlab.runners.errors import BadInput
from benchlab.runners.health import http_hosts, recorded_host
from benchlab.runners.settings import ShapeSettings


class Web(HttpUser):
    host = "http://a:1/"


class Fast(FastHttpUser):
    host = "http://b:2"


class Bare(FastHttpUser):
    pass


class Rpc(User):
    host = "http://rpc:3"


class Db(User):
    pass


class Steps(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        return None


class Other(Steps):
    pass


def test_host_flag_overrides_the_classes_hosts_as_in_locust() -> None:
    assert http_hosts([Web, Fast, Bare], "http://given:9") == ["http://given:9"]
    assert recorded_host([Web, Fast], "http://given:9") == "http://given:9"


def test_without_host_flag_each_http_class_host_is_checked() -> None:
    assert http_hosts([Web, Fast, Rpc], "") == ["http://a:1", "http://b:2"]
    assert http_hosts([Web, Web], "") == ["http://a:1"]
    assert recorded_host([Web, Fast, Rpc], "") == "http://a:1, http://b:2, http://rpc:3"


def test_custom_clients_have_no_http_host_to_check() -> None:
    assert http_hosts([Rpc, Db], "") == []
    assert http_hosts([Rpc, Db], "http://given:9") == []  # --host goes to the custom client, not to a health check
    assert recorded_host([Db], "") == ""


def test_http_class_without_any_host_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"no target host: pass --host or set TARGET_HOST \(Bare sets no host\)"):
        http_hosts([Web, Bare, Db], "")


def test_no_file_shape_keeps_the_test_type() -> None:
    choice = choose([], ShapeSettings(test_type="load", test_type_given=False))
    assert (choice.file_shape, choice.test_type, choice.note) == (None, "load", None)


def test_file_shape_drives_when_no_test_type_is_given() -> None:
    shape = Steps()
    choice = choose([shape], ShapeSettings(test_type="load", test_type_given=False, run_time_given=False))
    assert choice.file_shape is shape and choice.test_type == "Steps"
    assert choice.note is not None and "Steps drives the run until its tick() returns None (" in choice.note
    capped = choose([shape], ShapeSettings(run_time=30.0, test_type_given=False))
    assert capped.note is not None and "returns None or --run-time 30s" in capped.note


def test_given_test_type_wins_and_says_so() -> None:
    choice = choose([Steps(), Other()], ShapeSettings(test_type="stress"))
    assert (choice.file_shape, choice.test_type) == (None, "stress")
    assert choice.note == "--test-type stress given: benchlab's shape drives the run, not the locustfile's Steps, Other"


def test_several_file_shapes_without_test_type_are_refused() -> None:
    with pytest.raises(ValueError, match=r"defines 2 LoadTestShape classes \(Steps, Other\)"):
        choose([Steps(), Other()], ShapeSettings(test_type_given=False))


def test_file_shape_deadline_is_the_given_run_time_only() -> None:
    assert file_deadline(ShapeSettings(run_time=12.0)) == 12.0
    assert file_deadline(ShapeSettings(run_time=300.0, run_time_given=False)) is None
