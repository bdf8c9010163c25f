"""The lab's Prometheus files pass promtool, the rules compute what they claim, and a real Prometheus
scrapes the sidecar's /metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from promserver import PROMETHEUS, free_port, query, start_prometheus, stop_process

from benchlab.metrics.sidecar.daemon import SidecarSettings, run_sidecar
from benchlab.metrics.sidecar.process import Target
from benchlab.metrics.sidecar.spec import probe_from_flag

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not (os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)),
    reason="prometheus and promtool are not installed (apt-get install prometheus)",
)

RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 5s
tests:
  - interval: 5s
    input_series:
      - series: 'benchlab_request_duration_seconds_bucket{{job="runner",name="/health",method="GET",le="0.1"}}'
        values: '0+10x48'
      - series: 'benchlab_request_duration_seconds_bucket{{job="runner",name="/health",method="GET",le="0.5"}}'
        values: '0+12x48'
      - series: 'benchlab_request_duration_seconds_bucket{{job="runner",name="/health",method="GET",le="1"}}'
        values: '0+18x48'
      - series: 'benchlab_request_duration_seconds_bucket{{job="runner",name="/health",method="GET",le="2.5"}}'
        values: '0+20x48'
      - series: 'benchlab_request_duration_seconds_bucket{{job="runner",name="/health",method="GET",le="+Inf"}}'
        values: '0+20x48'
      - series: 'benchlab_request_duration_seconds_count{{job="runner",name="/health",method="GET"}}'
        values: '0+20x48'
      - series: 'benchlab_request_duration_seconds_sum{{job="runner",name="/health",method="GET"}}'
        values: '0+10x48'
      - series: 'benchlab_requests_total{{job="runner",name="/health",method="GET",status="200"}}'
        values: '0+18x48'
      - series: 'benchlab_requests_total{{job="runner",name="/health",method="GET",status="503"}}'
        values: '0+2x48'
      - series: 'benchlab_request_failures_total{{job="runner",name="/health",method="GET"}}'
        values: '0+2x48'
      - series: 'benchlab_process_cpu_seconds_total{{job="sidecar",service="api"}}'
        values: '0+2.5x48'
      - series: 'benchlab_queue_backlog_age_seconds{{job="sidecar",queue="jobs",backend="redis"}}'
        values: '90x48'
    promql_expr_test:
      - expr: name_method:benchlab_requests:rate1m
        eval_time: 2m
        exp_samples:
          - labels: 'name_method:benchlab_requests:rate1m{{name="/health",method="GET"}}'
            value: 4
      - expr: round(name_method:benchlab_request_duration_seconds:p95_1m * 1000)  # interpolation is inexact
        eval_time: 2m
        exp_samples:
          - labels: '{{name="/health",method="GET"}}'
            value: 1750
      - expr: name_method:benchlab_request_duration_seconds:mean_1m
        eval_time: 2m
        exp_samples:
          - labels: 'name_method:benchlab_request_duration_seconds:mean_1m{{name="/health",method="GET"}}'
            value: 0.5
      - expr: job:benchlab_request_failures:ratio_rate1m
        eval_time: 2m
        exp_samples:
          - labels: 'job:benchlab_request_failures:ratio_rate1m{{job="runner"}}'
            value: 0.1
      - expr: job:benchlab_requests_5xx:ratio_rate1m
        eval_time: 2m
        exp_samples:
          - labels: 'job:benchlab_requests_5xx:ratio_rate1m{{job="runner"}}'
            value: 0.1
      - expr: service:benchlab_process_cpu:ratio_rate1m
        eval_time: 2m
        exp_samples:
          - labels: 'service:benchlab_process_cpu:ratio_rate1m{{service="api"}}'
            value: 0.5
    alert_rule_test:
      - eval_time: 3m
        alertname: BenchlabP95AboveSLO
        exp_alerts:
          - exp_labels: {{severity: warning, name: /health, method: GET}}
            exp_annotations:
              summary: "p95 of GET /health is 1.75s (SLO 500ms)"
      - eval_time: 3m
        alertname: BenchlabQueueBacklogOld
        exp_alerts:
          - exp_labels: {{severity: warning, job: sidecar, queue: jobs, backend: redis}}
            exp_annotations:
              summary: "oldest item of queue jobs has waited 1m 30s"
      - eval_time: 3m
        alertname: BenchlabErrorRatioHigh
        exp_alerts:
          - exp_labels: {{severity: warning, job: runner}}
            exp_annotations:
              summary: "10% of requests failed over the last minute"
"""


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


@needs_prometheus
def test_promtool_accepts_the_config_and_the_rules() -> None:
    for args in (
        ("check", "config", str(REPO / "prometheus/prometheus.yml")),
        ("check", "rules", str(REPO / "prometheus/rules.yml")),
    ):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_prometheus
def test_recording_and_alert_rules_compute_what_they_claim(tmp_path: Path) -> None:
    tests = tmp_path / "rules_test.yml"
    tests.write_text(RULE_TESTS.format(rules=json.dumps(str(REPO / "prometheus/rules.yml"))))
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def sidecar_port() -> Iterator[tuple[int, str]]:
    """A running sidecar (this test process and a Redis list) serving /metrics; its port and queue label."""
    port, key = free_port(), f"benchlab_test_{uuid.uuid4().hex}:jobs"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    client.lpush(key, json.dumps({"id": "1", "kind": "render", "enqueued_at": time.time()}))
    settings = SidecarSettings(
        targets=(Target(service="tests", pid=os.getpid()),),
        probes=(probe_from_flag("redis", key),),
        interval=0.5,
        metrics_port=port,
        run_id=None,
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_sidecar, args=(settings, None, stop), daemon=True)
    thread.start()
    yield port, key
    stop.set()
    thread.join(timeout=10)
    client.delete(key)
    client.close()


@needs_prometheus
def test_prometheus_scrapes_the_sidecar(tmp_path: Path, sidecar_port: tuple[int, str]) -> None:
    port, queue = sidecar_port
    prom, base = start_prometheus(tmp_path, {"sidecar": port}, rules=REPO / "prometheus/rules.yml")
    wanted = {
        "memory": 'benchlab_process_resident_memory_bytes{job="sidecar",service="tests"}',
        "cpu": 'benchlab_process_cpu_seconds_total{service="tests"}',
        "queue": f'benchlab_queue_length{{queue="{queue}",backend="redis"}}',
        "rule": 'service:benchlab_process_cpu:ratio_rate1m{service="tests"}',
    }
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        deadline = time.monotonic() + 40
        while len(found) < len(wanted) and time.monotonic() < deadline:
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            for name, promql in wanted.items():
                if name not in found and (result := query(base, promql)):
                    found[name] = result
            time.sleep(0.5)
    finally:
        stop_process(prom)
    assert set(found) == set(wanted), f"missing {set(wanted) - set(found)}"
    assert float(found["memory"][0]["value"][1]) > 10e6  # this pytest process holds tens of MB
    assert float(found["queue"][0]["value"][1]) == 1
    assert found["rule"][0]["metric"] == {"__name__": "service:benchlab_process_cpu:ratio_rate1m", "service": "tests"}
