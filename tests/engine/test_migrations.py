"""The store's schema migrations: old databases upgraded with their rows, newer ones refused untouched,
concurrent openers on SQLite and PostgreSQL, and the models matching the last migration."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from server.engine.store import SCHEMA_VERSION, SchemaError, Store
from server.engine.store import migrations
from tests.conftest import REPO, pipeloom_cmd


def sqlite_url(path) -> str:
    return f"sqlite:///{path}"


def db_version(url: str) -> int | None:
    engine = create_engine(url)
    try:
        return migrations.stored_version(engine)
    finally:
        engine.dispose()


def make_legacy_db(url: str, *, without_source_run: bool = False) -> None:
    """A database as the code before versioning left it: the models' create_all, and one of each row."""
    engine = create_engine(url)
    try:
        SQLModel.metadata.create_all(engine)
        with engine.begin() as c:
            if without_source_run:
                c.execute(text("ALTER TABLE node_runs DROP COLUMN source_run"))
            c.execute(text("INSERT INTO runs (id, pipeline_id, pipeline_name, pipeline_path, status, created_at, "
                           "options) VALUES ('r-old', 'p', 'p', 'p.pipeline.yaml', 'succeeded', 1.0, '{}')"))
            c.execute(text("INSERT INTO node_runs (run_id, node_id, status, attempts, cache_key) "
                           "VALUES ('r-old', 'n', 'succeeded', 1, 'k1')"))
            c.execute(text("INSERT INTO artifacts (run_id, node_id, port, path, format, size, sha256, mtime_ns) "
                           "VALUES ('r-old', 'n', 'out', '/x/out.json', 'json', 5000000000, 'ab', 7)"))
            c.execute(text("INSERT INTO pipeline_versions (pipeline_id, version, path, sha256, text, note, "
                           "created_at) VALUES ('p', 1, 'p.pipeline.yaml', 'cd', 'a: 1', 'first', 1.0)"))
    finally:
        engine.dispose()


def assert_old_rows_intact(store: Store) -> None:
    run = store.get_run("r-old")
    assert run["status"] == "succeeded"
    node = run["nodes"]["n"]
    assert node["cache_key"] == "k1" and node["source_run"] is None
    assert node["artifacts"]["out"]["size"] == 5_000_000_000
    assert store.get_version("p", 1)["text"] == "a: 1"


def schema_of(url: str) -> dict:
    """{table: {column: nullable}} plus each table's indexed columns, as the database reports them."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        out = {}
        for table in sorted(insp.get_table_names()):
            cols = {c["name"]: bool(c["nullable"]) for c in insp.get_columns(table)}
            indexed = sorted(tuple(ix["column_names"]) for ix in insp.get_indexes(table))
            out[table] = (cols, indexed)
        return out
    finally:
        engine.dispose()


def models_schema() -> dict:
    out = {}
    for name, table in SQLModel.metadata.tables.items():
        cols = {c.name: bool(c.nullable) for c in table.columns}
        indexed = sorted(tuple(c.name for c in ix.columns) for ix in table.indexes)
        out[name] = (cols, indexed)
    return out


@pytest.fixture
def pg_database(postgres_url):
    """A fresh, empty PostgreSQL database on the test server; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ------------------------------------------------------------ upgrades

def test_new_database_matches_the_models(tmp_path):
    url = sqlite_url(tmp_path / "new.db")
    Store(url).close()
    assert db_version(url) == SCHEMA_VERSION
    got = schema_of(url)
    assert got.pop("schema_version")[0] == {"version": False}
    assert got == models_schema(), "a model changed without a migration (or the reverse): add a step to MIGRATIONS"


def test_database_from_before_versioning_is_upgraded_with_its_rows(tmp_path):
    url = sqlite_url(tmp_path / "old.db")
    make_legacy_db(url)
    assert db_version(url) is None
    store = Store(url)
    assert db_version(url) == SCHEMA_VERSION
    assert_old_rows_intact(store)
    store.close()


def test_database_without_source_run_is_upgraded_with_its_rows(tmp_path):
    url = sqlite_url(tmp_path / "older.db")
    make_legacy_db(url, without_source_run=True)
    assert "source_run" not in schema_of(url)["node_runs"][0]
    store = Store(url)
    assert "source_run" in schema_of(url)["node_runs"][0]
    assert_old_rows_intact(store)
    store.record_node("r-old", "m", status="cached", started_at=1.0, finished_at=1.0, exit_code=None, cache_key="k",
                      attempts=0, message=None, log_path=None, workdir=None, source_run="r-before")
    assert store.get_run("r-old")["nodes"]["m"]["source_run"] == "r-before"
    store.close()


