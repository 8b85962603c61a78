"""The index of runs, node runs and output artifacts, and the record of pipeline versions and keys (SQLModel).

A run's journal on disk (journal.py) is its source of truth; the run tables
here are an index of journals, brought up to date by `Store.sync()`, which
every run-reading method calls first (one stat when nothing changed). So runs
made by the CLI appear in the studio, and the studio's runs are journals too.

SQLite in WAL mode with a busy timeout by default, at
`<workspace>/.pipeloom/pipeloom.db`; `PIPELOOM_DATABASE_URL` selects any
SQLAlchemy URL (PostgreSQL included), while the journals stay on the
workspace's disk. Writes go through one lock and stay short, so a web server
and a CLI run can share the file. The tables are made and changed by
migrations.py only; the models here must match its last step.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import BigInteger, Column, Text, delete, event, insert, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from ..errors import ConflictError, NotFoundError
from ..hashing import text_sha256
from ..paths import Layout
from ..process import process_alive, process_start_time, stop_orphans
from . import migrations
from .cache import CacheFile
from .journal import (JOURNAL_VERSION, Journals, RunJournal, detail, intact_one as _intact_dict, iso,
                      journal_token, load_journal, node_record)

CHANGES_ROTATE = 1024 * 1024  # bytes of change notes before the file starts afresh


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    pipeline_id: str = Field(index=True)
    pipeline_name: str = ""
    pipeline_path: str = ""
    status: str = "pending"
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    pid_start: str | None = None
    host: str | None = None
    options: str = "{}"
    message: str | None = Field(default=None, sa_column=Column(Text))
    journal_token: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class NodeRunRow(SQLModel, table=True):
    __tablename__ = "node_runs"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="runs.id")
    node_id: str = Field(index=True)
    status: str
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    cache_key: str | None = Field(default=None, index=True)
    attempts: int = 0
    message: str | None = Field(default=None, sa_column=Column(Text))
    log_path: str | None = None
    workdir: str | None = None
    source_run: str | None = None  # for `cached` nodes: the run whose program produced the outputs
    worker: str | None = None  # the Dask worker that ran the node; None for a local run


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="runs.id")
    node_id: str
    port: str
    path: str
    format: str
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    records: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class VersionRow(SQLModel, table=True):
    __tablename__ = "pipeline_versions"
    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: str = Field(index=True)
    version: int
    path: str
    sha256: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    note: str = ""
    created_at: float = 0.0


class InvokeKeyRow(SQLModel, table=True):
    __tablename__ = "invoke_keys"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    pipeline_id: str = Field(index=True)
    trigger_id: str | None = None
    key_hash: str = Field(unique=True, index=True)
    created_at: float = 0.0
    revoked_at: float | None = None
    last_used_at: float | None = None


class Store:
    """Thread-safe access to Pipeloom's records."""

    def __init__(self, url: str, workspace: str | os.PathLike | None = None):
        self.url = url
        self._lock = threading.RLock()
        # the workspace whose journals this index follows (None: an index without journals, e.g. a bare URL)
        self.journals = Journals(workspace) if workspace is not None else None
        self._sync_lock = threading.Lock()
        self._synced: dict[str, int] | None = None  # run id -> journal token, once read from the index
        self._changes_at: tuple[int, int] = (0, 0)  # (inode, offset) read so far of the change notes
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        try:
            migrations.ensure_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.recover_interrupted()

    @classmethod
    def open(cls, workspace: str | os.PathLike) -> "Store":
        """The store for a workspace: PIPELOOM_DATABASE_URL, or SQLite under .pipeloom/."""
        url = os.environ.get("PIPELOOM_DATABASE_URL")
        if not url:
            layout = Layout(workspace)
            layout.state.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{layout.db_path}"
        return cls(url, workspace=workspace)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------ runs

    # ------------------------------------------------------------ the index of journals

    def sync(self) -> int:
        """Bring the run tables up to date with the workspace's journals; returns how many runs were indexed.

        One stat of the change notes when nothing changed; otherwise only the runs they name are read
        (every journal, the first time in a process or when the notes started afresh)."""
        if self.journals is None:
            return 0
        layout = self.journals.layout
        changes = layout.state / "journal" / "changes"
        with self._sync_lock:
            try:
                st = os.stat(changes)
                ino, size = st.st_ino, st.st_size
            except FileNotFoundError:
                ino, size = 0, 0
            if self._synced is not None and (ino, size) == self._changes_at:
                return 0
            if self._synced is None or ino != self._changes_at[0] or size < self._changes_at[1]:
                if self._synced is None:
                    with self.engine.connect() as conn:
                        self._synced = dict(conn.execute(text(
                            "SELECT id, journal_token FROM runs WHERE journal_token IS NOT NULL")).all())
                ids = set(self.journals.run_ids())
                self._changes_at = (ino, size)
            else:
                with open(changes, "rb") as fh:
                    fh.seek(self._changes_at[1])
                    chunk = fh.read(size - self._changes_at[1])
                chunk = chunk[: chunk.rfind(b"\n") + 1]  # a note being written is read next time
                self._changes_at = (ino, self._changes_at[1] + len(chunk))
                ids = {line.decode("utf-8", "replace") for line in chunk.splitlines() if line}
            done = self._index_journals(ids)
            if size > CHANGES_ROTATE:
                self._rotate_changes(changes)
            return done

    def _index_journals(self, ids: Iterable[str]) -> int:
        assert self.journals is not None and self._synced is not None
        docs = []
        for rid in ids:
            run_dir = self.journals.layout.run_dir(rid)
            token = journal_token(run_dir)  # before reading: a write after it shows as a change next time
            if token is None or self._synced.get(rid) == token:
                continue
            doc = self.journals.read(rid)
            if doc is not None:
                docs.append((doc, token))
        for i in range(0, len(docs), 200):
            batch = docs[i:i + 200]
            try:
                self._write_index(batch)
            except IntegrityError:  # another process indexed the same run at the same moment: once more
                self._write_index(batch)
            self._synced.update((d["run_id"], tok) for d, tok in batch)
        return len(docs)

    def _write_index(self, batch: list[tuple[dict, int]]) -> None:
        ids = [d["run_id"] for d, _ in batch]
        runs, nodes, arts = [], [], []
        for doc, token in batch:
            runs.append(dict(id=doc["run_id"], pipeline_id=doc["pipeline_id"],
                             pipeline_name=doc.get("pipeline_name") or "", pipeline_path=doc.get("pipeline_path") or "",
                             status=doc["status"], created_at=doc.get("created_at") or 0.0,
                             started_at=doc.get("started_at"), finished_at=doc.get("finished_at"), pid=doc.get("pid"),
                             pid_start=doc.get("pid_start"), host=doc.get("host"),
                             options=json.dumps(doc.get("options") or {}, sort_keys=True), message=doc.get("message"),
                             journal_token=token))
            for nid, n in (doc.get("nodes") or {}).items():
                row, art_rows = node_record(doc["run_id"], nid, status=n["status"], started_at=n.get("started_at"),
                                            finished_at=n.get("finished_at"), exit_code=n.get("exit_code"),
                                            cache_key=n.get("cache_key"), attempts=n.get("attempts") or 0,
                                            message=n.get("message"), log_path=n.get("log_path"),
                                            workdir=n.get("workdir"), artifacts=n.get("artifacts") or (),
                                            source_run=n.get("source_run"), worker=n.get("worker"))
                nodes.append(row)
                arts.extend(art_rows)
        a, nr, r = ArtifactRow.__table__, NodeRunRow.__table__, RunRow.__table__
        with self._lock, self.engine.begin() as conn:
            conn.execute(delete(a).where(a.c.run_id.in_(ids)))
            conn.execute(delete(nr).where(nr.c.run_id.in_(ids)))
            conn.execute(delete(r).where(r.c.id.in_(ids)))
            conn.execute(insert(r), runs)
            if nodes:
                conn.execute(insert(nr), nodes)
            if arts:
                conn.execute(insert(a), arts)

    def _rotate_changes(self, changes: Path) -> None:
        """Start the change notes afresh (a new file, so every reader notices), then read every journal once."""
        fresh = changes.with_name(f".changes.tmp-{os.getpid()}")
        fresh.write_bytes(b"")
        os.replace(fresh, changes)
        self._changes_at = (os.stat(changes).st_ino, 0)
        self._index_journals(self.journals.run_ids())  # notes written to the old file just before the swap

    def backfill_journals(self) -> int:
        """Write a journal for each run the index holds without one (runs recorded before journals), so the
        CLI, which reads only journals, still lists them and reuses their outputs; returns how many."""
        if self.journals is None:
            return 0
        layout = self.journals.layout
        ws = str(layout.workspace)
        with self.session() as s:
            rows = s.exec(select(RunRow).where(RunRow.journal_token.is_(None))).all()
            todo = []
            for r in rows:
                opts = json.loads(r.options or "{}")
                if opts.get("workspace") not in (None, ws) or journal_token(layout.run_dir(r.id)) is not None \
                        and load_journal(layout.run_dir(r.id)) is not None:
                    continue
                nodes = {}
                arts: dict[str, list[dict]] = {}
                for a in s.exec(select(ArtifactRow).where(ArtifactRow.run_id == r.id).order_by(ArtifactRow.id)).all():
                    arts.setdefault(a.node_id, []).append(_artifact_dict(a))
                for nr in s.exec(select(NodeRunRow).where(NodeRunRow.run_id == r.id).order_by(NodeRunRow.id)).all():
                    nodes[nr.node_id] = {"node_id": nr.node_id, "status": nr.status, "started_at": nr.started_at,
                                         "finished_at": nr.finished_at, "duration_s": nr.duration_s,
                                         "exit_code": nr.exit_code, "cache_key": nr.cache_key, "attempts": nr.attempts,
                                         "message": nr.message, "log_path": nr.log_path, "workdir": nr.workdir,
                                         "source_run": nr.source_run, "artifacts": arts.get(nr.node_id, []),
                                         **({"worker": nr.worker} if nr.worker else {})}
                todo.append({"journal": JOURNAL_VERSION, "run_id": r.id, "pipeline_id": r.pipeline_id,
                             "pipeline_name": r.pipeline_name, "pipeline_path": r.pipeline_path, "status": r.status,
                             "created_at": r.created_at, "started_at": r.started_at, "finished_at": r.finished_at,
                             "pid": r.pid, "pid_start": r.pid_start, "host": r.host, "options": opts,
                             "message": r.message, "nodes": nodes})
        for doc in todo:
            w = RunJournal(layout, doc["run_id"])
            w.dir.mkdir(parents=True, exist_ok=True)
            w.doc = doc
            w._write()
        for pid in {d["pipeline_id"] for d in todo}:
            CacheFile(layout, pid).path.unlink(missing_ok=True)  # rebuilt from the journals, these included
        (layout.state / "journal").mkdir(parents=True, exist_ok=True)  # done: the CLI need not ask again
        self.sync()
        return len(todo)

    def recover_interrupted(self) -> int:
        """Mark runs whose process died (kill -9, power loss) as `interrupted`; returns how many.

        Journals first (the truth; recovered journals reach the index through `sync`), then runs the
        index holds without a journal (made before journals, or written to the index directly)."""
        found = 0
        if self.journals is not None:
            found = self.journals.recover_interrupted()
            if not (self.journals.layout.state / "journal").exists():
                self.backfill_journals()  # the first open of a workspace from before journals
            self.sync()
        return found + self._recover_index_only()

    def _recover_index_only(self) -> int:
        # a plain query first: opening a store pays only this when no run is pending (the usual case)
        with self.engine.connect() as conn:
            going = conn.execute(text("SELECT id, pid, pid_start, host FROM runs "
                                      "WHERE status IN ('pending', 'running')")).all()
        dead_ids = [r.id for r in going if not process_alive(r.pid, r.pid_start, r.host)]
        if self.journals is not None:
            journaled = [rid for rid in dead_ids if journal_token(self.journals.layout.run_dir(rid)) is not None]
            for rid in journaled:
                self.journals.read(rid)  # recovers the journal; the index follows
            if journaled:
                self.sync()
            dead_ids = [rid for rid in dead_ids if rid not in journaled]
        if not dead_ids:
            return 0
        with self._lock, self.session() as s:
            dead = s.exec(select(RunRow).where(RunRow.id.in_(dead_ids),
                                               RunRow.status.in_(("pending", "running")))).all()
            for r in dead:
                r.status = "interrupted"
                r.finished_at = r.finished_at or time.time()
                r.message = "the process running this run stopped before it finished"
                opts = json.loads(r.options or "{}")
                if opts.get("workspace"):
                    if stop_orphans(Layout(opts["workspace"]).run_dir(r.id) / "_groups"):
                        r.message += "; the programs it left running were stopped"
                s.add(r)
                for nr in s.exec(select(NodeRunRow).where(NodeRunRow.run_id == r.id,
                                                          NodeRunRow.status.in_(("pending", "running")))).all():
                    nr.status = "cancelled"
                    nr.message = "interrupted: the run's process died"
                    s.add(nr)
            s.commit()
            return len(dead)

    def create_run(self, run_id: str, pipeline_id: str, name: str, path: str, options: dict) -> None:
        row = RunRow(id=run_id, pipeline_id=pipeline_id, pipeline_name=name, pipeline_path=path, status="pending",
                     created_at=time.time(), pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                     host=socket.gethostname(), options=json.dumps(options, sort_keys=True))
        with self._lock, self.session() as s:
            s.add(row)
            s.commit()

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self._lock, self.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run `{run_id}`")
            for k, v in fields.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()

    def record_node(self, run_id: str, node_id: str, *, status: str, started_at: float | None,
                    finished_at: float | None, exit_code: int | None, cache_key: str | None, attempts: int,
                    message: str | None, log_path: str | None, workdir: str | None,
                    artifacts: Iterable[dict] = (), source_run: str | None = None) -> None:
        """Write one finished node run and its artifacts in one transaction."""
        self.record_nodes([node_record(run_id, node_id, status=status, started_at=started_at,
                                       finished_at=finished_at, exit_code=exit_code, cache_key=cache_key,
                                       attempts=attempts, message=message, log_path=log_path, workdir=workdir,
                                       artifacts=artifacts, source_run=source_run)])

    def record_nodes(self, records: list[tuple[dict, list[dict]]]) -> None:
        """Write several finished node runs (from `node_record`) in one transaction."""
        if not records:
            return
        node_rows = [{k: v for k, v in r[0].items() if k != "build_s"} for r in records]
        art_rows = [a for r in records for a in r[1]]
        # Core inserts: this runs once per node, and the ORM's unit of work costs more than the write itself.
        with self._lock, self.engine.begin() as conn:
            conn.execute(insert(NodeRunRow.__table__), node_rows)
            if art_rows:
                conn.execute(insert(ArtifactRow.__table__), art_rows)

    def cache_index(self, pipeline_id: str, limit_runs: int = 50) -> dict[tuple[str, str], list[list[dict]]]:
        """(node_id, cache_key) -> candidate artifact sets, newest first, from recent successful node runs.

        One query up front instead of one per node keeps a no-change re-run cheap.
        """
        self.sync()
        nr, a, r = NodeRunRow.__table__, ArtifactRow.__table__, RunRow.__table__
        recent = (sa_select(r.c.id).where(r.c.pipeline_id == pipeline_id)
                  .order_by(r.c.created_at.desc()).limit(limit_runs).scalar_subquery())
        q = (sa_select(nr.c.id, nr.c.node_id, nr.c.cache_key, nr.c.run_id, nr.c.source_run)
             .where(nr.c.run_id.in_(recent), nr.c.status.in_(("succeeded", "cached")), nr.c.cache_key.is_not(None))
             .order_by(nr.c.id.desc()))
        index: dict[tuple[str, str], list[list[dict]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            if not rows:
                return index
            run_ids = {row.run_id for row in rows}
            arts: dict[tuple[str, str], list[dict]] = {}
            for ar in conn.execute(sa_select(a).where(a.c.run_id.in_(run_ids))).mappings():
                arts.setdefault((ar["run_id"], ar["node_id"]), []).append(
                    {"port": ar["port"], "path": ar["path"], "format": ar["format"], "size": ar["size"],
                     "sha256": ar["sha256"], "mtime_ns": ar["mtime_ns"], "records": ar["records"]})
        for row in rows:
            found = [{**x, "source_run": row.source_run or row.run_id} for x in arts.get((row.run_id, row.node_id), [])]
            index.setdefault((row.node_id, row.cache_key), []).append(found)
        return index

    def find_cached(self, pipeline_id: str, node_id: str, cache_key: str) -> list[dict] | None:
        """Artifacts of the newest successful run of this node with this key whose files are intact."""
        self.sync()
        with self.session() as s:
            q = (select(NodeRunRow).join(RunRow, RunRow.id == NodeRunRow.run_id)
                 .where(RunRow.pipeline_id == pipeline_id, NodeRunRow.node_id == node_id,
                        NodeRunRow.cache_key == cache_key, NodeRunRow.status.in_(("succeeded", "cached")))
                 .order_by(NodeRunRow.id.desc()).limit(3))
            for nr in s.exec(q).all():
                arts = s.exec(select(ArtifactRow).where(ArtifactRow.run_id == nr.run_id,
                                                        ArtifactRow.node_id == node_id)).all()
                if all(_intact(a) for a in arts):
                    return [{**_artifact_dict(a), "source_run": nr.source_run or nr.run_id} for a in arts]
        return None

    def latest_outputs(self, pipeline_id: str, node_id: str) -> list[dict] | None:
        """Artifacts of the newest successful run of a node, whatever its key (for --only/--from)."""
        self.sync()
        with self.session() as s:
            q = (select(NodeRunRow).join(RunRow, RunRow.id == NodeRunRow.run_id)
                 .where(RunRow.pipeline_id == pipeline_id, NodeRunRow.node_id == node_id,
                        NodeRunRow.status.in_(("succeeded", "cached")))
                 .order_by(NodeRunRow.id.desc()).limit(5))
            for nr in s.exec(q).all():
                arts = s.exec(select(ArtifactRow).where(ArtifactRow.run_id == nr.run_id,
                                                        ArtifactRow.node_id == node_id)).all()
                if all(_intact(a) for a in arts):
                    out = [_artifact_dict(a) for a in arts]
                    for a in out:
                        a["cache_key"] = nr.cache_key
                        a["source_run"] = nr.source_run or nr.run_id
                    return out
        return None

    def set_records(self, run_id: str, node_id: str, port: str, count: int | None) -> None:
        """Remember an output's record count, in its run's journal and in the index."""
        if self.journals is not None:
            self.journals.set_records(run_id, node_id, port, count)
        with self._lock, self.session() as s:
            row = s.exec(select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.node_id == node_id,
                                                   ArtifactRow.port == port)).first()
            if row is not None:
                row.records = count
                s.add(row)
                s.commit()

    def list_runs(self, pipeline_id: str | None = None, limit: int = 50) -> list[dict]:
        self.sync()
        with self.session() as s:
            q = select(RunRow)
            if pipeline_id:
                q = q.where(RunRow.pipeline_id == pipeline_id)
            rows = s.exec(q.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)).all()
            return [_run_summary(r) for r in rows]

    def count_runs(self, pipeline_id: str | None = None) -> int:
        """How many runs there are (of one pipeline, or of all)."""
        self.sync()
        from sqlalchemy import func

        q = sa_select(func.count()).select_from(RunRow.__table__)
        if pipeline_id:
            q = q.where(RunRow.__table__.c.pipeline_id == pipeline_id)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def latest_run(self, pipeline_id: str) -> dict | None:
        runs = self.list_runs(pipeline_id, limit=1)
        return self.get_run(runs[0]["run_id"]) if runs else None

    def get_run(self, run_id: str) -> dict:
        """A whole run (journal.detail): read from its journal, the record, when it has one; else from the index."""
        if self.journals is not None:
            doc = self.journals.read(run_id)
            if doc is not None:
                return detail(doc)
        self.sync()
        with self.session() as s:
            r = s.get(RunRow, run_id)
            if r is None:
                raise NotFoundError(f"no run `{run_id}`")
            out = _run_summary(r)
            out["pipeline_path"] = r.pipeline_path
            out["message"] = r.message
            out["options"] = json.loads(r.options or "{}")
            nodes: dict[str, dict] = {}
            for nr in s.exec(select(NodeRunRow).where(NodeRunRow.run_id == run_id).order_by(NodeRunRow.id)).all():
                nodes[nr.node_id] = {
                    "status": nr.status, "exit_code": nr.exit_code,
                    "duration_s": round(nr.duration_s, 3) if nr.duration_s is not None else None,
                    "build_s": None, "started_at": iso(nr.started_at), "finished_at": iso(nr.finished_at),
                    "message": nr.message, "attempts": nr.attempts, "cache_key": nr.cache_key,
                    "source_run": nr.source_run,
                    "outputs": {}, "artifacts": {},
                }
                if nr.worker:
                    nodes[nr.node_id]["worker"] = nr.worker
            for a in s.exec(select(ArtifactRow).where(ArtifactRow.run_id == run_id)).all():
                if a.node_id in nodes:
                    nodes[a.node_id]["outputs"][a.port] = a.path
                    nodes[a.node_id]["artifacts"][a.port] = _artifact_dict(a)
            out["nodes"] = nodes
            out["document"] = None  # a run without a journal did not keep its pipeline
            return out

    def get_artifact(self, run_id: str, node_id: str, port: str) -> dict:
        self.sync()
        with self.session() as s:
            a = s.exec(select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.node_id == node_id,
                                                 ArtifactRow.port == port)).first()
            if a is None:
                if s.get(RunRow, run_id) is None:
                    raise NotFoundError(f"no run `{run_id}`")
                raise NotFoundError(f"run `{run_id}` has no output `{port}` from node `{node_id}`")
            return _artifact_dict(a)

    def log_path(self, run_id: str, node_id: str) -> Path:
        """Where a node's log is (or will be). Cached nodes have none: the path may not exist."""
        self.sync()
        with self.session() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise NotFoundError(f"no run `{run_id}`")
            nr = s.exec(select(NodeRunRow).where(NodeRunRow.run_id == run_id, NodeRunRow.node_id == node_id)).first()
        if nr is not None and nr.log_path:
            return Path(nr.log_path)
        opts = json.loads(run.options or "{}")
        ws = Path(opts["workspace"]) if opts.get("workspace") else Path(run.pipeline_path).parent
        path = Layout(ws).log_path(run_id, node_id)
        if nr is not None or path.exists():
            return path
        raise NotFoundError(f"run `{run_id}` has no node `{node_id}`")

    # ------------------------------------------------------------ versions

    def add_version(self, pipeline_id: str, path: str, text_: str, note: str = "") -> int:
        with self._lock, self.session() as s:
            last = s.exec(select(VersionRow).where(VersionRow.pipeline_id == pipeline_id)
                          .order_by(VersionRow.version.desc()).limit(1)).first()
            number = (last.version if last else 0) + 1
            s.add(VersionRow(pipeline_id=pipeline_id, version=number, path=str(path), sha256=text_sha256(text_),
                             text=text_, note=note, created_at=time.time()))
            s.commit()
            return number

    def fold_version(self, pipeline_id: str, number: int, path: str, text_: str, note: str = "") -> int:
        """Replace version `number` (the newest) by `text_` under the next number, in one step: a burst of
        saves keeps one version, while every save still moves the number on (so an older number is stale)."""
        with self._lock, self.session() as s:
            rows = s.exec(select(VersionRow).where(VersionRow.pipeline_id == pipeline_id)
                          .order_by(VersionRow.version.desc()).limit(1)).all()
            if not rows or rows[0].version != number:
                raise NotFoundError(f"version {number} of pipeline `{pipeline_id}` is not the newest one")
            row = rows[0]
            row.version = number + 1
            row.path = str(path)
            row.sha256 = text_sha256(text_)
            row.text = text_
            row.note = note
            row.created_at = time.time()
            s.add(row)
            s.commit()
            return number + 1

    def latest_version(self, pipeline_id: str) -> dict | None:
        with self.session() as s:
            row = s.exec(select(VersionRow).where(VersionRow.pipeline_id == pipeline_id)
                         .order_by(VersionRow.version.desc()).limit(1)).first()
            return _version_dict(row, with_text=True) if row else None

    def list_versions(self, pipeline_id: str) -> list[dict]:
        with self.session() as s:
            rows = s.exec(select(VersionRow).where(VersionRow.pipeline_id == pipeline_id)
                          .order_by(VersionRow.version.desc())).all()
            return [_version_dict(r, with_text=False) for r in rows]

    def get_version(self, pipeline_id: str, version: int) -> dict:
        with self.session() as s:
            row = s.exec(select(VersionRow).where(VersionRow.pipeline_id == pipeline_id,
                                                  VersionRow.version == version)).first()
            if row is None:
                raise NotFoundError(f"pipeline `{pipeline_id}` has no version {version}")
            return _version_dict(row, with_text=True)


    # ------------------------------------------------------------ retention

    def gc_view(self, pipeline_id: str) -> tuple[list[dict], dict[str, list[dict]]]:
        """Every run of a pipeline, newest first ({run_id, status, created_at, origin, options}), and for each
        run its node runs ({node_id, status, log_path, workdir}) with their artifacts' paths."""
        self.sync()
        with self.session() as s:
            runs = s.exec(select(RunRow).where(RunRow.pipeline_id == pipeline_id)
                          .order_by(RunRow.created_at.desc(), RunRow.id.desc())).all()
            out = []
            for r in runs:
                try:
                    opts = json.loads(r.options or "{}")
                except ValueError:
                    opts = {}
                out.append({"run_id": r.id, "status": r.status, "created_at": r.created_at,
                            "origin": opts.get("origin") or {}, "workspace": opts.get("workspace")})
            ids = [r["run_id"] for r in out]
            nodes: dict[str, list[dict]] = {i: [] for i in ids}
            arts: dict[tuple[str, str], list[str]] = {}
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                for a in s.exec(select(ArtifactRow).where(ArtifactRow.run_id.in_(chunk))).all():
                    arts.setdefault((a.run_id, a.node_id), []).append(a.path)
                for nr in s.exec(select(NodeRunRow).where(NodeRunRow.run_id.in_(chunk))).all():
                    nodes[nr.run_id].append({"node_id": nr.node_id, "status": nr.status, "log_path": nr.log_path,
                                             "paths": arts.get((nr.run_id, nr.node_id), [])})
            return out, nodes

    def delete_runs(self, run_ids: list[str]) -> int:
        """Remove runs' records (artifacts, node runs, the runs); returns how many runs went."""
        if not run_ids:
            return 0
        from sqlalchemy import delete

        with self._lock, self.engine.begin() as conn:
            for chunk in (run_ids[i:i + 500] for i in range(0, len(run_ids), 500)):
                conn.execute(delete(ArtifactRow.__table__).where(ArtifactRow.__table__.c.run_id.in_(chunk)))
                conn.execute(delete(NodeRunRow.__table__).where(NodeRunRow.__table__.c.run_id.in_(chunk)))
                conn.execute(delete(RunRow.__table__).where(RunRow.__table__.c.id.in_(chunk)))
        return len(run_ids)

    def pipeline_ids(self) -> list[str]:
        """Every pipeline id that has runs."""
        self.sync()
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa_select(RunRow.__table__.c.pipeline_id).distinct()).scalars())

    # ------------------------------------------------------------ invoke keys

    def add_key(self, name: str, pipeline_id: str, trigger_id: str | None, key_hash: str) -> dict:
        """Keep a new key's hash under `name` (ConflictError when the name is taken)."""
        from sqlalchemy.exc import IntegrityError

        row = InvokeKeyRow(name=name, pipeline_id=pipeline_id, trigger_id=trigger_id, key_hash=key_hash,
                           created_at=time.time())
        try:
            with self._lock, self.session() as s:
                s.add(row)
                s.commit()
        except IntegrityError:
            raise ConflictError(f"a key called `{name}` exists already; pick another name or revoke it first") from None
        return _key_dict(row)

    def list_keys(self) -> list[dict]:
        with self.session() as s:
            return [_key_dict(r) for r in s.exec(select(InvokeKeyRow).order_by(InvokeKeyRow.created_at)).all()]

    def revoke_key(self, name: str) -> dict:
        with self._lock, self.session() as s:
            row = s.exec(select(InvokeKeyRow).where(InvokeKeyRow.name == name)).first()
            if row is None:
                raise NotFoundError(f"no key called `{name}`")
            was_revoked = row.revoked_at is not None
            if not was_revoked:
                row.revoked_at = time.time()
                s.add(row)
                s.commit()
            return {**_key_dict(row), "already_revoked": was_revoked}

    def find_key(self, key_hash: str) -> dict | None:
        """The key with this hash, noting when it was used; None when there is none."""
        with self._lock, self.session() as s:
            row = s.exec(select(InvokeKeyRow).where(InvokeKeyRow.key_hash == key_hash)).first()
            if row is None:
                return None
            out = {**_key_dict(row), "key_hash": row.key_hash}
            if row.revoked_at is None and (row.last_used_at or 0) < time.time() - 60:
                row.last_used_at = time.time()  # at most once a minute: a hot key costs no write per call
                s.add(row)
                s.commit()
            return out


