-- benchlab metrics store for Postgres: the same tables as metrics/store/model.py
-- (tests/integration/test_schema.py reflects a database built from this file and compares it with the models).
-- Mounted at /docker-entrypoint-initdb.d by docker-compose.benchmark.yml.

CREATE TABLE runs (
    id                 BIGSERIAL PRIMARY KEY,
    scenario           TEXT NOT NULL,
    test_type          TEXT NOT NULL,
    app_version        TEXT NOT NULL,
    environment        TEXT NOT NULL,
    host               TEXT NOT NULL,
    locustfile         TEXT NOT NULL,
    user_classes       JSONB NOT NULL,
    users              INTEGER NOT NULL,
    spawn_rate         DOUBLE PRECISION NOT NULL,
    planned_duration_s DOUBLE PRECISION,
    workers            INTEGER NOT NULL,
    tags               JSONB NOT NULL,
    benchlab_version   TEXT NOT NULL,
    git_commit         TEXT,
    suite_id           TEXT,
    started_at         TIMESTAMPTZ NOT NULL,
    ended_at           TIMESTAMPTZ,
    status             TEXT NOT NULL,
    total_requests     BIGINT,
    total_failures     BIGINT,
    stored_samples     BIGINT,
    spooled_samples    BIGINT,
    replayed_samples   BIGINT,
    rps                DOUBLE PRECISION,
    error_rate         DOUBLE PRECISION,
    mean_ms            DOUBLE PRECISION,
    p50_ms             DOUBLE PRECISION,
    p95_ms             DOUBLE PRECISION,
    p99_ms             DOUBLE PRECISION,
    max_ms             DOUBLE PRECISION,
    -- who runs it, for telling a dead run (SIGKILL, OOM, power cut) from a live one: see metrics/store/liveness.py
    runner_host        TEXT,
    runner_pid         INTEGER,
    runner_started_at  TIMESTAMPTZ,
    heartbeat_at       TIMESTAMPTZ,
    CONSTRAINT runs_status_check CHECK (status IN ('running', 'completed', 'aborted', 'failed', 'interrupted'))
);
CREATE INDEX ix_runs_version_started ON runs (app_version, started_at);
CREATE INDEX ix_runs_scenario_started ON runs (scenario, started_at);
CREATE INDEX ix_runs_suite ON runs (suite_id);

-- One row per request, response time in milliseconds as measured (never rounded).
-- Bulk-loaded with COPY: no surrogate key and no foreign key (each costs a third or more of the rate).
CREATE TABLE request_samples (
    run_id           BIGINT NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    name             TEXT NOT NULL,
    method           TEXT NOT NULL,
    response_time_ms DOUBLE PRECISION NOT NULL,
    response_length  BIGINT,
    request_length   BIGINT,
    status_code      INTEGER,
    success          BOOLEAN NOT NULL,
    error            TEXT,
    worker           TEXT
);
CREATE INDEX ix_request_samples_run_ts ON request_samples (run_id, ts);
CREATE INDEX ix_request_samples_ts ON request_samples USING brin (ts);

-- The ids of stored sample batches, committed with their rows: a batch written twice is stored once.
CREATE TABLE sample_batches (
    run_id BIGINT NOT NULL,
    batch  TEXT NOT NULL,
    PRIMARY KEY (run_id, batch)
);

CREATE TABLE run_events (
    id         BIGSERIAL PRIMARY KEY,
    run_id     BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL,
    user_count INTEGER,
    message    TEXT,
    data       JSONB
);
CREATE INDEX ix_run_events_run_ts ON run_events (run_id, ts);

