"""Typed settings of the application's components; built only by `benchlab.runners.cli` from flags and env vars."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchlab.metrics.settings import CollectorSettings, RunMeta, StoreSettings
from benchlab.runners.analysis.slo import DEFAULT_SLOS, SLOSet
from benchlab.runners.analysis.threshold import Thresholds


@dataclass(frozen=True, kw_only=True)
class TargetSettings:
    """How `benchlab target` serves the demo service."""

    version: str = "1.0"
    """App version the target reports; selects the default behaviour profile."""
    profile: str | None = None
    """Behaviour profile name (`1.0`, `1.1`, `leaky`); None means the profile named like the version."""
    bind: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8000
    """TCP port to listen on."""
    redis_url: str | None = None
    """Redis URL for the job queue (REDIS_URL); None means an in-process queue."""
    queue_prefix: str = "benchlab:demo:"
    """Key prefix of every Redis key the target touches."""
    slowdown: float | None = None
    """Override of the profile's content-generation cost multiplier."""
    leak_kb: float | None = None
    """Override of the profile's memory kept per request, in KiB."""
    delay_ms: float | None = None
    """Override of the profile's added wait on every /api/ request, in ms (cooperative: /health is not slowed)."""
    token_ttl: float = 30.0
    """Lifetime of access tokens in seconds; refresh tokens live ten times as long."""


@dataclass(frozen=True, kw_only=True)
class ShapeSettings:
    """Parameters of the load shape chosen by --test-type."""

    test_type: str = "load"
    """baseline | load | stress | spike | soak."""
    users: int = 10
    """Users for the run; the stress maximum and the spike's base level."""
    spawn_rate: float = 1.0
    """Users started (or stopped) per second when the level changes."""
    run_time: float = 60.0
    """Planned duration in seconds."""
    stress_steps: int = 5
    """Number of user steps in a stress run."""
    slo_p95_ms: float = 1000.0
    """Stress stops stepping once the p95 of the last 10 s is above this."""
    slo_error_rate: float = 0.05
    """Stress stops stepping once the failure ratio is above this."""
    spike_factor: float = 5.0
    """Spike height as a multiple of the users."""
    test_type_given: bool = True
    """--test-type or TEST_TYPE was given; when not, a locustfile's own LoadTestShape drives the run."""
    run_time_given: bool = True
    """--run-time or RUN_TIME was given; it then also stops a run driven by a locustfile's own LoadTestShape."""


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    """What the CLI prints."""

    json: bool = False
    """Print one JSON object as the last stdout line."""
    quiet: bool = False
    """No live progress line."""
    verbose: bool = False
    """Debug logging."""
    report_dir: Path | None = Path("results/reports")
    """Where each run's HTML report goes (--report-dir); None with --no-report."""
    results_dir: Path | None = None
    """Where each run's baseline JSON goes (--results-dir), as DIR/<test type>/<operation>_<type>_<time>.json."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything `benchlab run` needs, parsed once from flags and env vars."""

    meta: RunMeta
    """What the store records about the run."""
    locustfile: Path
    """Resolved path of the Locust file."""
    store: StoreSettings
    """DB URL and spool directory."""
    shape: ShapeSettings
    """Load shape parameters; `shape.test_type` may be `complete` (five runs in turn)."""
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    """Flush and retry intervals of the request collector."""
    output: OutputSettings = field(default_factory=OutputSettings)
    """What is printed."""
    health_check: bool = True
    """Check the target before load starts."""
    health_path: str = "/health"
    """Path of the health check (falls back to GET /)."""
    metrics_port: int | None = None
    """Port of the runner's Prometheus /metrics during the run (None: not served)."""
    metrics_bind: str = "127.0.0.1"
    """Address the runner's /metrics listens on."""
    monitor: tuple[str, ...] = ()
    """Sidecar target specs the runner samples itself (--monitor-pid / --monitor-process)."""
    judge: JudgeSettings | None = None
    """SLO checks and the gate after each run (baseline version, thresholds, SLOs); None: defaults, no gate."""
    master: MasterSettings | None = None
    """`--master`: Locust's master only, for workers started elsewhere with `benchlab worker`; None: not."""


