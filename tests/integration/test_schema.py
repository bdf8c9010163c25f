"""schema/*.sql and metrics/store/model.py describe the same tables: reflect a database built from SQL and compare."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from conftest import pg_admin
from sqlalchemy import create_engine, inspect
from sqlalchemy.dialects import postgresql

from benchlab.metrics.store.model import Base

SCHEMA = Path(__file__).resolve().parents[2] / "schema"


def _columns(insp, table: str) -> dict[str, tuple[str, bool]]:
    d = postgresql.dialect()
    return {c["name"]: (c["type"].compile(dialect=d), c["nullable"]) for c in insp.get_columns(table)}


def _shape(insp, table: str) -> dict[str, object]:
    return {
        "columns": _columns(insp, table),
        "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
        "fks": sorted(
            (tuple(f["constrained_columns"]), f["referred_table"], (f.get("options") or {}).get("ondelete"))
            for f in insp.get_foreign_keys(table)
        ),
        "indexes": sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
        "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
    }


def test_schema_sql_matches_models(pg_url: str) -> None:
    sql_db = pg_url
    conn = psycopg2.connect(sql_db)
    with conn, conn.cursor() as cur:
        for path in sorted(SCHEMA.glob("*.sql")):
            cur.execute(path.read_text())
    conn.close()
    from_sql = inspect(create_engine(sql_db.replace("postgresql://", "postgresql+psycopg2://", 1)))
    models_db = sql_db + "_m"
    pg_admin(f"CREATE DATABASE {models_db.rsplit('/', 1)[1]}")
    try:
        engine = create_engine(models_db.replace("postgresql://", "postgresql+psycopg2://", 1))
        Base.metadata.create_all(engine)
        from_models = inspect(engine)
        assert sorted(from_sql.get_table_names()) == sorted(Base.metadata.tables)
        for table in Base.metadata.tables:
            assert _shape(from_sql, table) == _shape(from_models, table), table
        engine.dispose()
    finally:
        from_sql.bind.dispose()
        pg_admin(f"DROP DATABASE IF EXISTS {models_db.rsplit('/', 1)[1]} WITH (FORCE)")