def test_each_step_applies_in_order_and_again_is_a_no_op(tmp_path):
    url = sqlite_url(tmp_path / "steps.db")
    engine = create_engine(url)
    try:
        assert migrations.migrate(engine, target=1) == 1
        assert "source_run" not in {c["name"] for c in inspect(engine).get_columns("node_runs")}
        assert migrations.migrate(engine) == SCHEMA_VERSION
        before = schema_of(url)
        assert migrations.migrate(engine) == SCHEMA_VERSION
        assert schema_of(url) == before
    finally:
        engine.dispose()


def test_a_current_database_costs_one_query(tmp_path):
    url = sqlite_url(tmp_path / "current.db")
    Store(url).close()
    engine = create_engine(url)
    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # noqa: ANN001
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        assert migrations.ensure_schema(engine) == SCHEMA_VERSION
        assert len(seen) == 1, seen
        seen.clear()
        Store(url).close()
        assert not [s for s in seen if s.lstrip().upper().startswith(("CREATE", "ALTER", "BEGIN", "PRAGMA"))], seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)
        engine.dispose()


def test_a_failed_step_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    url = sqlite_url(tmp_path / "half.db")
    make_legacy_db(url, without_source_run=True)

    def broken(conn):
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("step 3 failed")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    monkeypatch.setattr(migrations, "LATEST", SCHEMA_VERSION + 1)
    engine = create_engine(url)
    try:
        with pytest.raises(RuntimeError, match="step 3 failed"):
            migrations.ensure_schema(engine)
    finally:
        engine.dispose()
    schema = schema_of(url)
    assert "half_done" not in schema and "schema_version" not in schema
    assert "source_run" not in schema["node_runs"][0]


# ------------------------------------------------------------ newer databases

def _make_newer(path) -> str:
    url = sqlite_url(path)
    Store(url).close()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE from_the_future (x INTEGER)")
    con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 5,))
    con.commit()
    con.close()
    return url


def test_a_newer_database_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.db"
    url = _make_newer(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SchemaError) as refused:
        Store(url)
    message = str(refused.value)
    assert str(path) in message and f"version {SCHEMA_VERSION + 5}" in message and "newer Pipeloom" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert db_version(url) == SCHEMA_VERSION + 5


def test_the_cli_names_a_newer_database_and_exits_2(workspace):
    (workspace / ".pipeloom").mkdir()
    _make_newer(workspace / ".pipeloom" / "pipeloom.db")
    # `runs` reads the run journals, not the database; the commands that open the database refuse it
    for args in (("keys", "list"), ("gc", "--dry-run")):
        proc = pipeloom_cmd(*args, cwd=workspace)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "newer Pipeloom" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------ concurrent openers

OPENER = """
import sys
from server.engine.store import Store
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
Store(sys.argv[1]).close()
"""


def open_concurrently(url: str, n: int = 8) -> list[subprocess.CompletedProcess]:
    """Start n processes that each open the store, released at the same instant once all have imported it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, url], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline() == "ready\n", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_concurrent_openers_of_a_new_sqlite_database(tmp_path):
    url = sqlite_url(tmp_path / "race.db")
    results = open_concurrently(url)
    failed = [r.stderr[-600:] for r in results if r.returncode != 0]
    assert not failed, failed[0]
    assert db_version(url) == SCHEMA_VERSION
    assert set(models_schema()) <= set(schema_of(url))


@pytest.mark.postgres
def test_concurrent_openers_of_a_new_postgres_database(pg_database):
    results = open_concurrently(pg_database)
    failed = [r.stderr[-600:] for r in results if r.returncode != 0]
    assert not failed, failed[0]
    assert db_version(pg_database) == SCHEMA_VERSION
    got = schema_of(pg_database)
    got.pop("schema_version")
    assert got == models_schema()


@pytest.mark.postgres
def test_postgres_database_from_before_versioning_is_upgraded(pg_database):
    make_legacy_db(pg_database, without_source_run=True)
    store = Store(pg_database)
    assert db_version(pg_database) == SCHEMA_VERSION
    assert_old_rows_intact(store)
    store.close()