@dataclass(frozen=True, kw_only=True)
class MasterSettings:
    """`benchlab run --master`: where Locust's master listens and how many `benchlab worker`s it waits for."""

    bind: str = "127.0.0.1"
    """Address the master listens on (BENCHLAB_MASTER_BIND); 0.0.0.0 for workers on other machines."""
    port: int = 5557
    """Locust's master port (BENCHLAB_MASTER_PORT)."""
    expect_workers: int = 1
    """Workers that must connect before the load starts (BENCHLAB_EXPECT_WORKERS)."""
    connect_timeout: float = 60.0
    """Seconds to wait for them; then the run fails (exit 1)."""


@dataclass(frozen=True, kw_only=True)
class RemoteWorkerSettings:
    """`benchlab worker`: one Locust worker joining a master on another machine; the rest comes from the master."""

    locustfile: Path
    """The same Locust file as the master's, present on this machine."""
    master_host: str
    """Host of the master (BENCHLAB_MASTER_HOST)."""
    master_port: int = 5557
    """Locust's master port (BENCHLAB_MASTER_PORT)."""
    db_url: str | None = None
    """This machine's URL of the master's Postgres store (--db); None: the URL the master uses."""
    spool_dir: Path = Path("results/spool")
    """Where batches wait on this machine while the store is unreachable (BENCHLAB_SPOOL_DIR)."""
    relay: bool = False
    """Send samples to the master, which stores them, even when the store is Postgres (always for SQLite)."""


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """`benchlab demo`: the demo target at two versions, a short baseline run against each, and the change."""

    store: StoreSettings = field(default_factory=StoreSettings)
    """Where the two runs are stored (the embedded SQLite default unless told otherwise)."""
    locustfile: Path = Path("content_generation_test.py")
    """Load test to drive; a bare name is looked up in load_tests/."""
    versions: tuple[str, str] = ("1.0", "1.1")
    """Baseline version, then the candidate."""
    users: int = 50
    """Concurrent users of each run."""
    run_time: float = 30.0
    """Seconds of each run."""
    quiet: bool = False
    """No live progress line."""


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """What one `--workers` child process needs; passed to `python -m benchlab.runners.worker` as JSON."""

    locustfile: str
    """Path of the Locust file."""
    user_classes: tuple[str, ...]
    """User classes to run; empty means every class of the file."""
    host: str
    """Target base URL; '' when not given (the user classes' own hosts, or no HTTP at all)."""
    run_id: int
    """The master's run id, under which this worker stores its samples."""
    worker: str
    """Worker label stored with each sample (w1, w2, ...)."""
    master_port: int
    """Port of the Locust master on 127.0.0.1."""
    db_url: str
    """Store URL."""
    spool_dir: str
    """Spool directory."""
    tally: bool = False
    """Keep a tally for the master's /metrics."""

    def to_json(self) -> str:
        """The JSON argument of the worker process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        """Parse the JSON argument; the worker's only input."""
        data = json.loads(text)
        return cls(**(data | {"user_classes": tuple(data["user_classes"])}))

    @property
    def store(self) -> StoreSettings:
        """Store settings of this worker's writer."""
        return StoreSettings(url=self.db_url, spool_dir=Path(self.spool_dir))


@dataclass(frozen=True, kw_only=True)
class JudgeSettings:
    """What `compare`, the gate of `run` and `calibrate` judge, and how."""

    version: str | None = None
    """Candidate version (its latest completed runs)."""
    baseline_version: str | None = None
    """Baseline version (BASELINE_VERSION)."""
    candidate_runs: tuple[int, ...] = ()
    """Candidate run ids, instead of a version."""
    baseline_runs: tuple[int, ...] = ()
    """Baseline run ids, instead of a version."""
    scenario: str | None = None
    """Scenario of the runs; default: that of the latest candidate run."""
    test_type: str | None = None
    """Test type of the runs; default: that of the latest candidate run."""
    runs: int = 1
    """How many of the latest completed runs of each version are pooled."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    """Regression thresholds (--thresholds FILE)."""
    slos: SLOSet = DEFAULT_SLOS
    """Success criteria (--slo FILE; the seed's table by default)."""
    window_s: float = 1.0
    """Window length of the evidence, in seconds."""
    warmup: float = 0.1
    """Fraction of each run (at most 30 s) left out as warm-up, besides its first and last windows."""
    replicates: int = 2000
    """Bootstrap replicates."""
    seed: int = 20240101
    """Seed of the resampling."""
    save: bool = True
    """Store the comparison."""
    fail_on_regression: bool = False
    """Exit 3 on a regression or an SLO breach (FAIL_ON_REGRESSION)."""
    fail_on_inconclusive: bool = False
    """Inconclusive gating metrics fail the gate too."""
