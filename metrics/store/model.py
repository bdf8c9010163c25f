"""SQLAlchemy models of the metrics store; `schema/` holds the same tables as Postgres SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES = ("running", "completed", "aborted", "failed", "interrupted")
"""`interrupted`: the benchlab process died without finishing the run (see `metrics.store.liveness`)."""

Json = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids on Postgres; INTEGER on SQLite so the column is the rowid alias and autoincrements."""
Ts = DateTime(timezone=True)


class Base(DeclarativeBase):
    """Declarative base of every benchlab table."""


class Run(Base):
    """One execution of a load test against one app version."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'completed', 'aborted', 'failed', 'interrupted')", name="runs_status_check"
        ),
        Index("ix_runs_version_started", "app_version", "started_at"),
        Index("ix_runs_scenario_started", "scenario", "started_at"),
        Index("ix_runs_suite", "suite_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    scenario: Mapped[str] = mapped_column(Text)
    test_type: Mapped[str] = mapped_column(Text)
    app_version: Mapped[str] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(Text)
    locustfile: Mapped[str] = mapped_column(Text)
    user_classes: Mapped[list[str]] = mapped_column(Json)
    users: Mapped[int] = mapped_column(Integer)
    spawn_rate: Mapped[float] = mapped_column(Float)
    planned_duration_s: Mapped[float | None] = mapped_column(Float)
    workers: Mapped[int] = mapped_column(Integer)
    tags: Mapped[dict[str, str]] = mapped_column(Json)
    benchlab_version: Mapped[str] = mapped_column(Text)
    git_commit: Mapped[str | None] = mapped_column(Text)
    suite_id: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(Ts)
    ended_at: Mapped[datetime | None] = mapped_column(Ts)
    status: Mapped[str] = mapped_column(Text)
    total_requests: Mapped[int | None] = mapped_column(BigInteger)
    total_failures: Mapped[int | None] = mapped_column(BigInteger)
    stored_samples: Mapped[int | None] = mapped_column(BigInteger)
    spooled_samples: Mapped[int | None] = mapped_column(BigInteger)
    replayed_samples: Mapped[int | None] = mapped_column(BigInteger)
    rps: Mapped[float | None] = mapped_column(Float)
    error_rate: Mapped[float | None] = mapped_column(Float)
    mean_ms: Mapped[float | None] = mapped_column(Float)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p95_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    max_ms: Mapped[float | None] = mapped_column(Float)
    runner_host: Mapped[str | None] = mapped_column(Text)
    """Host name of the benchlab process that runs it."""
    runner_pid: Mapped[int | None] = mapped_column(Integer)
    """Its pid on that host."""
    runner_started_at: Mapped[datetime | None] = mapped_column(Ts)
    """When that process started (tells a reused pid from the runner)."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(Ts)
    """Refreshed by the run's writers while it runs; a stale one on another host means the runner died."""


class RequestSample(Base):
    """One request Locust made, exactly as timed (milliseconds, unrounded).

    Append-only and bulk-loaded: no surrogate key and no foreign key, because on this machine each
    costs a third or more of COPY throughput. The mapper identifies a row by (run_id, ts, worker, name).
    """

    __tablename__ = "request_samples"
    __table_args__ = (
        Index("ix_request_samples_run_ts", "run_id", "ts"),
        # Postgres only: a BRIN costs next to nothing per row; on SQLite a second B-tree would add ~30% per insert.
        Index("ix_request_samples_ts", "ts", postgresql_using="brin").ddl_if(dialect="postgresql"),
    )

    run_id: Mapped[int] = mapped_column(Id)
    ts: Mapped[datetime] = mapped_column(Ts)
    name: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    response_time_ms: Mapped[float] = mapped_column(Float)
    response_length: Mapped[int | None] = mapped_column(BigInteger)
    request_length: Mapped[int | None] = mapped_column(BigInteger)
    status_code: Mapped[int | None] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)

    __mapper_args__ = {"primary_key": [run_id, ts, worker, name]}


class SampleBatch(Base):
    """A stored batch of request samples, by the id its writer gave it, committed with the batch's rows.

    A batch written again (a retry after a lost commit acknowledgement, a replay after a crash, the fallback
    resending what a dead writer child never confirmed) finds its id here and is skipped: stored once, not twice.
    """

    __tablename__ = "sample_batches"

    run_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    batch: Mapped[str] = mapped_column(Text, primary_key=True)


