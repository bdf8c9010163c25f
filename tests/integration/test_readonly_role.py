"""Grafana's read-only role on a real Postgres: schema/roles/readonly.sql, and schema/002_grafana_role.sh that runs
it at the lab's first start, in a fresh database built from schema/ (dropped after, with the role: roles are
cluster-wide, so each test's role has a unique name).

The role may SELECT every table, present and future, and nothing else: writes, DDL and temporary tables are
refused by its privileges, not only by its read-only default (which it may turn off).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from conftest import PG_ADMIN, pg_admin
from psycopg2 import errors

from benchlab.metrics.store.model import Base

SCHEMA = Path(__file__).resolve().parents[2] / "schema"
READONLY_SQL = SCHEMA / "roles" / "readonly.sql"
INIT_SCRIPT = SCHEMA / "002_grafana_role.sh"
PASSWORD = 'it\'s "quoted" :x $HOME \\ ;'
"""Quotes, a psql variable, a shell variable, a backslash: passed through as they are."""


@dataclass(frozen=True)
class Lab:
    """A database built from schema/ and the name of a role that does not exist yet."""

    db: str
    role: str

    def owner(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(f"{PG_ADMIN.replace('dbname=postgres', '')} dbname={self.db}")

    def reader(self, password: str = PASSWORD) -> psycopg2.extensions.connection:
        return psycopg2.connect(host="127.0.0.1", port=5432, dbname=self.db, user=self.role, password=password)


@pytest.fixture
def lab() -> Iterator[Lab]:
    suffix = uuid.uuid4().hex[:10]
    lab = Lab(db=f"benchlab_ro_{suffix}", role=f"benchlab_ro_role_{suffix}")
    pg_admin(f"CREATE DATABASE {lab.db}")
    try:
        conn = lab.owner()
        with conn, conn.cursor() as cur:
            for path in sorted(SCHEMA.glob("*.sql")):
                cur.execute(path.read_text())
        conn.close()
        yield lab
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {lab.db} WITH (FORCE)")
        pg_admin(f"DROP ROLE IF EXISTS {lab.role}")


def create_role(lab: Lab, password: str = PASSWORD) -> None:
    """Run readonly.sql as the tables' owner, its parameters set as the init script sets them."""
    conn = lab.owner()
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('benchlab.readonly_role', %s, false),"
            " set_config('benchlab.readonly_password', %s, false)",
            (lab.role, password),
        )
        cur.execute(READONLY_SQL.read_text())
        cur.execute("SELECT current_setting('benchlab.readonly_password', true)")
        assert cur.fetchone()[0] in ("", None), "the password stays in the session"
    conn.close()


def writable(conn: psycopg2.extensions.connection) -> None:
    """Turn the role's read-only default off for the session, as it may: its grants must still refuse."""
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
    conn.commit()


def refused(conn: psycopg2.extensions.connection, sql: str) -> type[Exception]:
    """The error class `sql` fails with (the transaction is rolled back)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except psycopg2.Error as exc:
        conn.rollback()
        return type(exc)
    conn.rollback()
    raise AssertionError(f"allowed: {sql}")


def test_the_role_selects_every_table_and_nothing_else(lab: Lab) -> None:
    create_role(lab)
    conn = lab.reader()
    with conn.cursor() as cur:
        for table in Base.metadata.tables:
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone() == (0,), table
        cur.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        )
        assert cur.fetchone() == (False, False, False, False, False)
    conn.rollback()
    assert refused(conn, "INSERT INTO run_events (run_id, kind) VALUES (1, 'x')") is errors.ReadOnlySqlTransaction
    writable(conn)
    statements = [
        "INSERT INTO runs (id) VALUES (1)",
        "UPDATE runs SET status = status",
        "DELETE FROM runs",
        "TRUNCATE runs",
        "CREATE TABLE intruder (id int)",
        "CREATE TEMPORARY TABLE intruder (id int)",
        "CREATE VIEW intruder AS SELECT 1",
        "ALTER TABLE runs ADD COLUMN intruder int",
        "DROP TABLE runs",
        "DROP TABLE noise_floors CASCADE",
    ]
    for sql in statements:
        assert refused(conn, sql) is errors.InsufficientPrivilege, sql
    conn.close()


def test_tables_created_later_are_readable_too(lab: Lab) -> None:
    create_role(lab)
    owner = lab.owner()
    with owner, owner.cursor() as cur:
        cur.execute("CREATE TABLE later_rollup (id int); INSERT INTO later_rollup VALUES (7)")
    owner.close()
    conn = lab.reader()
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM later_rollup")
        assert cur.fetchall() == [(7,)]
    writable(conn)
    assert refused(conn, "DELETE FROM later_rollup") is errors.InsufficientPrivilege
    conn.close()


def test_readonly_sql_needs_its_parameters(lab: Lab) -> None:
    conn = lab.owner()
    with pytest.raises(psycopg2.errors.RaiseException, match=r"set benchlab\.readonly_role"), conn.cursor() as cur:
        cur.execute(READONLY_SQL.read_text())
    conn.close()
    conn = psycopg2.connect(PG_ADMIN)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (lab.role,))
        assert cur.fetchone() is None
    conn.close()


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether Postgres' SCRAM-SHA-256 verifier (pg_authid.rolpassword) is that of `password` (RFC 5802)."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == stored_key and server == server_key


def _init_script(lab: Lab, **env: str) -> subprocess.CompletedProcess[str]:
    """schema/002_grafana_role.sh as the postgres image runs it (psql on PATH, its POSTGRES_* variables set)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GRAFANA_", "POSTGRES_"))}
    base |= {"PGHOST": "127.0.0.1", "PGPORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_DB": lab.db}
    return subprocess.run(["bash", str(INIT_SCRIPT)], env=base | env, capture_output=True, text=True, timeout=60)


def _verifier(role: str) -> str | None:
    conn = psycopg2.connect(PG_ADMIN)
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


def test_the_init_script_creates_the_role_from_its_environment(lab: Lab) -> None:
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (the postgres image has it)")
    missing = _init_script(lab, GRAFANA_DB_USER=lab.role)
    assert missing.returncode != 0 and "GRAFANA_DB_PASSWORD must be set" in missing.stderr
    assert _verifier(lab.role) is None, "no role without its password"
    made = _init_script(lab, GRAFANA_DB_USER=lab.role, GRAFANA_DB_PASSWORD=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr, "the password is not printed"
    verifier = _verifier(lab.role)
    assert verifier and _scram_matches(verifier, PASSWORD), "the password arrives as it was given"
    again = _init_script(lab, GRAFANA_DB_USER=lab.role, GRAFANA_DB_PASSWORD="rotated")
    assert again.returncode == 0, again.stderr
    rotated = str(_verifier(lab.role))
    assert _scram_matches(rotated, "rotated") and not _scram_matches(rotated, PASSWORD)
    conn = lab.reader("rotated")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone() == (0,)
    assert refused(conn, "DELETE FROM runs") is errors.ReadOnlySqlTransaction
    writable(conn)
    assert refused(conn, "DELETE FROM runs") is errors.InsufficientPrivilege
    conn.close()