def _key_dict(r: InvokeKeyRow) -> dict:
    return {"name": r.name, "pipeline_id": r.pipeline_id, "trigger_id": r.trigger_id,
            "created_at": iso(r.created_at), "revoked_at": iso(r.revoked_at), "last_used_at": iso(r.last_used_at)}


def _intact(a: ArtifactRow) -> bool:
    return _intact_dict({"path": a.path, "size": a.size, "mtime_ns": a.mtime_ns})


def _artifact_dict(a: ArtifactRow) -> dict:
    return {"port": a.port, "path": a.path, "format": a.format, "size": a.size, "sha256": a.sha256,
            "mtime_ns": a.mtime_ns, "records": a.records}


def _run_summary(r: RunRow) -> dict:
    dur = (r.finished_at - r.started_at) if (r.started_at and r.finished_at) else None
    try:
        origin = json.loads(r.options or "{}").get("origin") or {}
    except ValueError:
        origin = {}
    return {"run_id": r.id, "pipeline_id": r.pipeline_id, "pipeline_name": r.pipeline_name, "status": r.status,
            "created_at": iso(r.created_at), "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
            "duration_s": round(dur, 3) if dur is not None else None, "origin": origin}


def _version_dict(r: VersionRow, *, with_text: bool) -> dict:
    d = {"version": r.version, "sha256": r.sha256, "created_at": iso(r.created_at), "note": r.note, "path": r.path}
    if with_text:
        d["text"] = r.text
    return d
