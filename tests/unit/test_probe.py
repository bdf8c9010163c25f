"""Scrape mapping, probe and run-id flags, the sidecar config file, settings checks and queue metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchlab.metrics.sidecar.daemon import SidecarSettings, resolve_settings
from benchlab.metrics.sidecar.exposition import QueueReading, SidecarCollector, Snapshot
from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.queue import RabbitQueueSpec, RedisListSpec, ScrapeSpec, label_of
from benchlab.metrics.sidecar.scrape import ScrapeTotals, scrape_totals
from benchlab.metrics.sidecar.spec import load_config, parse_run_id, probe_from_flag

PAGE = """\
# HELP demo_jobs_processed_total Jobs finished.
# TYPE demo_jobs_processed_total counter
demo_jobs_processed_total{kind="render"} 30.0
demo_jobs_processed_total{kind="index"} 12.0
# HELP demo_jobs_processed_created Jobs finished.
# TYPE demo_jobs_processed_created gauge
demo_jobs_processed_created{kind="render"} 1.7e9
# HELP demo_jobs_failed_total Jobs failed.
# TYPE demo_jobs_failed_total counter
demo_jobs_failed_total{kind="index"} 3.0
# HELP demo_job_processing_seconds Time per job.
# TYPE demo_job_processing_seconds histogram
demo_job_processing_seconds_bucket{kind="render",le="+Inf"} 30.0
demo_job_processing_seconds_count{kind="render"} 30.0
demo_job_processing_seconds_sum{kind="render"} 1.5
demo_job_processing_seconds_bucket{kind="index",le="+Inf"} 12.0
demo_job_processing_seconds_count{kind="index"} 12.0
demo_job_processing_seconds_sum{kind="index"} 0.6
# HELP demo_queue_length Jobs waiting.
# TYPE demo_queue_length gauge
demo_queue_length 7.0
# HELP demo_queue_oldest_age_seconds Age of the oldest job.
# TYPE demo_queue_oldest_age_seconds gauge
demo_queue_oldest_age_seconds 2.5
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{status="500"} 99.0
"""


def test_default_mapping_reads_the_demo_worker_page() -> None:
    got = scrape_totals(PAGE, ScrapeSpec(url="http://t/metrics"))
    assert got == ScrapeTotals(
        processing_sum=pytest.approx(2.1),
        processing_count=42.0,
        processed=42.0,
        failed=3.0,
        published=None,
        length=7.0,
        backlog_age=2.5,
    )


def test_mapping_is_configurable_and_type_checked() -> None:
    spec = ScrapeSpec(
        url="http://t/metrics", processed="http_requests", failed="demo_queue_length", length="demo_jobs_processed"
    )
    got = scrape_totals(PAGE, spec)
    assert got.processed == 99.0
    assert got.failed is None  # a gauge is not a counter
    assert got.length is None  # nor a counter a gauge
    assert scrape_totals("", spec) == ScrapeTotals()


def test_probe_flags_and_labels() -> None:
    redis_spec = probe_from_flag("redis", "jobs=benchlab:demo:jobs", url="redis://r:6379/1")
    assert redis_spec == RedisListSpec(url="redis://r:6379/1", key="benchlab:demo:jobs", label="jobs")
    assert label_of(probe_from_flag("redis", "benchlab:demo:jobs")) == "benchlab:demo:jobs"
    rabbit = probe_from_flag("rabbitmq", "orders")
    assert isinstance(rabbit, RabbitQueueSpec) and rabbit.url.startswith("amqp://") and label_of(rabbit) == "orders"
    scrape = probe_from_flag("scrape", "http://target:8000/metrics?x=1")
    assert isinstance(scrape, ScrapeSpec) and scrape.label is None and label_of(scrape) == "target:8000"
    assert label_of(probe_from_flag("scrape", "demo=http://target:8000/metrics")) == "demo"
    for kind, value in [("scrape", "target:8000/metrics"), ("kafka", "x"), ("redis", "")]:
        with pytest.raises(ValueError):
            probe_from_flag(kind, value)


@pytest.mark.parametrize(("text", "expected"), [("auto", "auto"), ("NONE", None), ("42", 42)])
def test_run_ids(text: str, expected: object) -> None:
    assert parse_run_id(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "latest", ""])
def test_bad_run_ids(text: str) -> None:
    with pytest.raises(ValueError):
        parse_run_id(text)


def test_toml_config_merges_with_flags(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text("""
[[target]]
service = "api"
port = 8000
[[target]]
service = "worker"
process = "worker\\\\.py"
[[redis]]
url = "redis://redis:6379/0"
key = "benchlab:demo:jobs"
published_key = "benchlab:demo:published"
[[rabbitmq]]
url = "amqp://guest:guest@rabbitmq:5672/%2F"
queue = "orders"
[[scrape]]
url = "http://target:8000/metrics"
label = "benchlab:demo:jobs"
processing = "demo_job_processing_seconds"
""")
    settings = resolve_settings(SidecarSettings(targets=(Target(service="db", pid=7),), config=path))
    assert settings.targets == (
        Target(service="db", pid=7),
        Target(service="api", port=8000),
        Target(service="worker", pattern=r"worker\.py"),
    )
    redis_spec, rabbit, scrape = settings.probes
    assert isinstance(redis_spec, RedisListSpec) and redis_spec.published_key == "benchlab:demo:published"
    assert rabbit == RabbitQueueSpec(url="amqp://guest:guest@rabbitmq:5672/%2F", name="orders")
    assert isinstance(scrape, ScrapeSpec) and scrape.processing == "demo_job_processing_seconds"
    assert settings.config is None


def test_json_config(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.json"
    path.write_text('{"target": [{"service": "box", "cgroup": "system.slice/x.scope"}]}')
    assert load_config(path) == ((Target(service="box", cgroup="system.slice/x.scope"),), ())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[target]]\nservice = 'a'\npid = 1\nport = 2\n", "[[target]] #1"),
        ("[[redis]]\nurl = 'redis://x'\n", "[[redis]] #1"),
        ("[[scrape]]\nurl = 'http://x'\nwhat = 1\n", "unexpected keyword"),
        ("[[kafka]]\n", "unknown sections"),
        ("[[target]\n", "bad sidecar config"),
    ],
)
def test_bad_configs_raise_one_line_value_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        SidecarSettings(interval=0)
    with pytest.raises(ValueError):
        SidecarSettings(metrics_port=70000)
    with pytest.raises(ValueError, match="nothing to watch"):
        resolve_settings(SidecarSettings())


def test_queue_metrics_carry_queue_and_backend_labels() -> None:
    readings = (
        QueueReading(
            queue="jobs",
            backend="redis",
            length=5,
            publish_rate=2.0,
            consume_rate=1.0,
            backlog_age_seconds=3.5,
            published=10.0,
            consumed=4.0,
        ),
        QueueReading(queue="jobs", backend="scrape", processing_seconds=0.25, error_rate=0.1, consumed=9.0),
    )
    registry = CollectorRegistry()
    registry.register(SidecarCollector(snapshot=lambda: Snapshot(queues=readings, pending_rows=3)))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    redis_labels = (("backend", "redis"), ("queue", "jobs"))
    scrape_labels = (("backend", "scrape"), ("queue", "jobs"))
    assert samples[("benchlab_queue_length", redis_labels)] == 5
    assert samples[("benchlab_queue_backlog_age_seconds", redis_labels)] == 3.5
    assert samples[("benchlab_queue_published_total", redis_labels)] == 10
    assert samples[("benchlab_queue_consumed_total", scrape_labels)] == 9
    assert samples[("benchlab_queue_processing_seconds", scrape_labels)] == 0.25
    assert samples[("benchlab_queue_error_ratio", scrape_labels)] == 0.1
    assert ("benchlab_queue_length", scrape_labels) not in samples
    assert ("benchlab_queue_published_total", scrape_labels) not in samples
    assert samples[("benchlab_sidecar_pending_rows", ())] == 3
