"""Pipelines as files: lookup by id, versions kept in step with the disk,
saving, new files, and the index of node sources the watcher uses."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from server.engine.errors import (
    ConflictError, NotFoundError, Problem, UnsafePathError, UsageError, ValidationError,
)
from server.engine.rewrite import render_document
from server.engine.model import ID_RE, load_pipeline, parse_text, pipeline_from_document
from server.engine.pipeline.write import dump_document
from server.engine.paths import (
    BadPathError, atomic_write_text, find_pipelines, is_pipeline_file, pipeline_id_for, safe_path,
    strip_pipeline_suffix,
)

from .errors import BrokenFileError, StaleVersionError, problem_dict

log = logging.getLogger("pipeloom.web")

NOTE_FIRST_SEEN = "first seen"
NOTE_ON_DISK = "changed on disk"
NOTE_SAVED = "saved in the studio"
NOTE_CREATED = "created in the studio"

# A burst of edits is one version: a save from the same studio tab (its `client`) within FOLD_GAP_S seconds of
# its previous save, with nothing else saved between, replaces that version (under the next number) instead of
# adding one, until the burst is FOLD_SPAN_S old.
FOLD_GAP_S = 10.0
FOLD_SPAN_S = 120.0
CLIENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

REFUSED_OUTSIDE = "links outside the workspace"
REFUSED_NAME = "has a name the studio cannot use (not UTF-8 text, or too long); rename it"
BROKEN_MESSAGE = ("the file on disk has errors; fix it in your editor first "
                  "(the studio reloads it when it changes)")


def printable(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (a file name that is not UTF-8) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def creating(target: Path, shown: str):
    """Turn the disk's refusal to create a file (a file where a folder must be, a folder
    where the file must be) into a 4xx that names the file, instead of a crash."""
    try:
        yield
    except FileExistsError:
        raise ConflictError(f"cannot create `{shown}`: a file of that name, or a file in the way of "
                            "its folder, already exists") from None
    except OSError as exc:
        raise UsageError(f"cannot create `{shown}`: {exc.strerror or exc}") from None


def is_json_file(path: Path) -> bool:
    return path.name.endswith(".json")


def read_text(path: Path) -> str:
    """A pipeline file's text; a vanished or non-UTF-8 file becomes a domain error."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"`{path.name}` no longer exists") from None
    except UnicodeDecodeError:
        raise ValidationError([Problem("", "the file is not UTF-8 text")], str(path)) from None


