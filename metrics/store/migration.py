"""Bring a store made by an older benchlab up to the models: missing nullable columns, the runs status check.

`create_all` creates missing tables but never changes existing ones. Cheap when nothing is missing (one query
for the columns, one for the check); idempotent and safe when several processes open an old store at once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import CheckConstraint, Connection, Engine, text
from sqlalchemy.exc import OperationalError

from benchlab.metrics.store.model import Base, Run

log = logging.getLogger(__name__)
_STATUS_CHECK = "runs_status_check"
_SQLITE_CHECK = re.compile(r"CONSTRAINT\s+runs_status_check\s+CHECK\s*\(status IN \([^)]*\)\)")


def upgrade(engine: Engine) -> None:
    """Add the models' nullable columns an existing table lacks, and widen the runs status check."""
    with engine.begin() as conn:
        _add_columns(conn)
    if engine.dialect.name == "postgresql":
        _postgres_check(engine)
    else:
        _sqlite_check(engine)


def _status_sql() -> str:
    table = Base.metadata.tables[Run.__tablename__]
    check = next(c for c in table.constraints if isinstance(c, CheckConstraint) and c.name == _STATUS_CHECK)
    return str(check.sqltext)


def _existing_columns(conn: Connection) -> set[tuple[str, str]]:
    if conn.dialect.name == "postgresql":
        query = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    else:
        query = (
            "SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table'"
        )
    return {(str(t), str(c)) for t, c in conn.execute(text(query))}


def _add_columns(conn: Connection) -> None:
    have = _existing_columns(conn)
    tables = {t for t, _ in have}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if table.name not in tables or (table.name, column.name) in have:
                continue
            if not column.nullable:
                log.warning("store table %s lacks NOT NULL column %s: recreate the store", table.name, column.name)
                continue
            kind = column.type.compile(dialect=conn.dialect)
            exists = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
            try:
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {exists}"{column.name}" {kind}'))
            except OperationalError as exc:  # SQLite: another process added it a moment ago
                if "duplicate column" not in str(exc):
                    raise
            log.info("store upgraded: %s.%s added", table.name, column.name)


def _postgres_check(engine: Engine) -> None:
    wanted = _status_sql()
    query = text(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint AS c JOIN pg_class AS t ON t.oid = c.conrelid"
        " WHERE c.conname = :name AND t.relname = 'runs' AND t.relnamespace = current_schema()::regnamespace"
    )
    with engine.begin() as conn:
        current = conn.execute(query, {"name": _STATUS_CHECK}).scalar()
        if current is None or "'interrupted'" in current:
            return
        conn.execute(text("LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE"))
        if "'interrupted'" in str(conn.execute(query, {"name": _STATUS_CHECK}).scalar()):
            return  # another process widened it while we waited for the lock
        conn.execute(
            text(f"ALTER TABLE runs DROP CONSTRAINT {_STATUS_CHECK}, ADD CONSTRAINT {_STATUS_CHECK} CHECK ({wanted})")
        )
    log.info("store upgraded: %s widened", _STATUS_CHECK)


def _sqlite_check(engine: Engine) -> None:
    """Rewrite the CHECK in the stored CREATE TABLE: SQLite's documented way to loosen a constraint in place."""
    with engine.connect() as conn:
        current = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'")).scalar()
    if current is None or "'interrupted'" in current:
        return
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        sql = cur.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()[0]
        widened = _SQLITE_CHECK.sub(f"CONSTRAINT {_STATUS_CHECK} CHECK ({_status_sql()})", sql)
        if "'interrupted'" not in sql and widened != sql:
            version = cur.execute("PRAGMA schema_version").fetchone()[0]
            cur.execute("PRAGMA writable_schema = ON")
            cur.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'runs'", (widened,))
            cur.execute(f"PRAGMA schema_version = {int(version) + 1}")
            cur.execute("PRAGMA writable_schema = OFF")
            log.info("store upgraded: %s widened", _STATUS_CHECK)
        elif widened == sql and "'interrupted'" not in sql:
            log.warning("store table runs has an unexpected status check; `interrupted` runs cannot be stored")
        cur.execute("COMMIT")
        cur.close()
    except BaseException:
        raw.invalidate()
        raise
    finally:
        raw.close()
