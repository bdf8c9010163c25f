"""The metrics store: run lifecycle and bulk writes (COPY on Postgres, batched inserts on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from benchlab.metrics.settings import RunMeta, StoreSettings
from benchlab.metrics.store.bulk import EventRow, first_line, write_batch
from benchlab.metrics.store.liveness import is_interrupted, owner_columns
from benchlab.metrics.store.migration import upgrade
from benchlab.metrics.store.model import Base, QueueSample, RequestSample, ResourceSample, Run, RunEvent
from benchlab.metrics.store.sample import Sample

try:
    BENCHLAB_VERSION = version("benchlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    BENCHLAB_VERSION = "unknown"


_SCHEMA_LOCK = 0x62656E63686C6162 >> 1
"""Postgres advisory lock key held while a process creates the store's tables ("benchlab", shifted to fit)."""


class BadStoreUrl(ValueError):
    """The DB URL cannot be parsed or names a database benchlab does not support."""


class StoreUnavailable(RuntimeError):
    """The store could not be reached or initialised."""


def parse_url(url: str) -> URL:
    """Parse and check a DB URL without connecting: only SQLite and Postgres are supported."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise BadStoreUrl(f"bad DB URL {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BadStoreUrl(f"bad DB URL {url!r}: backend {backend!r} is not sqlite or postgresql")
    if backend == "postgresql":
        if "+" in parsed.drivername and parsed.drivername != "postgresql+psycopg2":
            raise BadStoreUrl(f"bad DB URL {url!r}: only the psycopg2 driver is supported")
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadStoreUrl(f"bad DB URL {url!r}: SQLite needs a file path (sqlite:///path/to/file.db)")
    return parsed


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """Engine for a checked URL, tuned for failure detection (Postgres) or concurrent writers (SQLite)."""
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        args = {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "application_name": "benchlab",
        }
        return create_engine(parsed, pool_pre_ping=True, connect_args=args)
    except NoSuchModuleError as exc:
        raise BadStoreUrl(f"bad DB URL {url!r}: {exc}") from None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Store:
    """All reads and writes of benchlab data go through here."""

    def __init__(self, *, settings: StoreSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        """URL and spool directory."""
        self.engine = engine or make_engine(settings.url)
        """SQLAlchemy engine (thread-safe pool)."""
        self.is_postgres = self.engine.dialect.name == "postgresql"
        """True when writes use COPY."""

    def open(self) -> Store:
        """Create missing tables (and columns); raise StoreUnavailable when the database cannot be reached."""
        try:
            with self.engine.begin() as conn:
                if self.is_postgres:  # concurrent CREATE TABLEs of one name collide in pg_type: one opener at a time
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                Base.metadata.create_all(conn)
            upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"metrics store {self.engine.url!r} unreachable: {first_line(exc)}") from None
        return self

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, meta: RunMeta, *, started_at: datetime | None = None) -> int:
        """Insert a `running` run owned by this process (see `liveness`) and return its id."""
        now = datetime.now(UTC)
        values = {
            "scenario": meta.scenario,
            "test_type": meta.test_type,
            "app_version": meta.app_version,
            "environment": meta.environment,
            "host": meta.host,
            "locustfile": meta.locustfile,
            "user_classes": list(meta.user_classes),
            "users": meta.users,
            "spawn_rate": meta.spawn_rate,
            "planned_duration_s": meta.planned_duration_s,
            "workers": meta.workers,
            "tags": dict(meta.tags),
            "benchlab_version": BENCHLAB_VERSION,
            "git_commit": meta.git_commit,
            "suite_id": meta.suite_id,
            "started_at": started_at or now,
            "status": "running",
            **owner_columns(now),
        }
        with self.engine.begin() as conn:
            run_id = conn.execute(insert(Run).values(**values).returning(Run.id)).scalar_one()
        return int(run_id)

    def finish_run(
        self, run_id: int, *, status: str, summary: dict[str, Any], ended_at: datetime | None = None
    ) -> bool:
        """Mark a run ended with its status and summary columns; `interrupted` only while it is still `running`."""
        query = update(Run).where(Run.id == run_id)
        if status == "interrupted":
            query = query.where(Run.status == "running")
        with self.engine.begin() as conn:
            done = conn.execute(query.values(status=status, ended_at=ended_at or datetime.now(UTC), **summary))
        if done.rowcount and self.is_postgres:
            from benchlab.metrics.store.rollup import write_rollup  # rollup imports this module

            # Grafana reads these, never the raw samples. Grafana reads Postgres only: on SQLite, where the rollup
            # would cost the load machine ~5 µs of CPU per sample, `benchlab prune` and `benchlab rollup` write it.
            write_rollup(self, run_id)
        return bool(done.rowcount)

    def heartbeat(self, run_id: int) -> bool:
        """Tell readers a `running` run is alive; best effort: False when the store refused."""
        query = update(Run).where(Run.id == run_id, Run.status == "running").values(heartbeat_at=datetime.now(UTC))
        try:
            with self.engine.begin() as conn:
                conn.execute(query)
        except SQLAlchemyError:
            return False
        return True

    def get_run(self, run_id: int) -> Run | None:
        """One run, detached from the session."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Run.__table__).where(Run.id == run_id)).mappings().first()
        return Run(**row) if row else None

    def list_runs(self, limit: int = 50) -> list[Run]:
        """Most recent runs first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Run.__table__).order_by(Run.id.desc()).limit(limit)).mappings().all()
        return [Run(**row) for row in rows]

    def running_run_id(self) -> int | None:
        """Id of the most recent run still in progress, if any (runs whose runner died are not)."""
        query = select(Run.__table__).where(Run.status == "running").order_by(Run.id.desc()).limit(20)
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                if not is_interrupted(Run(**row)):
                    return int(row["id"])
        return None

    # -- writes -------------------------------------------------------------------------------
    def write_samples(self, run_id: int, worker: str | None, rows: Sequence[Sample], batch: str | None = None) -> None:
        """Store a batch of request samples in one transaction, unless its id `batch` is stored already."""
        if not rows:
            return
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            write_batch(cur, run_id, worker, rows, batch, sqlite=not self.is_postgres)
            cur.close()
            raw.commit()
        except BaseException:
            raw.invalidate()
            raise
        finally:
            raw.close()

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Store run events."""
        if not rows:
            return
        values = [
            {"run_id": r, "ts": _utc(ts), "kind": k, "user_count": u, "message": m, "data": d}
            for r, ts, k, u, m, d in rows
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(RunEvent), values)

    def write_resource_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store sidecar resource samples (dicts of `resource_samples` columns)."""
        self._insert(ResourceSample, rows)

    def write_queue_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store queue probe samples (dicts of `queue_samples` columns)."""
        self._insert(QueueSample, rows)

    def _insert(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(model), list(rows))

    # -- reads --------------------------------------------------------------------------------
    def count_samples(self, run_id: int) -> int:
        """Rows stored for a run."""
        query = select(func.count()).select_from(RequestSample).where(RequestSample.run_id == run_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_samples(self, run_id: int, batch: int = 10_000) -> Iterator[dict[str, Any]]:
        """Every stored sample of a run in time order, streamed."""
        table = RequestSample.__table__
        query = select(table).where(table.c.run_id == run_id).order_by(table.c.ts, table.c.worker)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result.mappings():
                yield dict(row)

    def events(self, run_id: int) -> list[dict[str, Any]]:
        """Run events in time order."""
        table = RunEvent.__table__
        query = select(table).where(table.c.run_id == run_id).order_by(table.c.ts, table.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