class Pipelines:
    """Every pipeline file of one workspace, seen through the store's versions."""

    def __init__(self, workspace: Path, store, on_changed: Callable[[str, int | None], None] | None = None):
        self.ws = Path(workspace).resolve()
        self.store = store
        self.on_changed = on_changed or (lambda pid, version: None)
        self._locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._locks_guard = threading.Lock()
        self._autorun: dict[str, bool] = {}
        self._index: dict[str, list[tuple[str, str]]] | None = None
        self._index_lock = threading.Lock()
        self._summaries: dict[Path, tuple[tuple, dict]] = {}
        self._bursts: dict[str, dict] = {}  # pipeline id -> {client, version, started, last, edits}
        self.fold_gap_s = FOLD_GAP_S
        self.fold_span_s = FOLD_SPAN_S

    # ------------------------------------------------------------ lookup

    def lock(self, pipeline_id: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks[pipeline_id]

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.ws).as_posix()

    def all_paths(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in find_pipelines(self.ws):
            out.setdefault(pipeline_id_for(self.ws, p), p)
        return out

    def path_for(self, pipeline_id: str) -> Path:
        """The file of a pipeline id, or NotFoundError; UnsafePathError when the file links out of the workspace."""
        path = self.all_paths().get(pipeline_id)
        if path is None:
            raise NotFoundError(f"no pipeline `{pipeline_id}` in this workspace")
        return self._inside(pipeline_id, path)

    def _inside(self, pipeline_id: str, path: Path) -> Path:
        """The resolved pipeline file, refused when it is a link leading out of the workspace."""
        try:
            return safe_path(self.ws, path, what="pipeline file")
        except BadPathError:
            raise
        except UnsafePathError:
            raise UnsafePathError(f"pipeline `{pipeline_id}` ({self.link_rel(path)}) {REFUSED_OUTSIDE}; "
                                  "the studio does not open it") from None

    def link_rel(self, path: Path) -> str:
        """Where a pipeline file sits in the workspace, without following a link at its end."""
        p = Path(os.path.abspath(path))
        try:
            return (p.parent.resolve() / p.name).relative_to(self.ws).as_posix()
        except ValueError:
            return p.name

    def list(self) -> list[dict]:
        """Summaries of every pipeline: {id, name, path, description, nodes, format, broken, refused,
        error, problem}; a file linking out of the workspace is listed, refused, and never read."""
        items, seen = [], set()
        for pid, path in self.all_paths().items():
            item = {"id": pid, "name": pid, "path": self.link_rel(path), "description": None, "nodes": 0,
                    "format": "json" if is_json_file(path) else "yaml", "broken": False, "refused": False,
                    "error": None, "problem": None}
            try:
                path = self._inside(pid, path)
            except UnsafePathError as exc:
                # a name that is not UTF-8 (or too long) is shown escaped, with the reason
                why = REFUSED_NAME if isinstance(exc, BadPathError) else REFUSED_OUTSIDE
                item.update(id=printable(pid), name=printable(pid), path=printable(item["path"]), broken=True,
                            refused=True, error=why, problem=problem_dict(Problem("", why)))
                items.append(item)
                continue
            item["path"] = self.rel(path)
            item.update(self._summary(path))
            items.append(item)
            seen.add(path)
        for gone in set(self._summaries) - seen:
            self._summaries.pop(gone, None)
        return items

    def _summary(self, path: Path) -> dict:
        """The listed fields read from one file, remembered until the file changes (the
        index page lists every pipeline on each visit, and YAML parsing is slow)."""
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = None
        cached = self._summaries.get(path)
        if key is not None and cached is not None and cached[0] == key:
            return dict(cached[1])
        out: dict = {}
        try:
            doc, _ = parse_text(read_text(path), json_syntax=is_json_file(path))
        except ValidationError as exc:
            first = exc.problems[0] if exc.problems else Problem("", str(exc))
            out.update(broken=True, error=str(first), problem=problem_dict(first))
        except (OSError, NotFoundError) as exc:
            out.update(broken=True, error=f"cannot read the file: {exc}",
                       problem=problem_dict(Problem("", f"cannot read the file: {exc}")))
        else:
            if isinstance(doc.get("name"), str) and doc["name"].strip():
                out["name"] = doc["name"]
            if isinstance(doc.get("description"), str):
                out["description"] = doc["description"]
            if isinstance(doc.get("nodes"), list):
                out["nodes"] = len(doc["nodes"])
        if key is not None:
            self._summaries[path] = (key, dict(out))
        return out

    # ------------------------------------------------------------ versions

    def sync(self, pipeline_id: str, path: Path | None = None) -> dict:
        """Make sure the latest stored version is the file on disk; record a
        "changed on disk" version (and announce it) when it is not."""
        path = self._inside(pipeline_id, path) if path is not None else self.path_for(pipeline_id)
        with self.lock(pipeline_id):
            text = read_text(path)
            latest = self.store.latest_version(pipeline_id)
            if latest is not None and latest.get("text") == text:
                return latest
            note = NOTE_FIRST_SEEN if latest is None else NOTE_ON_DISK
            self.store.add_version(pipeline_id, self.rel(path), text, note)
            self.invalidate_index()
            new = self.store.latest_version(pipeline_id)
        if latest is not None:
            self.on_changed(pipeline_id, new["version"])
        return new

    def disk_state(self, pipeline_id: str, path: Path) -> tuple[dict | None, dict | None, list[Problem]]:
        """(latest version, parsed document, problems); the document is None exactly when
        the file is broken (not UTF-8, not YAML/JSON, or not a mapping)."""
        try:
            latest = self.sync(pipeline_id, path)
        except ValidationError as exc:  # not UTF-8: nothing to record as a version
            return self.store.latest_version(pipeline_id), None, exc.problems
        try:
            document, _ = parse_text(latest["text"], json_syntax=is_json_file(path), source=self.rel(path))
        except ValidationError as exc:
            return latest, None, exc.problems
        return latest, document, []

    def describe(self, pipeline_id: str) -> dict:
        """The GET shape: {id, name, path, format, document, broken, version, sha256, problems, autorun}."""
        path = self.path_for(pipeline_id)
        latest, document, problems = self.disk_state(pipeline_id, path)
        if document is not None:
            try:
                load_pipeline(path, workspace=self.ws)
            except ValidationError as exc:
                problems = exc.problems
        name = document.get("name") if isinstance(document, dict) else None
        return {
            "id": pipeline_id,
            "name": name if isinstance(name, str) and name else pipeline_id,
            "path": self.rel(path),
            "format": "json" if is_json_file(path) else "yaml",
            "document": document,
            "broken": document is None,
            "version": latest["version"] if latest else None,
            "sha256": latest.get("sha256") if latest else None,
            "problems": [problem_dict(p) for p in problems],
            "autorun": self.autorun(pipeline_id),
        }

    def check_document(self, document, path: Path):
        """Validate a document as if it were saved at `path` (sources must stay in the workspace)."""
        if not isinstance(document, dict):
            raise UsageError("`document` must be a JSON object (the pipeline document)")
        pipeline = pipeline_from_document(document, base_dir=path.parent, workspace=self.ws, path=path,
                                          check_env=False)
        base = path.parent
        for node in pipeline.nodes:
            if node.source:
                safe_path(self.ws, base / node.source, what=f"source of node `{node.id}`")
            for port in node.inputs:
                if port.path:
                    safe_path(self.ws, base / port.path, what=f"input `{node.id}.{port.name}`")
        return pipeline

    def save(self, pipeline_id: str, document, version, replace_broken: bool = False, client=None) -> dict:
        """Write a document over the pipeline file as a new version; 409 when stale or when the
        file does not parse (unless `replace_broken`), 422 when invalid. Saves from one `client`
        (a studio tab) in quick succession fold into one version (see FOLD_GAP_S)."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise UsageError("`version` is required: the version number the edit is based on")
        if client is not None and (not isinstance(client, str) or not CLIENT_RE.match(client)):
            raise UsageError("`client` must be 1 to 64 letters, digits, `-` or `_` (an id of the studio tab)")
        path = self.path_for(pipeline_id)
        with self.lock(pipeline_id):
            latest, on_disk, problems = self.disk_state(pipeline_id, path)
            # a half-typed edit in the user's editor must not be replaced by the studio's copy
            if on_disk is None and not replace_broken:
                raise BrokenFileError(BROKEN_MESSAGE, problems)
            if latest is None:
                latest = {"version": None, "text": None}
            if version != latest["version"]:
                raise StaleVersionError(
                    f"the pipeline changed since version {version} was loaded (now version {latest['version']}); "
                    "reload it and apply the edit again", latest["version"])
            self.check_document(document, path)
            # Merge into the file as it is, so comments and the user's formatting survive.
            text = render_document(document, latest["text"], json_syntax=is_json_file(path))
            if text != latest["text"] or on_disk is None:
                atomic_write_text(path, text)
                self._record_save(pipeline_id, path, text, latest["version"], client)
                self.invalidate_index()
        return self.describe(pipeline_id)

    def _record_save(self, pipeline_id: str, path: Path, text: str, based_on: int | None, client) -> None:
        now = time.monotonic()
        burst = self._bursts.get(pipeline_id)
        if (client is not None and burst is not None and burst["client"] == client and based_on is not None
                and burst["version"] == based_on and now - burst["last"] <= self.fold_gap_s
                and now - burst["started"] <= self.fold_span_s):
            burst["edits"] += 1
            burst["version"] = self.store.fold_version(pipeline_id, based_on, self.rel(path), text,
                                                       f"{NOTE_SAVED} ({burst['edits']} edits)")
            burst["last"] = now
            return
        number = self.store.add_version(pipeline_id, self.rel(path), text, NOTE_SAVED)
        self._bursts[pipeline_id] = {"client": client, "version": number, "started": now, "last": now, "edits": 1}

    def end_burst(self, pipeline_id: str) -> None:
        """The next save starts a version of its own (a run started from this one, say)."""
        with self.lock(pipeline_id):
            self._bursts.pop(pipeline_id, None)

    def restore(self, pipeline_id: str, number: int) -> dict:
        """Write an earlier version back to the file as a new version."""
        path = self.path_for(pipeline_id)
        with self.lock(pipeline_id):
            self.sync(pipeline_id, path)
            old = self.store.get_version(pipeline_id, number)
            atomic_write_text(path, old["text"])
            self.store.add_version(pipeline_id, self.rel(path), old["text"], f"restored version {number}")
            self.invalidate_index()
        return self.describe(pipeline_id)

    def version_document(self, pipeline_id: str, number: int) -> dict:
        path = self.path_for(pipeline_id)
        self.sync(pipeline_id, path)
        v = self.store.get_version(pipeline_id, number)
        try:
            document, _ = parse_text(v["text"], json_syntax=is_json_file(path))
        except ValidationError:
            document = None
        return {"version": v["version"], "created_at": v.get("created_at"), "note": v.get("note"),
                "sha256": v.get("sha256"), "document": document, "text": v["text"]}

    def version_diff(self, pipeline_id: str, number: int, against: str = "current") -> dict:
        """What separates version `number` from the current version (what restoring it would change), or from
        the version before it (`against="previous"`: what that save changed)."""
        from server.engine.pipeline.docdiff import diff_documents

        path = self.path_for(pipeline_id)
        latest = self.sync(pipeline_id, path)
        if against == "current":
            base = latest
        elif against == "previous":
            older = [v for v in self.store.list_versions(pipeline_id) if v["version"] < number]
            self.store.get_version(pipeline_id, number)  # 404 for a version that does not exist
            base = self.store.get_version(pipeline_id, older[0]["version"]) if older else None
        else:
            raise UsageError(f"`against` must be `current` or `previous`, not {against!r}")
        target = self.store.get_version(pipeline_id, number)
        out = {"version": number, "against": against, "from": base["version"] if base else None,
               "comparable": True, "problem": None}
        docs = []
        for v in (base, target):
            if v is None:
                docs.append({})
                continue
            try:
                doc, _ = parse_text(v["text"], json_syntax=is_json_file(path))
            except ValidationError as exc:
                first = exc.problems[0] if exc.problems else Problem("", str(exc))
                out.update(comparable=False, problem=f"version {v['version']} does not parse ({first}), "
                                                     "so it cannot be compared")
                return {**out, "same": False, "summary": out["problem"], "changes": []}
            docs.append(doc)
        return {**out, **diff_documents(docs[0], docs[1])}

    def create(self, rel_path, document=None, name=None) -> tuple[str, Path]:
        """Create a new pipeline file; returns (id, path)."""
        if not isinstance(rel_path, str) or not rel_path.strip():
            raise UsageError("`path` is required, e.g. `etl.pipeline.yaml`")
        if not is_pipeline_file(Path(rel_path).name):
            raise UsageError(f"`{rel_path}` must end with .pipeline.yaml, .pipeline.yml or .pipeline.json")
        path = safe_path(self.ws, rel_path, what="new pipeline")
        if any(part.startswith(".") for part in path.relative_to(self.ws).parts):
            raise UsageError("a pipeline cannot live in a hidden folder (it would not be listed)")
        if document is None:
            title = name if isinstance(name, str) and name.strip() else strip_pipeline_suffix(path.name)
            document = {"version": 1, "name": title, "nodes": [], "edges": []}
        self.check_document(document, path)
        pid = pipeline_id_for(self.ws, path)
        if pid in self.all_paths() or path.exists():
            raise ConflictError(f"`{self.rel(path)}` already exists")
        text = dump_document(document, json_syntax=is_json_file(path))
        with self.lock(pid):
            with creating(path, self.rel(path)):
                atomic_write_text(path, text)
            self.store.add_version(pid, self.rel(path), text, NOTE_CREATED)
        self.invalidate_index()
        return pid, path

    # ------------------------------------------------------------ nodes and sources

    def node_document(self, pipeline_id: str, node_id: str) -> tuple[dict, Path]:
        """The raw document dict of one node (no full validation) and the pipeline path."""
        path = self.path_for(pipeline_id)
        doc, _ = parse_text(read_text(path), json_syntax=is_json_file(path))
        for raw in doc.get("nodes") or []:
            if isinstance(raw, dict) and raw.get("id") == node_id:
                return raw, path
        raise NotFoundError(f"pipeline `{pipeline_id}` has no node `{node_id}`")

    def node_ids(self, pipeline_id: str) -> list[str] | None:
        """The step ids in the pipeline file, or None when it does not parse (NotFoundError when there is none)."""
        path = self.path_for(pipeline_id)
        try:
            doc, _ = parse_text(read_text(path), json_syntax=is_json_file(path))
        except ValidationError:
            return None
        nodes = doc.get("nodes")
        return [n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)] if isinstance(nodes, list) else None

    def source_path(self, pipeline_id: str, node_id: str) -> Path | None:
        raw, path = self.node_document(pipeline_id, node_id)
        src = raw.get("source")
        if not isinstance(src, str) or not src:
            return None
        return safe_path(self.ws, path.parent / src, what=f"source of node `{node_id}`")

    def new_node_file(self, pipeline_id: str, rel_source: str, text: str) -> Path:
        path = self.path_for(pipeline_id)
        target = safe_path(self.ws, path.parent / rel_source, what="new node source")
        if target.exists():
            raise ConflictError(f"`{target.relative_to(self.ws).as_posix()}` already exists; pick another node id")
        with creating(target, self.rel(target)):
            target.parent.mkdir(parents=True, exist_ok=True)
            # exclusive create: never overwrite a file that appeared meanwhile
            with open(target, "x", encoding="utf-8") as fh:
                fh.write(text)
        self.invalidate_index()
        return target

    def invalidate_index(self) -> None:
        with self._index_lock:
            self._index = None

    def _build_index(self) -> dict[str, list[tuple[str, str]]]:
        index: dict[str, list[tuple[str, str]]] = {}
        for pid, path in self.all_paths().items():
            try:
                path = self._inside(pid, path)
                doc, _ = parse_text(path.read_text(encoding="utf-8"), json_syntax=is_json_file(path))
            except (ValidationError, UnsafePathError, OSError, UnicodeDecodeError):
                continue
            for raw in doc.get("nodes") or []:
                if not isinstance(raw, dict):
                    continue
                src, nid = raw.get("source"), raw.get("id")
                if isinstance(src, str) and src and isinstance(nid, str) and ID_RE.match(nid):
                    key = os.path.realpath(path.parent / src)
                    index.setdefault(key, []).append((pid, nid))
        return index

    def nodes_for_source(self, file_path: Path) -> list[tuple[str, str]]:
        """Every (pipeline_id, node_id) whose source is this file."""
        with self._index_lock:
            if self._index is None:
                self._index = self._build_index()
            index = self._index
        return list(index.get(os.path.realpath(file_path), []))

    # ------------------------------------------------------------ autorun

    def autorun(self, pipeline_id: str) -> bool:
        return self._autorun.get(pipeline_id, False)

    def set_autorun(self, pipeline_id: str, enabled: bool) -> None:
        self.path_for(pipeline_id)
        self._autorun[pipeline_id] = bool(enabled)

    def load(self, pipeline_id: str):
        """The validated Pipeline, ready to run (ValidationError lists the problems)."""
        return load_pipeline(self.path_for(pipeline_id), workspace=self.ws)

    def load_for_run(self, pipeline_id: str):
        """The Pipeline a run is about to start from: the burst of saves ends, so the version the run stands on
        stays as it is and the next edit makes a new one."""
        self.end_burst(pipeline_id)
        return self.load(pipeline_id)
