"""Retention: which old runs go, and removing them without touching what is still used.

A pipeline's `retention: {keep_runs, keep_days}` applies to all its runs; with
no `retention`, triggered runs (which pile up) keep the newest 500 and a week,
and runs started by hand are all kept. Whatever the policy, a run is never
removed while it is going, nor when it holds the newest successful outputs of
one of its nodes (the cache's next hit). A file that a kept run still points
to (outputs reused by `--only`, logs) is left in place even when its run
folder goes.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import Layout

DEFAULT_KEEP_RUNS = 500
DEFAULT_KEEP_DAYS = 7.0
_ACTIVE = ("pending", "running")
_OK = ("succeeded", "cached")


@dataclass
class Policy:
    keep_runs: int = DEFAULT_KEEP_RUNS
    keep_days: float = DEFAULT_KEEP_DAYS
    triggered_only: bool = True  # no `retention` in the file: runs by hand are never collected

    @classmethod
    def of(cls, retention: dict | None) -> "Policy":
        if not retention:
            return cls()
        return cls(keep_runs=retention.get("keep_runs", DEFAULT_KEEP_RUNS),
                   keep_days=retention.get("keep_days", DEFAULT_KEEP_DAYS), triggered_only=False)


@dataclass
class Collected:
    pipeline_id: str
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    bytes_freed: int = 0
    files_kept: int = 0


def plan(runs: list[dict], nodes: dict[str, list[dict]], policy: Policy, now: float | None = None) -> list[str]:
    """The run ids to remove, from `Store.gc_view` output (runs newest first)."""
    now = time.time() if now is None else now
    protected: set[str] = set()
    newest_ok: set[str] = set()
    for r in runs:  # newest first: the first successful run of each node holds its cache entry
        for n in nodes.get(r["run_id"], []):
            if n["status"] in _OK and n["node_id"] not in newest_ok:
                newest_ok.add(n["node_id"])
                protected.add(r["run_id"])
    considered = [r for r in runs if not policy.triggered_only or r["origin"].get("by") == "trigger"]
    cutoff = now - policy.keep_days * 86400
    doomed = []
    for i, r in enumerate(considered):
        if i < policy.keep_runs or r["created_at"] >= cutoff:
            continue
        if r["status"] in _ACTIVE or r["run_id"] in protected:
            continue
        doomed.append(r["run_id"])
    return doomed


def collect(store, pipeline_id: str, retention: dict | None, workspace: str | os.PathLike, *,
            dry_run: bool = False, now: float | None = None) -> Collected:
    """Apply the policy to one pipeline's runs: remove their folders (but files still used) and records."""
    runs, nodes = store.gc_view(pipeline_id)
    doomed = plan(runs, nodes, Policy.of(retention), now)
    result = Collected(pipeline_id, kept=len(runs) - len(doomed))
    if not doomed:
        return result
    gone = set(doomed)
    still_used: set[str] = set()
    for r in runs:
        if r["run_id"] in gone:
            continue
        for n in nodes.get(r["run_id"], []):
            still_used.update(os.path.realpath(p) for p in n["paths"])
            if n.get("log_path"):
                still_used.add(os.path.realpath(n["log_path"]))
    layout = Layout(workspace)
    for run_id in doomed:
        folder = layout.run_dir(run_id)
        freed, kept = _remove_folder(folder, still_used, dry_run)
        result.bytes_freed += freed
        result.files_kept += kept
        result.removed.append(run_id)
    if not dry_run:
        store.delete_runs(doomed)
    return result


def _remove_folder(folder: Path, keep: set[str], dry_run: bool) -> tuple[int, int]:
    """Delete every file under `folder` but those in `keep`; returns (bytes freed, files kept)."""
    if not folder.is_dir():
        return 0, 0
    freed = kept = 0
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.realpath(path) in keep:
                kept += 1
                continue
            try:
                st = os.lstat(path)
                if st.st_nlink <= 1:
                    freed += st.st_size  # a hard link shared with a kept run frees nothing
                if not dry_run:
                    os.unlink(path)
            except FileNotFoundError:
                pass
        if not dry_run:
            for d in dirnames:
                try:
                    os.rmdir(os.path.join(dirpath, d))
                except OSError:
                    pass
    if not dry_run and kept == 0:
        shutil.rmtree(folder, ignore_errors=True)
    return freed, kept


# The workspace's caches of derived files: (folder under .pipeloom, environment variable of its cap, what a file is)
CACHES = (("query", "PIPELOOM_QUERY_CACHE_MB", "query database"), ("diffs", "PIPELOOM_DIFF_CACHE_MB", "diff"))


def trim_caches(workspace: str | os.PathLike, *, dry_run: bool = False) -> tuple[int, int]:
    """Bring the query and diff caches under their caps, least recently used first, and remove partial files
    left by killed processes; (files removed, bytes freed)."""
    from .data.cachedir import cap_bytes, trim

    state = Layout(workspace).state
    files = freed = 0
    for folder, var, what in CACHES:
        n, b = trim(state / folder, cap_bytes(var), what=what, dry_run=dry_run)
        files, freed = files + n, freed + b
    return files, freed


class RetentionLoop:
    """Applies retention in the background of a long-lived process (the server), every `interval` seconds."""

    def __init__(self, store, workspace: str | os.PathLike, policies, *, interval: float = 600.0):
        import threading

        self.store = store
        self.workspace = workspace
        self.policies = policies  # () -> {pipeline_id: retention dict or None}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pipeloom-retention", daemon=True)
        self.last: list[Collected] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def run_once(self) -> list[Collected]:
        """One pass over every pipeline that has runs."""
        import logging

        policies = self.policies()
        done = []
        try:
            trim_caches(self.workspace)
        except OSError:
            logging.getLogger("pipeloom.gc").exception("trimming the caches of %s", self.workspace)
        for pid in self.store.pipeline_ids():
            try:
                done.append(collect(self.store, pid, policies.get(pid), self.workspace))
            except Exception:  # one pipeline's trouble must not stop the others' clean-up
                logging.getLogger("pipeloom.gc").exception("retention of %s", pid)
        self.last = done
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
