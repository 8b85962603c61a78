"""The cache index of one pipeline: `.pipeloom/cache/<pipeline_id>.json` (stdlib only).

For each node, its newest successful results (cache key, the run, the output
files), newest first. A run merges its results in when it ends (and recovery
merges a killed run's finished nodes), under a file lock, so concurrent runs of
one pipeline never lose each other's entries. The file is only a shortcut: when
it is missing or unreadable it is rebuilt from the journals.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from typing import Iterator

from ..hashing import text_sha256
from ..paths import Layout
from .journal import ACTIVE, DONE_NODE, Journals, intact, write_atomic

CACHE_FILE_VERSION = 1
PER_NODE = 10  # results kept per node: the newest key's, and older ones a revert can reuse
PER_KEY = 2  # results kept per node and key: a re-run with nothing changed adds one, and drops the oldest
RUNS_KEPT = 200  # run ids remembered as merged, so merging a run twice adds nothing


def _file_name(pipeline_id: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,150}", pipeline_id):
        return pipeline_id
    return "h-" + text_sha256(pipeline_id.encode("utf-8", "surrogatepass"))[:32]


class CacheFile:
    """One pipeline's cache index."""

    def __init__(self, layout: Layout, pipeline_id: str):
        self.layout = layout
        self.pipeline_id = pipeline_id
        folder = layout.state / "cache"
        self.path = folder / f"{_file_name(pipeline_id)}.json"
        self.lock_path = folder / f"{_file_name(pipeline_id)}.lock"
        self._seen: tuple[bytes, dict] | None = None  # (the file's bytes, what they hold) when last read

    # ------------------------------------------------------------ reading

    def load(self) -> dict:
        """The index ({"runs": [...], "nodes": {node_id: [entry, ...]}}), rebuilt from the journals if need be."""
        data = self._read()
        if data is None:
            with self._locked():
                data = self._read()
                if data is None:
                    data = self._rebuild()
                    if data["runs"]:  # an empty index is not worth a file: the first merge writes one
                        self._write(data)
        return data

    def cache_index(self, data: dict | None = None) -> dict[tuple[str, str], list[list[dict]]]:
        """(node_id, cache_key) -> candidate artifact sets, newest first (each artifact names its source run)."""
        index: dict[tuple[str, str], list[list[dict]]] = {}
        for nid, entries in (data or self.load())["nodes"].items():
            for e in entries:
                if e.get("cache_key"):
                    index.setdefault((nid, e["cache_key"]), []).append(
                        [{**a, "source_run": e["source_run"]} for a in e["artifacts"]])
        return index

    def latest_outputs(self, node_id: str, data: dict | None = None) -> list[dict] | None:
        """The newest intact outputs of a node, whatever its key (for --only/--from)."""
        for e in (data or self.load())["nodes"].get(node_id, [])[:5]:
            if intact(e["artifacts"]):
                return [{**a, "cache_key": e["cache_key"], "source_run": e["source_run"]} for a in e["artifacts"]]
        return None

    # ------------------------------------------------------------ writing

    def merge(self, doc: dict) -> None:
        """Add one run's successful nodes (a journal), under the lock. The index this object read before is
        used again when the file has not changed since (a run's own load, then its merge: one parse, not two)."""
        with self._locked():
            data = self._read(reuse=True) or self._rebuild(skip=doc["run_id"])
            _add(data, doc)
            self._write(data)

    def _rebuild(self, skip: str | None = None) -> dict:
        data = {"v": CACHE_FILE_VERSION, "pipeline_id": self.pipeline_id, "runs": [], "nodes": {}}
        # runs still going merge themselves when they end (or when recovery finds them killed)
        docs = [d for d in Journals(self.layout.workspace).docs(recover=False)
                if d["pipeline_id"] == self.pipeline_id and d["run_id"] != skip and d["status"] not in ACTIVE]
        for d in sorted(docs, key=lambda d: (d.get("created_at") or 0.0, d["run_id"]))[-RUNS_KEPT:]:
            _add(data, d)
        return data

    def _read(self, reuse: bool = False) -> dict | None:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
            if reuse and self._seen is not None and self._seen[0] == raw:
                data = self._seen[1]
                self._seen = None  # handed over: the caller changes it
                return data
            data = json.loads(raw)
        except (OSError, ValueError):
            return None
        if (not isinstance(data, dict) or data.get("v") != CACHE_FILE_VERSION
                or not isinstance(data.get("nodes"), dict) or not isinstance(data.get("runs"), list)):
            return None
        self._seen = (raw, data)
        return data

    def _write(self, data: dict) -> None:
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode())
        self._seen = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _add(data: dict, doc: dict) -> None:
    rid = doc["run_id"]
    if rid in data["runs"]:
        return
    data["runs"] = [rid, *data["runs"]][:RUNS_KEPT]
    for nid, n in (doc.get("nodes") or {}).items():
        if n["status"] not in DONE_NODE or not n.get("cache_key"):
            continue
        entry = {"cache_key": n["cache_key"], "run_id": rid, "source_run": n.get("source_run") or rid,
                 "artifacts": [{k: a.get(k) for k in ("port", "path", "format", "size", "sha256", "mtime_ns",
                                                       "records")} for a in n.get("artifacts", [])]}
        same = 1
        kept = [entry]
        for old in data["nodes"].get(nid, []):
            if old.get("cache_key") == entry["cache_key"]:
                same += 1
                if same > PER_KEY:
                    continue
            kept.append(old)
        data["nodes"][nid] = kept[:PER_NODE]
