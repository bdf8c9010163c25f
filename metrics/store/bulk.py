"""The store's write path over the bare DB-API: samples, run events and the heartbeat, without SQLAlchemy.

`Store` (SQLAlchemy) uses the same sample formatting. The writer child process uses `Bulk`, so that it starts
without importing SQLAlchemy: about half a second of CPU per run, and per worker, that the load machine keeps.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlab.metrics.store.sample import COLUMNS, Sample

EventRow = tuple[int, float, str, int | None, str | None, dict[str, Any] | None]
"""(run id, epoch s, kind, user count, message, data) of one run event."""
HEARTBEAT_S = 10.0
"""Seconds between heartbeats of a run's writer (see `liveness`)."""
# CSV with NULL as an unquoted empty field (COPY's default); strings are always quoted, so "" stays ''.
COPY_SQL = "COPY request_samples (run_id, worker, " + ", ".join(COLUMNS) + ") FROM STDIN WITH (FORMAT csv)"
INSERT_SQL = (
    "INSERT INTO request_samples (run_id, worker, " + ", ".join(COLUMNS) + ") VALUES (" + ", ".join("?" * 11) + ")"
)
_EVENT_COLUMNS = "run_id, ts, kind, user_count, message, data"
_CLAIM_SQLITE = "INSERT OR IGNORE INTO sample_batches (run_id, batch) VALUES (?, ?)"
_CLAIM_POSTGRES = "INSERT INTO sample_batches (run_id, batch) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_PG_CONNECT = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}
"""libpq settings that notice a lost server within seconds (the same as the SQLAlchemy engine's)."""


def first_line(exc: BaseException) -> str:
    """The first line of a DB error's message, for one-line reports."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Stamps:
    """Epoch seconds as stored text, UTC to the microsecond; each second's date and time is formatted once."""

    def __init__(self, suffix: str) -> None:
        self._suffix = suffix
        self._seconds: dict[int, str] = {}

    def __call__(self, ts: float) -> str:
        sec = int(ts)
        prefix = self._seconds.get(sec)
        if prefix is None:
            prefix = self._seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S.")
        return f"{prefix}{min(round((ts - sec) * 1e6), 999_999):06d}{self._suffix}"


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""').replace("\x00", "") + '"'


class CsvStream(io.TextIOBase):
    """File-like CSV of samples, formatted chunk by chunk as COPY reads, so the server parses while we format."""

    def __init__(self, run_id: int, worker: str | None, rows: Sequence[Sample], chunk: int = 5000) -> None:
        self._rows = rows
        self._pos = 0
        self._chunk = chunk
        self._head = f"{run_id},{'' if worker is None else _quote(worker)},"
        self._stamp = Stamps(suffix="+00")
        self._names: dict[tuple[str, str], str] = {}

    def read(self, size: int | None = -1) -> str:
        """Next chunk of CSV text; empty at the end."""
        end = min(self._pos + self._chunk, len(self._rows))
        if self._pos >= end:
            return ""
        head, stamp, names = self._head, self._stamp, self._names
        lines = []
        for ts, name, method, rt, resp_len, req_len, status, ok, error in self._rows[self._pos : end]:
            pair = names.get((name, method))
            if pair is None:
                pair = names[(name, method)] = f"{_quote(name)},{_quote(method)}"
            lines.append(
                f"{head}{stamp(ts)},{pair},{rt!r},{'' if resp_len is None else resp_len},"
                f"{'' if req_len is None else req_len},{'' if status is None else status},{'t' if ok else 'f'},"
                f"{'' if error is None else _quote(error)}\n"
            )
        self._pos = end
        return "".join(lines)