class RunEvent(Base):
    """Something that happened during a run: start, stop, user-count changes, shape stages, notes."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_ts", "run_id", "ts"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(Ts)
    kind: Mapped[str] = mapped_column(Text)
    user_count: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json)


class ResourceSample(Base):
    """One psutil reading of a watched service (its processes summed, children included)."""

    __tablename__ = "resource_samples"
    __table_args__ = (
        Index("ix_resource_samples_run_ts", "run_id", "ts"),
        Index("ix_resource_samples_service_ts", "service", "ts"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(Id, ForeignKey("runs.id", ondelete="SET NULL"))
    ts: Mapped[datetime] = mapped_column(Ts)
    service: Mapped[str] = mapped_column(Text)
    process_count: Mapped[int] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    cpu_percent_total: Mapped[float | None] = mapped_column(Float)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    threads: Mapped[int | None] = mapped_column(Integer)
    open_fds: Mapped[int | None] = mapped_column(Integer)
    disk_read_bps: Mapped[float | None] = mapped_column(Float)
    disk_write_bps: Mapped[float | None] = mapped_column(Float)
    net_rx_bps: Mapped[float | None] = mapped_column(Float)
    net_tx_bps: Mapped[float | None] = mapped_column(Float)


class QueueSample(Base):
    """One reading of a queue: depth, rates, processing time, errors and backlog age."""

    __tablename__ = "queue_samples"
    __table_args__ = (
        Index("ix_queue_samples_run_ts", "run_id", "ts"),
        Index("ix_queue_samples_queue_ts", "queue", "ts"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(Id, ForeignKey("runs.id", ondelete="SET NULL"))
    ts: Mapped[datetime] = mapped_column(Ts)
    queue: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(Text)
    length: Mapped[int | None] = mapped_column(BigInteger)
    consumers: Mapped[int | None] = mapped_column(Integer)
    publish_rate: Mapped[float | None] = mapped_column(Float)
    consume_rate: Mapped[float | None] = mapped_column(Float)
    processing_seconds: Mapped[float | None] = mapped_column(Float)
    error_rate: Mapped[float | None] = mapped_column(Float)
    backlog_age_seconds: Mapped[float | None] = mapped_column(Float)


VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")
"""Overall verdicts of a comparison."""
CHANGE_KINDS = ("relative", "absolute")
"""How a result's change is expressed: a fraction of the baseline, or a difference in the metric's unit."""


class Comparison(Base):
    """One stored comparison of a candidate version against a baseline, with its overall verdict."""

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint(
            "overall IN ('regression', 'improvement', 'unchanged', 'inconclusive')", name="comparisons_overall_check"
        ),
        Index(
            "ix_comparisons_versions", "baseline_version", "candidate_version", "scenario", "test_type", "created_at"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(Ts)
    scenario: Mapped[str] = mapped_column(Text)
    test_type: Mapped[str] = mapped_column(Text)
    baseline_version: Mapped[str] = mapped_column(Text)
    candidate_version: Mapped[str] = mapped_column(Text)
    baseline_run_ids: Mapped[list[int]] = mapped_column(Json)
    candidate_run_ids: Mapped[list[int]] = mapped_column(Json)
    method: Mapped[str] = mapped_column(Text)
    """Name of the statistical method."""
    overall: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(Json)
    """Method, assumptions, settings and warnings."""


class ComparisonResult(Base):
    """One metric of one endpoint (or of all, `endpoint` = '') in a stored comparison, with its verdict."""

    __tablename__ = "comparison_results"
    __table_args__ = (
        CheckConstraint("change_kind IN ('relative', 'absolute')", name="comparison_results_change_kind_check"),
        Index("ix_comparison_results_comparison", "comparison_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(Id, ForeignKey("comparisons.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Text)
    http_method: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    """mean_ms, p50_ms, p95_ms, p99_ms, rps, error_rate, cpu_percent, rss_bytes or queue_length."""
    subject: Mapped[str | None] = mapped_column(Text)
    """The service or queue of a resource metric."""
    baseline_value: Mapped[float | None] = mapped_column(Float)
    candidate_value: Mapped[float | None] = mapped_column(Float)
    change: Mapped[float | None] = mapped_column(Float)
    change_kind: Mapped[str] = mapped_column(Text)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    noise_floor: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    q_value: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(Text)
    gating: Mapped[bool] = mapped_column(Boolean)


class NoiseFloor(Base):
    """Run-to-run spread of one metric of one version, measured over repeated runs."""

    __tablename__ = "noise_floors"
    __table_args__ = (
        CheckConstraint("change_kind IN ('relative', 'absolute')", name="noise_floors_change_kind_check"),
        Index("ix_noise_floors_lookup", "app_version", "scenario", "test_type", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(Ts)
    app_version: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    test_type: Mapped[str] = mapped_column(Text)
    endpoint: Mapped[str] = mapped_column(Text)
    http_method: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    change_kind: Mapped[str] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer)
    run_ids: Mapped[list[int]] = mapped_column(Json)
    mean_value: Mapped[float] = mapped_column(Float)
    spread: Mapped[float] = mapped_column(Float)
    """sd of ln(value) across runs for relative metrics; sd of the value for absolute ones."""


# ---------------------------------------------------------------------------------------------- rollups
# Written by `metrics.store.rollup` when a run finishes, so dashboards and long histories never scan raw samples.


class RunRollup(Base):
    """A run whose rollups are written, and when its raw request samples were pruned (`benchlab prune`)."""

    __tablename__ = "run_rollups"

    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(Ts)
    samples: Mapped[int] = mapped_column(BigInteger)
    """Request samples the rollups were computed from."""
    pruned_at: Mapped[datetime | None] = mapped_column(Ts)
    """Set when the raw request samples were deleted; the rollups stay."""
    pruned_samples: Mapped[int | None] = mapped_column(BigInteger)


class EndpointRollup(Base):
    """Exact statistics of one endpoint of a run over all its samples; name = method = '' for all endpoints."""

    __tablename__ = "endpoint_rollups"

    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    method: Mapped[str] = mapped_column(Text, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(BigInteger)
    mean_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float)
    p75_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    p95_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    p999_ms: Mapped[float] = mapped_column(Float)
    min_ms: Mapped[float] = mapped_column(Float)
    max_ms: Mapped[float] = mapped_column(Float)
    response_bytes: Mapped[int] = mapped_column(BigInteger)
    request_bytes: Mapped[int] = mapped_column(BigInteger)
    first_ts: Mapped[datetime] = mapped_column(Ts)
    last_ts: Mapped[datetime] = mapped_column(Ts)
    rps: Mapped[float | None] = mapped_column(Float)
    """Requests per second of the run's duration (ended_at - started_at)."""
    status_counts: Mapped[dict[str, int]] = mapped_column(Json)
    """Status code as text ("none": no response) → requests."""


