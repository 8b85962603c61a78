"""The store's schema, versioned: an ordered list of migrations applied under a lock.

A database records its version in a one-row `schema_version` table, the same
on SQLite and PostgreSQL. Opening a store reads that row, one query; only a
database that is behind takes the lock (`BEGIN IMMEDIATE` on SQLite,
`pg_advisory_xact_lock` on PostgreSQL), reads the version again and applies
the missing steps and the new version in one transaction. Concurrent openers
of a new database therefore wait for the first one instead of racing it, and a
failed step leaves the database as it was.

To change the schema (a table for trigger state, a column, an index), append
one function to MIGRATIONS that takes a SQLAlchemy Connection and makes the
change; the database's version is the function's position in the list. Spell
a new table out in its step (as `_v1_tables` does) instead of creating the
model's own table, so that a later change to the model, itself a further step
(ALTER TABLE ...), does not alter what the old step makes. Keep the models
matching (tests/engine/test_migrations.py fails when the migrated schema and
the models disagree). Never edit or reorder a released step: databases
already ran it. A database newer than MIGRATIONS (written by a later
Pipeloom) is refused untouched.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import (BigInteger, Column, Connection, Engine, Float, ForeignKey, Integer, MetaData, String, Table,
                        Text, inspect, text)
from sqlalchemy.exc import OperationalError, ProgrammingError

from ..errors import SchemaError

# pg_advisory_xact_lock key: "pipeloom" in ASCII, fits a signed 64-bit integer
PG_LOCK_KEY = int.from_bytes(b"pipeloom", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _v1_tables(conn: Connection) -> None:
    """Runs, node runs, artifacts and pipeline versions, as first released."""
    md = MetaData()
    Table("runs", md,
          Column("id", String, primary_key=True),
          Column("pipeline_id", String, nullable=False, index=True),
          Column("pipeline_name", String, nullable=False),
          Column("pipeline_path", String, nullable=False),
          Column("status", String, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("started_at", Float),
          Column("finished_at", Float),
          Column("pid", Integer),
          Column("pid_start", String),
          Column("host", String),
          Column("options", String, nullable=False),
          Column("message", Text))
    Table("node_runs", md,
          Column("id", Integer, primary_key=True),
          Column("run_id", String, ForeignKey("runs.id"), nullable=False, index=True),
          Column("node_id", String, nullable=False, index=True),
          Column("status", String, nullable=False),
          Column("started_at", Float),
          Column("finished_at", Float),
          Column("duration_s", Float),
          Column("exit_code", Integer),
          Column("cache_key", String, index=True),
          Column("attempts", Integer, nullable=False),
          Column("message", Text),
          Column("log_path", String),
          Column("workdir", String))
    Table("artifacts", md,
          Column("id", Integer, primary_key=True),
          Column("run_id", String, ForeignKey("runs.id"), nullable=False, index=True),
          Column("node_id", String, nullable=False),
          Column("port", String, nullable=False),
          Column("path", String, nullable=False),
          Column("format", String, nullable=False),
          Column("size", BigInteger, nullable=False),
          Column("sha256", String, nullable=False),
          Column("mtime_ns", BigInteger, nullable=False),
          Column("records", BigInteger))
    Table("pipeline_versions", md,
          Column("id", Integer, primary_key=True),
          Column("pipeline_id", String, nullable=False, index=True),
          Column("version", Integer, nullable=False),
          Column("path", String, nullable=False),
          Column("sha256", String, nullable=False),
          Column("text", Text, nullable=False),
          Column("note", String, nullable=False),
          Column("created_at", Float, nullable=False))
    # databases from before versioning already have some or all of these
    md.create_all(conn, checkfirst=True)


def _v2_source_run(conn: Connection) -> None:
    """node_runs.source_run: for a cached node, the run whose program made its outputs."""
    if "source_run" not in {c["name"] for c in inspect(conn).get_columns("node_runs")}:
        conn.execute(text("ALTER TABLE node_runs ADD COLUMN source_run VARCHAR"))


def _v3_invoke_keys(conn: Connection) -> None:
    """invoke_keys: the hashes of the keys that open a pipeline's http triggers (never the keys themselves)."""
    md = MetaData()
    Table("invoke_keys", md,
          Column("id", Integer, primary_key=True),
          Column("name", String, nullable=False, unique=True, index=True),
          Column("pipeline_id", String, nullable=False, index=True),
          Column("trigger_id", String),
          Column("key_hash", String, nullable=False, unique=True, index=True),
          Column("created_at", Float, nullable=False),
          Column("revoked_at", Float),
          Column("last_used_at", Float))
    md.create_all(conn)


def _v4_journal_token(conn: Connection) -> None:
    """runs.journal_token: which state of the run's journal on disk the row was indexed from."""
    if "journal_token" not in {c["name"] for c in inspect(conn).get_columns("runs")}:
        conn.execute(text("ALTER TABLE runs ADD COLUMN journal_token BIGINT"))


def _v5_node_worker(conn: Connection) -> None:
    """node_runs.worker: the Dask worker that ran the node (null for a local run)."""
    if "worker" not in {c["name"] for c in inspect(conn).get_columns("node_runs")}:
        conn.execute(text("ALTER TABLE node_runs ADD COLUMN worker VARCHAR"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_tables,
    _v2_source_run,
    _v3_invoke_keys,
    _v4_journal_token,
    _v5_node_worker,
]
LATEST = len(MIGRATIONS)


def describe(engine: Engine) -> str:
    """The database in words, without a password: a file path or a URL."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database
    return engine.url.render_as_string(hide_password=True)


def stored_version(engine: Engine) -> int | None:
    """The version a database records, in one query; None when it records none (new, or from before versioning)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
    except (OperationalError, ProgrammingError):  # no such table
        return None


def ensure_schema(engine: Engine) -> int:
    """Bring the database to LATEST (a no-op costing one query when it is there); returns the version."""
    version = stored_version(engine)
    if version == LATEST:
        return version
    _refuse_newer(engine, version)
    return migrate(engine)


def migrate(engine: Engine, target: int | None = None) -> int:
    """Apply the missing migrations up to `target` (default: the latest) under the database's lock, in one
    transaction; returns the version reached."""
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise ValueError(f"schema version {target} does not exist (latest is {LATEST})")
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        has_table = inspect(conn).has_table("schema_version")
        version = (conn.execute(text("SELECT max(version) FROM schema_version")).scalar() if has_table else None) or 0
        _refuse_newer(engine, version)
        if version < target:
            if not has_table:
                conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
            for step in MIGRATIONS[version:target]:
                step(conn)
            conn.execute(text("DELETE FROM schema_version"))
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": target})
            version = target
        conn.commit()
    return version


def _refuse_newer(engine: Engine, version: int | None) -> None:
    if version is not None and version > LATEST:
        raise SchemaError(f"the database {describe(engine)} has schema version {version}, but this Pipeloom "
                          f"knows versions up to {LATEST}: a newer Pipeloom wrote it. Upgrade Pipeloom, or set "
                          "PIPELOOM_DATABASE_URL to another database; the database was not changed")
