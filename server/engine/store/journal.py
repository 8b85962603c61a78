"""Run journals: the record of a run, on disk, in the run's own folder (stdlib only).

A run's journal is `.pipeloom/runs/<run_id>/run.json` (the run, written
atomically when it is created and when it ends) plus `nodes.ndjson` beside it
(one line appended when the run starts and per finished node, so a run of 100
nodes writes 100 short lines, not 100 copies of itself). Read together they
are the source of truth for a run; the final run.json holds every node as
well, and its own fields win over the lines once it is final. The SQLModel database
(index.py) is an index of journals that its readers bring up to date.

Two small files let readers find work without reading every journal:
`.pipeloom/journal/active/<run_id>` exists while a run may still be going (the
next command finds runs killed by kill -9 there), and every journal write
appends the run id to `.pipeloom/journal/changes` (the index reads it from
where it stopped).
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import NotFoundError
from ..paths import Layout

JOURNAL_VERSION = 1
JOURNAL = "run.json"
NODES = "nodes.ndjson"
ACTIVE = ("pending", "running")
DONE_NODE = ("succeeded", "cached")
INTERRUPTED = "the process running this run stopped before it finished"
# new_run_id(): 20261126-181530-3fa2; the first 15 characters are the second it was made in
_RUN_ID = re.compile(r"^\d{8}-\d{6}-")


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC with milliseconds (`2026-11-26T18:15:30.123Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def node_record(run_id: str, node_id: str, *, status: str, started_at: float | None, finished_at: float | None,
                exit_code: int | None, cache_key: str | None, attempts: int, message: str | None,
                log_path: str | None, workdir: str | None, artifacts: Iterable[dict] = (),
                source_run: str | None = None, build_s: float | None = None,
                worker: str | None = None) -> tuple[dict, list[dict]]:
    """Rows for one finished node run: (node row, artifact rows), for a journal or `Store.record_nodes`.

    `build_s` is the time spent building the program (compiling, installing its dependencies) when the
    runtime had to; `duration_s` is the rest, the step's own time, so a first build never reads as a slow step."""
    duration = (finished_at - started_at) if (started_at and finished_at) else None
    if duration is not None and build_s:
        duration = max(0.0, duration - build_s)
    node_row = dict(run_id=run_id, node_id=node_id, status=status, started_at=started_at,
                    finished_at=finished_at, duration_s=duration, exit_code=exit_code, cache_key=cache_key,
                    attempts=attempts, message=message, log_path=log_path, workdir=workdir, source_run=source_run)
    if build_s is not None:
        node_row["build_s"] = build_s  # journals only: the index has no column for it
    if worker:
        node_row["worker"] = worker
    art_rows = [dict(run_id=run_id, node_id=node_id, port=a["port"], path=a["path"], format=a["format"],
                     size=a["size"], sha256=a["sha256"], mtime_ns=a["mtime_ns"], records=a.get("records"))
                for a in artifacts]
    return node_row, art_rows


def intact_one(a: dict) -> bool:
    """The file is still there, same size and modification time as recorded."""
    try:
        st = os.stat(a["path"])
    except OSError:
        return False
    return st.st_size == a["size"] and st.st_mtime_ns == a["mtime_ns"]


def intact(artifacts: list[dict]) -> bool:
    """Every file of an artifact set is unchanged since it was recorded."""
    return all(intact_one(a) for a in artifacts)