class WindowRollup(Base):
    """One endpoint of a run in one 10 s window (starting at a multiple of 10 epoch seconds), exact."""

    __tablename__ = "window_rollups"
    __table_args__ = (Index("ix_window_rollups_ts", "ts"),)

    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    method: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[datetime] = mapped_column(Ts, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(BigInteger)
    sum_ms: Mapped[float] = mapped_column(Float)
    min_ms: Mapped[float] = mapped_column(Float)
    max_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    p95_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)


class OutcomeRollup(Base):
    """Requests of one endpoint of a run in one 10 s window with the same status code, outcome and error."""

    __tablename__ = "outcome_rollups"
    __table_args__ = (
        Index("ix_outcome_rollups_run", "run_id"),
        Index("ix_outcome_rollups_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(Ts)
    name: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    requests: Mapped[int] = mapped_column(BigInteger)
    last_ts: Mapped[datetime] = mapped_column(Ts)


class LatencyRollup(Base):
    """Requests of one endpoint of a run (name = method = '' for all) per latency bucket: mergeable across runs.

    bucket = floor(ln(max(ms, 0.001)) x 100): buckets 1 % wide. A percentile over several runs pooled takes each
    of its two order statistics as its bucket's geometric middle, exp((bucket + 0.5) / 100), so within 0.5 %.
    """

    __tablename__ = "latency_rollups"

    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    method: Mapped[str] = mapped_column(Text, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
