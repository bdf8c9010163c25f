"""The seed framework's `BaselineCollector` and `PerformanceBaseline`, over benchlab's runs and store.

A baseline is one stored run, in the seed's baseline format. Collecting one parses its options with the CLI's
own parser (`benchlab run`'s flags and env vars), runs it with `runners.run.run_once` and builds the baseline
with `runners.baseline.build`, the code behind `benchlab export --baseline-json`.

Heavy modules (Locust, SQLAlchemy) are imported when first used: `import benchlab` stays cheap, and Locust's
gevent monkey-patching happens before anything opens a socket.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchlab.metrics.store.database import Store
    from benchlab.metrics.store.model import Run

DEFAULT_HOST = "http://localhost:8000"
"""The seed's target when neither the collector, TARGET_HOST nor the user class names one."""


@dataclass(frozen=True, kw_only=True)
class PerformanceBaseline:
    """One run in the seed's baseline format (`to_dict()` is the file); `run_id` is its stored run, if any."""

    operation: str
    environment: str
    version: str
    timestamp: str
    response_time_mean: float
    response_time_median: float
    response_time_p95: float
    response_time_p99: float
    response_time_max: float
    requests_per_second: float
    concurrent_users: int
    total_requests: int
    error_rate: float
    error_count: int
    test_duration: float
    raw_data: dict[str, Any] = field(repr=False)
    run_id: int | None = None
    """Store id of the run (None for a baseline read from a file); not part of the file."""

    def to_dict(self) -> dict[str, Any]:
        """Exactly the seed's fields."""
        data = asdict(self)
        data.pop("run_id")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], run_id: int | None = None) -> PerformanceBaseline:
        """From the seed's fields (checked: exactly those)."""
        from benchlab.runners.analysis.baseline import validate

        validate(data, "baseline")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name != "run_id"}, run_id=run_id)

    @classmethod
    def load(cls, path: str | Path) -> PerformanceBaseline:
        """Read a baseline file (BadInput, a ValueError, for a file not in the seed's format)."""
        from benchlab.runners.baseline import read

        return cls.from_dict(read(Path(path)))

    def save(self, path: str | Path) -> Path:
        """Write the baseline file."""
        from benchlab.runners.baseline import write

        return write(self.to_dict(), Path(path))