def write_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write via a temporary file and os.replace: a reader (or a kill -9) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{id(data)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _append(path: Path, data: bytes) -> None:
    # one write() on an O_APPEND file: concurrent appenders never interleave inside a line
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _node_entry(node_row: dict, art_rows: list[dict]) -> dict:
    entry = {k: v for k, v in node_row.items() if k != "run_id" and (k != "worker" or v)}
    entry["artifacts"] = [{k: v for k, v in a.items() if k not in ("run_id", "node_id")} for a in art_rows]
    return entry


def fold(doc: dict, lines: Iterable[bytes]) -> dict:
    """Apply a run's appended lines (its start, finished nodes, record counts) to its run.json; a torn last line
    is skipped. A run.json that is final (written at the end, or by recovery) keeps its own fields."""
    nodes = doc.setdefault("nodes", {})
    open_run = doc.get("status") in ACTIVE
    for raw in lines:
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if "run" in item:
            if open_run and isinstance(item["run"], dict):
                doc.update({k: v for k, v in item["run"].items() if k not in ("nodes", "run_id", "journal")})
        elif "node" in item:
            nodes[item["node"]["node_id"]] = item["node"]
        elif "records" in item:
            nid, port, count = item["records"]
            for a in (nodes.get(nid) or {}).get("artifacts", []):
                if a["port"] == port:
                    a["records"] = count
    return doc


class RunJournal:
    """The writer of one run's journal (the runner holds one per run)."""

    def __init__(self, layout: Layout, run_id: str):
        self.layout = layout
        self.run_id = run_id
        self.dir = layout.run_dir(run_id)
        self.doc: dict = {}
        self._said: dict = {}  # the run's own fields as its journal on disk has them

    def create(self, pipeline_id: str, name: str, path: str, options: dict, document: dict | None = None) -> None:
        """The run exists, pending: run.json, the active marker, a change note.

        `document` is the pipeline as this run ran it (normalized), so the run can be drawn as it was."""
        from ..process import hostname, process_start_time

        self.dir.mkdir(parents=True, exist_ok=True)
        self.doc = {"journal": JOURNAL_VERSION, "run_id": self.run_id, "pipeline_id": pipeline_id,
                    "pipeline_name": name, "pipeline_path": path, "status": "pending", "created_at": time.time(),
                    "started_at": None, "finished_at": None, "pid": os.getpid(),
                    "pid_start": process_start_time(os.getpid()), "host": hostname(),
                    "options": options, "message": None, "document": document, "nodes": {}}
        self._write()
        # The marker is a second name for this first run.json: a link costs microseconds where a new file costs
        # a few hundred here. Only its name is read; finish() and recovery remove it.
        marker = self.layout.state / "journal" / "active" / self.run_id
        try:
            os.link(self.dir / JOURNAL, marker)
        except FileNotFoundError:
            marker.parent.mkdir(parents=True, exist_ok=True)
            os.link(self.dir / JOURNAL, marker)
        except OSError:  # a file system without hard links
            marker.touch()

    def update(self, **fields) -> None:
        """Change the run's own fields (status, started_at, message) while it is going: one line appended
        beside run.json, which every reader folds in, instead of a rewrite of run.json."""
        self.doc.update(fields)
        changed = {k: v for k, v in self.doc.items()
                   if k != "nodes" and (k not in self._said or self._said[k] != v)}
        _append(self.dir / NODES, json.dumps({"run": changed}, separators=(",", ":")).encode() + b"\n")
        self._said.update(changed)
        note_change(self.layout, self.run_id)

    def add_nodes(self, records: list[tuple[dict, list[dict]]]) -> None:
        """Append finished node runs (from `node_record`), one line each, in one write."""
        if not records:
            return
        data = b"".join(json.dumps({"node": _node_entry(n, a)}, separators=(",", ":")).encode() + b"\n"
                        for n, a in records)
        _append(self.dir / NODES, data)
        note_change(self.layout, self.run_id)

    def finish(self, **fields) -> dict:
        """The run ended: run.json gets every node and the final fields; returns the journal.

        Not fsync'd (it costs ~20 ms a run here): os.replace already means a kill -9 leaves the old
        journal or the new one, never half of one, and a power cut may lose the last journal writes as the
        index's SQLite (WAL, synchronous=NORMAL) may lose its last commits; neither shows a half-finished
        run as finished."""
        self.doc.update(fields)
        doc = fold(dict(self.doc, nodes={}), _lines(self.dir / NODES))
        doc.update({k: v for k, v in self.doc.items() if k != "nodes"})  # this writer's fields are the newest
        self.doc = doc
        self._write()
        try:
            os.unlink(self.layout.state / "journal" / "active" / self.run_id)
        except FileNotFoundError:
            pass
        return doc

    def _write(self, fsync: bool = False) -> None:
        write_atomic(self.dir / JOURNAL, (json.dumps(self.doc, separators=(",", ":")) + "\n").encode(), fsync=fsync)
        self._said = {k: v for k, v in self.doc.items() if k != "nodes"}
        note_change(self.layout, self.run_id)


def note_change(layout: Layout, run_id: str) -> None:
    """Tell the index that this run's journal changed."""
    try:
        _append(layout.state / "journal" / "changes", run_id.encode() + b"\n")
    except FileNotFoundError:
        (layout.state / "journal").mkdir(parents=True, exist_ok=True)
        _append(layout.state / "journal" / "changes", run_id.encode() + b"\n")


def _lines(path: Path) -> list[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def load_journal(run_dir: Path) -> dict | None:
    """A run's journal as one dict (run.json with its appended lines folded in); None if it has none."""
    try:
        with open(run_dir / JOURNAL, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("journal") != JOURNAL_VERSION:
        return None  # a run.json from before journals (a result summary): the database still has that run
    return fold(doc, _lines(run_dir / NODES))


def journal_token(run_dir: Path) -> int | None:
    """A number that changes whenever the journal does (sizes and mtimes of its two files); None if none."""
    try:
        a = os.stat(run_dir / JOURNAL)
    except OSError:
        return None
    try:
        b = os.stat(run_dir / NODES)
        extra = (b.st_size, b.st_mtime_ns)
    except OSError:
        extra = (0, 0)
    return hash((a.st_size, a.st_mtime_ns, a.st_ino) + extra) & 0x7FFF_FFFF_FFFF_FFFF


def summary(doc: dict) -> dict:
    """A run in one line: what `runs` lists and `GET /api/runs` returns."""
    started, finished = doc.get("started_at"), doc.get("finished_at")
    dur = (finished - started) if (started and finished) else None
    return {"run_id": doc["run_id"], "pipeline_id": doc["pipeline_id"], "pipeline_name": doc.get("pipeline_name", ""),
            "status": doc["status"], "created_at": iso(doc.get("created_at")), "started_at": iso(started),
            "finished_at": iso(finished), "duration_s": round(dur, 3) if dur is not None else None,
            "origin": (doc.get("options") or {}).get("origin") or {}}


def artifact_view(a: dict) -> dict:
    return {"port": a["port"], "path": a["path"], "format": a["format"], "size": a["size"], "sha256": a["sha256"],
            "mtime_ns": a["mtime_ns"], "records": a.get("records")}


def node_view(n: dict) -> dict:
    """One node of a run as every reader sees it (the API, `show --json`, the live snapshot)."""
    dur, build = n.get("duration_s"), n.get("build_s")
    arts = {a["port"]: artifact_view(a) for a in n.get("artifacts", [])}
    return {"status": n["status"], "exit_code": n.get("exit_code"),
            "duration_s": round(dur, 3) if dur is not None else None,
            "build_s": round(build, 3) if build is not None else None,
            "started_at": iso(n.get("started_at")), "finished_at": iso(n.get("finished_at")),
            "message": n.get("message"), "attempts": n.get("attempts", 0), "cache_key": n.get("cache_key"),
            "source_run": n.get("source_run"), "outputs": {p: a["path"] for p, a in arts.items()},
            "artifacts": arts, **({"worker": n["worker"]} if n.get("worker") else {})}


def detail(doc: dict, *, document: bool = True) -> dict:
    """A whole run, each node with its outputs: what `show --json` prints and `GET /api/runs/<id>` returns.

    `document` is the pipeline as the run ran it (null for runs recorded before runs kept it)."""
    out = summary(doc)
    out["pipeline_path"] = doc.get("pipeline_path", "")
    out["message"] = doc.get("message")
    out["options"] = doc.get("options") or {}
    out["nodes"] = {nid: node_view(n) for nid, n in (doc.get("nodes") or {}).items()}
    if document:
        out["document"] = doc.get("document")
    return out


def _order_key(doc: dict) -> tuple:
    return (doc.get("created_at") or 0.0, doc["run_id"])


class Journals:
    """Every run journal of one workspace: list, read, recover. What the CLI reads instead of the database."""

    def __init__(self, workspace: str | os.PathLike):
        self.layout = Layout(workspace)

    # ------------------------------------------------------------ reading

    def run_ids(self) -> list[str]:
        """Every run folder's name (a folder without a journal is skipped when read)."""
        try:
            return [e.name for e in os.scandir(self.layout.runs) if not e.name.startswith(".") and e.is_dir()]
        except FileNotFoundError:
            return []

    def read(self, run_id: str, *, recover: bool = True) -> dict | None:
        """One run's journal; a run left `running` by a process that is gone is recovered first."""
        if "/" in run_id or run_id.startswith("."):
            return None
        doc = load_journal(self.layout.run_dir(run_id))
        if doc is not None and recover and doc["status"] in ACTIVE and not _alive(doc):
            doc = self._recover(doc)
        return doc

    def docs(self, *, recover: bool = True) -> Iterator[dict]:
        """Every journal, in no particular order."""
        for rid in self.run_ids():
            doc = self.read(rid, recover=recover)
            if doc is not None:
                yield doc

    def newest(self, pipeline_id: str | None = None, limit: int = 50) -> list[dict]:
        """The newest `limit` journals (of one pipeline, or all), newest first by creation time.

        Run ids begin with the second they were made in, so only the newest seconds' journals are read;
        within a second ids sort randomly, so each second is read whole and sorted by time."""
        ids = self.run_ids()
        dated = sorted((r for r in ids if _RUN_ID.match(r)), reverse=True)
        found = [d for d in (self.read(r) for r in ids if not _RUN_ID.match(r))
                 if d is not None and (pipeline_id is None or d["pipeline_id"] == pipeline_id)]
        i, groups_after = 0, 0
        while i < len(dated) and groups_after < 2:
            second = dated[i][:15]
            while i < len(dated) and dated[i][:15] == second:
                d = self.read(dated[i])
                i += 1
                if d is not None and (pipeline_id is None or d["pipeline_id"] == pipeline_id):
                    found.append(d)
            if len(found) >= limit:
                groups_after += 1  # one more second: a run created just across a second boundary
        found.sort(key=_order_key, reverse=True)
        return found[:limit]

    def list_runs(self, pipeline_id: str | None = None, limit: int = 50) -> list[dict]:
        """Summaries of the newest runs, newest first."""
        return [summary(d) for d in self.newest(pipeline_id, limit)]

    def count_runs(self, pipeline_id: str | None = None) -> int:
        """How many runs have journals (of one pipeline, or of all)."""
        if pipeline_id is None:
            return sum(1 for r in self.run_ids() if os.path.exists(self.layout.run_dir(r) / JOURNAL))
        return sum(1 for d in self.docs(recover=False) if d["pipeline_id"] == pipeline_id)

    def pipeline_ids(self) -> list[str]:
        """Every pipeline id that has runs."""
        return sorted({d["pipeline_id"] for d in self.docs(recover=False)})

    def latest_run(self, pipeline_id: str) -> dict | None:
        found = self.newest(pipeline_id, 1)
        return detail(found[0]) if found else None

    def get_run(self, run_id: str) -> dict:
        doc = self.read(run_id)
        if doc is None:
            raise NotFoundError(f"no run `{run_id}`")
        return detail(doc)

    def get_artifact(self, run_id: str, node_id: str, port: str) -> dict:
        run = self.get_run(run_id)
        art = ((run["nodes"].get(node_id) or {}).get("artifacts") or {}).get(port)
        if art is None:
            raise NotFoundError(f"run `{run_id}` has no output `{port}` from node `{node_id}`")
        return art

    def log_path(self, run_id: str, node_id: str) -> Path:
        """Where a node's log is (or will be). Cached nodes have none: the path may not exist."""
        doc = self.read(run_id, recover=False)
        if doc is None:
            raise NotFoundError(f"no run `{run_id}`")
        node = (doc.get("nodes") or {}).get(node_id)
        if node is not None and node.get("log_path"):
            return Path(node["log_path"])
        path = self.layout.log_path(run_id, node_id)
        if node is not None or path.exists():
            return path
        raise NotFoundError(f"run `{run_id}` has no node `{node_id}`")

    # ------------------------------------------------------------ writing after the fact

    def set_records(self, run_id: str, node_id: str, port: str, count: int | None) -> None:
        """Remember an output's record count (counted later by the studio)."""
        run_dir = self.layout.run_dir(run_id)
        if not (run_dir / JOURNAL).exists():
            return
        _append(run_dir / NODES, json.dumps({"records": [node_id, port, count]}).encode() + b"\n")
        note_change(self.layout, run_id)

    def recover_interrupted(self) -> int:
        """Mark runs whose process died (kill -9, power loss) as `interrupted`; returns how many.

        Only runs with an active marker are looked at: one listdir when nothing is going."""
        active = self.layout.state / "journal" / "active"
        try:
            names = os.listdir(active)
        except FileNotFoundError:
            return 0
        n = 0
        for rid in names:
            doc = load_journal(self.layout.run_dir(rid))
            if doc is None or doc["status"] not in ACTIVE:
                if doc is not None or not self.layout.run_dir(rid).exists():
                    _unlink(active / rid)
                continue
            if not _alive(doc) and self._recover(doc)["status"] == "interrupted":
                n += 1
        return n

    def _recover(self, doc: dict) -> dict:
        from ..process import stop_orphans

        # The run's process was found gone after `doc` was read: it may have finished the run and exited in
        # between. A process that is gone writes nothing more, so the journal read now decides.
        fresh = load_journal(self.layout.run_dir(doc["run_id"]))
        if fresh is not None and fresh["status"] not in ACTIVE:
            _unlink(self.layout.state / "journal" / "active" / doc["run_id"])
            return fresh
        message = INTERRUPTED
        if stop_orphans(self.layout.run_dir(doc["run_id"]) / "_groups"):
            message += "; the programs it left running were stopped"
        for n in (doc.get("nodes") or {}).values():
            if n["status"] in ACTIVE:
                n["status"], n["message"] = "cancelled", "interrupted: the run's process died"
        doc.update(status="interrupted", finished_at=doc.get("finished_at") or time.time(), message=message)
        w = RunJournal(self.layout, doc["run_id"])
        w.doc = doc
        w._write(fsync=True)
        _unlink(self.layout.state / "journal" / "active" / doc["run_id"])
        from .cache import CacheFile  # the finished nodes of a killed run stay reusable

        CacheFile(self.layout, doc["pipeline_id"]).merge(doc)
        return doc


def _alive(doc: dict) -> bool:
    from ..process import process_alive  # only runs that say they are going need it

    return process_alive(doc.get("pid"), doc.get("pid_start"), doc.get("host"))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