def sqlite_rows(run_id: int, worker: str | None, rows: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """Parameters of INSERT_SQL: timestamps as SQLAlchemy's SQLite DateTime stores them."""
    stamp = Stamps(suffix="")
    return [
        (run_id, worker, stamp(ts), name, method, rt, rx, tx, status, ok, error)
        for ts, name, method, rt, rx, tx, status, ok, error in rows
    ]


def claim_batch(cursor: Any, run_id: int, batch: str | None, *, sqlite: bool) -> bool:
    """Record a batch id in the caller's transaction; False when it is stored already (then write nothing).

    Rows and id commit together, so a batch whose commit acknowledgement was lost, written again, is skipped.
    A batch without an id (a spool file from an older benchlab) is always written.
    """
    if batch is None:
        return True
    cursor.execute(_CLAIM_SQLITE if sqlite else _CLAIM_POSTGRES, (run_id, batch))
    return bool(cursor.rowcount == 1)


def write_batch(
    cursor: Any, run_id: int, worker: str | None, rows: Sequence[Sample], batch: str | None, *, sqlite: bool
) -> None:
    """Claim the batch's id and write its rows through a DB-API cursor (the caller commits); nothing if claimed.

    SQLite: one prepared INSERT run by the driver's executemany (SQLAlchemy's per-row binding costs 3x).
    Postgres: COPY.
    """
    if not claim_batch(cursor, run_id, batch, sqlite=sqlite):
        return
    if sqlite:
        cursor.executemany(INSERT_SQL, sqlite_rows(run_id, worker, rows))
    else:
        copy_samples(cursor, run_id, worker, rows)


def copy_samples(cursor: Any, run_id: int, worker: str | None, rows: Sequence[Sample]) -> None:
    """COPY a batch into Postgres through a psycopg2 cursor (the caller commits)."""
    cursor.copy_expert(COPY_SQL, CsvStream(run_id, worker, rows), size=1 << 16)


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///path` URL (as SQLAlchemy reads it), or None for another backend."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite"):
        return None
    return rest[1:].split("?", 1)[0]


class Bulk:
    """A store connection for writes only: one DB-API connection, opened on first use and again after a failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        """A URL `metrics.store.database.parse_url` has accepted (SQLite or Postgres through psycopg2)."""
        self._path = sqlite_path(url)
        self._conn: Any = None

    def _connect(self) -> Any:
        if self._conn is None:
            if self._path is not None:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self._path, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA foreign_keys=ON")
            else:
                import psycopg2

                scheme, _, rest = self.url.partition("://")
                conn = psycopg2.connect(f"{scheme.split('+')[0]}://{rest}", application_name="benchlab", **_PG_CONNECT)
            self._conn = conn
        return self._conn

    def _write(self, work: Callable[[Any], None]) -> None:
        """Run `work` on a cursor in one transaction, and commit."""
        conn = self._connect()
        try:
            cur = conn.cursor()
            work(cur)
            cur.close()
            conn.commit()
        except BaseException:
            self.close()  # a broken connection is not reused: the next write connects again
            raise

    def write_samples(self, run_id: int, worker: str | None, rows: Sequence[Sample], batch: str | None = None) -> None:
        """Store a batch of request samples in one transaction, unless its id `batch` is stored already."""
        if not rows:
            return
        sqlite = self._path is not None
        self._write(lambda cur: write_batch(cur, run_id, worker, rows, batch, sqlite=sqlite))

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Store run events (their data as JSON, `null` when there is none, as SQLAlchemy's JSON type does)."""
        if not rows:
            return
        if self._path is not None:
            stamp = Stamps(suffix="")
            values = [(r, stamp(ts), k, u, m, json.dumps(d)) for r, ts, k, u, m, d in rows]
            sql = f"INSERT INTO run_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            self._write(lambda cur: cur.executemany(sql, values))
        else:
            pg = [(r, datetime.fromtimestamp(ts, UTC), k, u, m, json.dumps(d)) for r, ts, k, u, m, d in rows]
            sql = f"INSERT INTO run_events ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            self._write(lambda cur: cur.executemany(sql, pg))

    def heartbeat(self, run_id: int) -> bool:
        """Tell readers a `running` run is alive; best effort: False when the store refused."""
        now = datetime.now(UTC)
        when = Stamps(suffix="")(now.timestamp()) if self._path is not None else now
        mark = "?" if self._path is not None else "%s"
        sql = f"UPDATE runs SET heartbeat_at = {mark} WHERE id = {mark} AND status = 'running'"
        try:
            self._write(lambda cur: cur.execute(sql, (when, run_id)))
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