-- psutil readings of the watched services; run_id is NULL for samples taken between runs.
CREATE TABLE resource_samples (
    id                BIGSERIAL PRIMARY KEY,
    run_id            BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    ts                TIMESTAMPTZ NOT NULL,
    service           TEXT NOT NULL,
    process_count     INTEGER NOT NULL,
    restarts          INTEGER NOT NULL,
    cpu_percent       DOUBLE PRECISION,
    cpu_percent_total DOUBLE PRECISION,
    rss_bytes         BIGINT,
    threads           INTEGER,
    open_fds          INTEGER,
    disk_read_bps     DOUBLE PRECISION,
    disk_write_bps    DOUBLE PRECISION,
    net_rx_bps        DOUBLE PRECISION,
    net_tx_bps        DOUBLE PRECISION
);
CREATE INDEX ix_resource_samples_run_ts ON resource_samples (run_id, ts);
CREATE INDEX ix_resource_samples_service_ts ON resource_samples (service, ts);

-- Queue probes (Redis lists, RabbitMQ queues, rates from the target's /metrics).
CREATE TABLE queue_samples (
    id                  BIGSERIAL PRIMARY KEY,
    run_id              BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    queue               TEXT NOT NULL,
    backend             TEXT NOT NULL,
    length              BIGINT,
    consumers           INTEGER,
    publish_rate        DOUBLE PRECISION,
    consume_rate        DOUBLE PRECISION,
    processing_seconds  DOUBLE PRECISION,
    error_rate          DOUBLE PRECISION,
    backlog_age_seconds DOUBLE PRECISION
);
CREATE INDEX ix_queue_samples_run_ts ON queue_samples (run_id, ts);
CREATE INDEX ix_queue_samples_queue_ts ON queue_samples (queue, ts);

-- Stored comparisons of a candidate version against a baseline: the overall verdict here, one row per
-- endpoint and metric in comparison_results (endpoint = '' and http_method = '' for all endpoints together).
CREATE TABLE comparisons (
    id                BIGSERIAL PRIMARY KEY,
    created_at        TIMESTAMPTZ NOT NULL,
    scenario          TEXT NOT NULL,
    test_type         TEXT NOT NULL,
    baseline_version  TEXT NOT NULL,
    candidate_version TEXT NOT NULL,
    baseline_run_ids  JSONB NOT NULL,
    candidate_run_ids JSONB NOT NULL,
    method            TEXT NOT NULL,
    overall           TEXT NOT NULL,
    details           JSONB NOT NULL,
    CONSTRAINT comparisons_overall_check CHECK (overall IN ('regression', 'improvement', 'unchanged', 'inconclusive'))
);
CREATE INDEX ix_comparisons_versions ON comparisons (baseline_version, candidate_version, scenario, test_type, created_at);

CREATE TABLE comparison_results (
    id              BIGSERIAL PRIMARY KEY,
    comparison_id   BIGINT NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
    endpoint        TEXT NOT NULL,
    http_method     TEXT NOT NULL,
    metric          TEXT NOT NULL,
    subject         TEXT,
    baseline_value  DOUBLE PRECISION,
    candidate_value DOUBLE PRECISION,
    change          DOUBLE PRECISION,
    change_kind     TEXT NOT NULL,
    ci_low          DOUBLE PRECISION,
    ci_high         DOUBLE PRECISION,
    threshold       DOUBLE PRECISION NOT NULL,
    noise_floor     DOUBLE PRECISION,
    p_value         DOUBLE PRECISION,
    q_value         DOUBLE PRECISION,
    verdict         TEXT NOT NULL,
    gating          BOOLEAN NOT NULL,
    CONSTRAINT comparison_results_change_kind_check CHECK (change_kind IN ('relative', 'absolute'))
);
CREATE INDEX ix_comparison_results_comparison ON comparison_results (comparison_id);

-- Run-to-run spread of a metric of one version (sd of ln(value) for relative metrics, of the value for absolute ones).
CREATE TABLE noise_floors (
    id          BIGSERIAL PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL,
    app_version TEXT NOT NULL,
    scenario    TEXT NOT NULL,
    test_type   TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    http_method TEXT NOT NULL,
    metric      TEXT NOT NULL,
    subject     TEXT,
    change_kind TEXT NOT NULL,
    runs        INTEGER NOT NULL,
    run_ids     JSONB NOT NULL,
    mean_value  DOUBLE PRECISION NOT NULL,
    spread      DOUBLE PRECISION NOT NULL,
    CONSTRAINT noise_floors_change_kind_check CHECK (change_kind IN ('relative', 'absolute'))
);
CREATE INDEX ix_noise_floors_lookup ON noise_floors (app_version, scenario, test_type, created_at);

-- Rollups, written by metrics/store/rollup.py when a run finishes: dashboards and long histories read these,
-- never the raw samples. `benchlab prune` deletes old runs' raw samples and keeps these (run_rollups.pruned_at).
CREATE TABLE run_rollups (
    run_id         BIGINT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    computed_at    TIMESTAMPTZ NOT NULL,
    samples        BIGINT NOT NULL,
    pruned_at      TIMESTAMPTZ,
    pruned_samples BIGINT
);

-- Exact statistics of each endpoint of a run over all its samples (name = method = '' for all endpoints).
CREATE TABLE endpoint_rollups (
    run_id         BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    method         TEXT NOT NULL,
    requests       BIGINT NOT NULL,
    failures       BIGINT NOT NULL,
    mean_ms        DOUBLE PRECISION NOT NULL,
    p50_ms         DOUBLE PRECISION NOT NULL,
    p75_ms         DOUBLE PRECISION NOT NULL,
    p90_ms         DOUBLE PRECISION NOT NULL,
    p95_ms         DOUBLE PRECISION NOT NULL,
    p99_ms         DOUBLE PRECISION NOT NULL,
    p999_ms        DOUBLE PRECISION NOT NULL,
    min_ms         DOUBLE PRECISION NOT NULL,
    max_ms         DOUBLE PRECISION NOT NULL,
    response_bytes BIGINT NOT NULL,
    request_bytes  BIGINT NOT NULL,
    first_ts       TIMESTAMPTZ NOT NULL,
    last_ts        TIMESTAMPTZ NOT NULL,
    rps            DOUBLE PRECISION,
    status_counts  JSONB NOT NULL,
    PRIMARY KEY (run_id, name, method)
);

-- Each endpoint of a run per 10 s window (ts = the window's start, a multiple of 10 epoch seconds), exact.
CREATE TABLE window_rollups (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    method   TEXT NOT NULL,
    ts       TIMESTAMPTZ NOT NULL,
    requests BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    sum_ms   DOUBLE PRECISION NOT NULL,
    min_ms   DOUBLE PRECISION NOT NULL,
    max_ms   DOUBLE PRECISION NOT NULL,
    p50_ms   DOUBLE PRECISION NOT NULL,
    p90_ms   DOUBLE PRECISION NOT NULL,
    p95_ms   DOUBLE PRECISION NOT NULL,
    p99_ms   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, name, method, ts)
);
CREATE INDEX ix_window_rollups_ts ON window_rollups (ts);

-- Requests per run, endpoint, 10 s window, status code, outcome and error message (status and error panels).
CREATE TABLE outcome_rollups (
    id          BIGSERIAL PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts          TIMESTAMPTZ NOT NULL,
    name        TEXT NOT NULL,
    method      TEXT NOT NULL,
    status_code INTEGER,
    success     BOOLEAN NOT NULL,
    error       TEXT,
    requests    BIGINT NOT NULL,
    last_ts     TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_outcome_rollups_run ON outcome_rollups (run_id);
CREATE INDEX ix_outcome_rollups_ts ON outcome_rollups (ts);

-- Requests per run, endpoint and latency bucket floor(ln(max(ms, 0.001)) * 100), 1 % wide: percentiles over
-- several runs pooled, to within 0.5 % (each order statistic as its bucket's geometric middle).
CREATE TABLE latency_rollups (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    method   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (run_id, name, method, bucket)
);