class BaselineCollector:
    """Collects baselines (runs of the seed's baseline shape by default) into the store, and reads them back.

    `host` defaults to TARGET_HOST, then the user class's own `host`, then http://localhost:8000; `db` to
    BENCHLAB_DB_URL, then `sqlite:///results/benchlab.db`, as for `benchlab run`. `options` are further flags
    of `benchlab run` (`--app-version 1.2`, `--slo-p95-ms 500`); `results_dir` also writes each baseline file.
    """

    def __init__(
        self,
        host: str | None = None,
        db: str | None = None,
        *,
        results_dir: str | Path | None = None,
        options: Sequence[str] = (),
        quiet: bool = True,
    ) -> None:
        self.host = host or os.environ.get("TARGET_HOST") or None
        self.db = db or os.environ.get("BENCHLAB_DB_URL") or None
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.options = tuple(options)
        self.quiet = quiet
        self.last: PerformanceBaseline | None = None
        self._classes_of: dict[int, list[type]] = {}
        """The baseline last collected or fetched; `collect_baseline()` without a user class repeats it."""

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The collector's store, opened with the CLI's settings code."""
        from benchlab.metrics.store.database import Store, StoreUnavailable
        from benchlab.runners.cli import store_settings
        from benchlab.runners.errors import RunFailed

        settings = store_settings(argparse.Namespace(db=self.db, spool_dir=os.environ.get("BENCHLAB_SPOOL_DIR")))
        try:
            opened = Store(settings=settings).open()
        except StoreUnavailable as exc:
            raise RunFailed(str(exc)) from None
        try:
            yield opened
        finally:
            opened.close()

    def collect_baseline(
        self,
        user_class: type | Sequence[type] | EllipsisType | None = None,
        users: int | None = None,
        spawn_rate: float | None = None,
        run_time: float | str | None = None,
        *,
        test_type: str = "baseline",
        operation: str | None = None,
        options: Sequence[str] = (),
    ) -> PerformanceBaseline:
        """Run the user class(es) against the target, store the run, and return its baseline.

        Without a user class (or with `...`), repeat the last baseline this collector collected or fetched:
        its locustfile, classes, users, spawn rate and run time, unless given. `run_time` is seconds (or
        Locust syntax such as "5m"); users default to 10, the spawn rate to 1, the run time to 60 s.
        """
        import locust  # noqa: F401  - gevent monkey-patching before sockets and ssl

        classes, defaults = self._classes(user_class)
        users = users if users is not None else defaults.get("users", 10)
        spawn_rate = spawn_rate if spawn_rate is not None else defaults.get("spawn_rate", 1.0)
        run_time = run_time if run_time is not None else defaults.get("run_time", 60)
        run_id = self._run(classes, users, spawn_rate, run_time, test_type, operation, options)
        self._classes_of[run_id] = classes
        return self._remember(run_id)

    def get_latest_baseline(self, operation: str) -> PerformanceBaseline | None:
        """The newest completed run of an operation (`content_generation` or `content_generation_baseline`)."""
        from benchlab.runners.baseline import runs_of_operation

        with self.store() as store:
            runs = runs_of_operation(store, operation, limit=1000)
        return self._remember(runs[0].id) if runs else None

    def runs(self, operation: str, days: float | None = None) -> list[Run]:
        """Completed runs of an operation within the last `days`, oldest first."""
        from benchlab.runners.baseline import runs_of_operation

        with self.store() as store:
            return list(reversed(runs_of_operation(store, operation, days=days)))

    def baseline(self, run_id: int) -> PerformanceBaseline:
        """The baseline of any stored run."""
        from benchlab.runners.baseline import build

        with self.store() as store:
            return PerformanceBaseline.from_dict(build(store, run_id), run_id=run_id)

    def _remember(self, run_id: int) -> PerformanceBaseline:
        self.last = self.baseline(run_id)
        return self.last

    def _classes(self, user_class: type | Sequence[type] | EllipsisType | None) -> tuple[list[type], dict[str, Any]]:
        """The user classes to run, and the defaults of a repeated baseline."""
        if user_class is None or user_class is Ellipsis:
            return self._repeat()
        if isinstance(user_class, type):
            return [user_class], {}
        return list(user_class), {}

    def _repeat(self) -> tuple[list[type], dict[str, Any]]:
        from benchlab.runners.swarm import load_users

        if self.last is None or self.last.run_id is None:
            raise ValueError("collect_baseline() without a user class repeats the last baseline, and there is none")
        with self.store() as store:
            run = store.get_run(self.last.run_id)
        assert run is not None
        known = self._classes_of.get(run.id)
        classes = known or load_users(Path(run.locustfile), tuple(run.user_classes or ()))
        defaults = {"users": run.users, "spawn_rate": run.spawn_rate, "run_time": run.planned_duration_s or 60}
        return list(classes), defaults

    def _run(
        self,
        classes: list[type],
        users: int,
        spawn_rate: float,
        run_time: float | str,
        test_type: str,
        operation: str | None,
        options: Sequence[str],
    ) -> int:
        """One run through `benchlab run`'s parser and `runners.run`; its run id. RunFailed when it failed."""
        from benchlab.runners import cli
        from benchlab.runners.baseline import write_runs
        from benchlab.runners.errors import RunFailed

        spec = cli.build_run_spec(self._parse(classes, users, spawn_rate, run_time, test_type, operation, options))
        results = self._execute(spec, classes)
        failed = next((r for r in results if r.exit_code != 0), None)
        if failed is not None:
            raise RunFailed(failed.error or f"run {failed.totals.run_id} {failed.totals.status}")
        if self.results_dir is not None:
            write_runs(spec.store, [r.totals.run_id for r in results], self.results_dir)
        return results[-1].totals.run_id

    def _parse(
        self,
        classes: list[type],
        users: int,
        spawn_rate: float,
        run_time: float | str,
        test_type: str,
        operation: str | None,
        options: Sequence[str],
    ) -> argparse.Namespace:
        from benchlab.runners.analysis.baseline import operation_name
        from benchlab.runners.cli import build_parser

        if not classes:
            raise ValueError("no user class to run")
        try:
            source = inspect.getsourcefile(classes[0]) or "<python>"
        except TypeError:  # defined where there is no source file (exec, a REPL)
            source = "<python>"
        host = self.host or getattr(classes[0], "host", None) or DEFAULT_HOST
        scenario = operation or operation_name(":" + "+".join(c.__name__ for c in classes))
        seconds = run_time if isinstance(run_time, str) else f"{max(1, round(float(run_time)))}s"
        argv = ["run", "-f", source, "--host", host, "-u", str(users), "-r", str(spawn_rate), "-t", seconds]
        argv += ["--test-type", test_type, "--scenario", scenario]
        argv += [arg for c in classes for arg in ("--user-class", c.__name__)]
        argv += ["--db", self.db] if self.db else []
        argv += ["-q"] if self.quiet else []
        return build_parser().parse_args([*argv, *self.options, *options])

    @staticmethod
    def _execute(spec: Any, classes: list[type]) -> list[Any]:
        """`runners.run` with these classes (defined in Python, not loaded from a file)."""
        from benchlab.runners.run import execute

        return execute(spec, classes)
