"""The folder trigger: each complete file dropped in a folder feeds one run.

A file is taken only once it is completely written: moved in, or its size and
modification time unchanged for `settle_ms`. It is moved to `.processing/`
(an atomic rename: a file is never taken twice), feeds a run, and ends in
`done/` or `failed/` (with `<name>.error.txt` saying why). Files that arrived
while Pipeloom was down, and files a crash left in `.processing/`, are handled
at start.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import threading
import time
from pathlib import Path

from .base import FeedRunner, StatusSink, TriggerBase
from server.engine.triggerspec import Trigger

log = logging.getLogger("pipeloom.triggers.folder")

PROCESSING, DONE, FAILED = ".processing", "done", "failed"
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".swp")


def _candidate(name: str, pattern: str) -> bool:
    if name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES) or name.endswith(".error.txt"):
        return False
    return fnmatch.fnmatch(name, pattern)


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/stem.N.ext` when that is taken: nothing already there is overwritten."""
    dest = folder / name
    n = 1
    while dest.exists():
        stem, dot, ext = name.partition(".")
        dest = folder / f"{stem}.{n}{dot}{ext}"
        n += 1
    return dest


class FolderTrigger(TriggerBase):
    """Watches one folder (watchdog) and feeds a run per complete file, one at a time, oldest first."""

    kind = "folder"

    def __init__(self, trigger: Trigger, *, folder: Path, feed: FeedRunner, on_status: StatusSink | None = None,
                 poll_s: float = 0.1):
        super().__init__(trigger, on_status)
        self.folder = Path(folder)
        self.feed = feed
        self.poll_s = poll_s
        self._paused = False
        self._stop = threading.Event()
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, stable since)
        self._moved_in: set[str] = set()
        self._queue: queue.Queue[Path] = queue.Queue()
        self._observer = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ control

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self._stop.clear()
        for sub in (PROCESSING, DONE, FAILED):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._recover()
        trigger = self

        class Handler(FileSystemEventHandler):
            def on_moved(self, event):
                if not event.is_directory and Path(event.dest_path).parent == trigger.folder:
                    trigger._moved_in.add(Path(event.dest_path).name)

            def on_any_event(self, event):
                pass  # the settle loop looks at the folder itself; events only speed up moved-in files

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        for name, target in (("scan", self._scan_loop), ("run", self._run_loop)):
            th = threading.Thread(target=target, name=f"pipeloom-folder-{self.t.id}-{name}", daemon=True)
            th.start()
            self._threads.append(th)
        self.state = "paused" if self._paused else "running"
        self._publish()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        for th in self._threads:
            th.join(timeout)
        self._threads = []
        self.state = "stopped"
        self._publish()

    def pause(self) -> None:
        self._paused = True
        super().pause()

    def resume(self) -> None:
        self._paused = False
        super().resume()

    def status_extra(self) -> dict:
        waiting = sum(1 for p in self._list() if _candidate(p.name, self.t.pattern))
        return {"lag": waiting, "folder": str(self.folder)}

    # ------------------------------------------------------------ finding complete files

    def _list(self) -> list[Path]:
        try:
            return sorted((p for p in self.folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
        except OSError:
            return []

    def _recover(self) -> None:
        """Files a crash left half-processed go first, as they were taken before anything new."""
        for p in sorted((self.folder / PROCESSING).iterdir(), key=lambda p: p.stat().st_mtime_ns):
            if p.is_file():
                self._queue.put(p)

    def settled(self, now: float | None = None) -> list[Path]:
        """Files that are complete now: moved in, or unchanged for `settle_ms`."""
        now = time.monotonic() if now is None else now
        ready: list[Path] = []
        present = set()
        for p in self._list():
            name = p.name
            if not _candidate(name, self.t.pattern):
                continue
            present.add(name)
            try:
                st = p.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if name in self._moved_in:
                self._moved_in.discard(name)
                ready.append(p)
                continue
            prev = self._seen.get(name)
            if prev is None or prev[:2] != sig:
                self._seen[name] = (*sig, now)
                if self.t.settle_ms == 0:
                    ready.append(p)
                continue
            if now - prev[2] >= self.t.settle_ms / 1000.0:
                ready.append(p)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def _scan_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._paused:
                continue
            for p in self.settled():
                claimed = self._claim(p)
                if claimed is not None:
                    self._queue.put(claimed)

    def _claim(self, p: Path) -> Path | None:
        """Move a complete file into .processing/; None if it vanished or someone else took it."""
        dest = _free_name(self.folder / PROCESSING, p.name)
        try:
            os.rename(p, dest)
        except FileNotFoundError:
            return None
        self._seen.pop(p.name, None)
        return dest

    # ------------------------------------------------------------ running

    def _run_loop(self) -> None:
        while not self._stop.is_set():
            try:
                p = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.process(p)

    def process(self, p: Path) -> bool:
        """Run the pipeline on one claimed file and move it to done/ or failed/; True when the run succeeded."""
        origin = {"trigger": self.t.id, "kind": "folder", "file": p.name, "size": p.stat().st_size}
        try:
            outcome = self.feed(p, origin)
        except Exception as exc:  # the run could not even start: keep the file, say why
            log.exception("folder trigger %s: %s", self.t.id, p.name)
            self._finish(p, ok=False, why=f"the run could not start: {type(exc).__name__}: {exc}")
            self.counters.failed()
            return False
        self.counters.run_started(outcome.run_id)
        self.counters.batch(1, outcome.run_id)
        if outcome.ok:
            self._finish(p, ok=True)
            self.error = None
        else:
            self.counters.failed()
            why = f"run {outcome.run_id} failed"
            if outcome.failed_node:
                why += f" at node `{outcome.failed_node}`"
            if outcome.message:
                why += f": {outcome.message}"
            self._finish(p, ok=False, why=why)
        self._publish()
        return outcome.ok

    def _finish(self, p: Path, *, ok: bool, why: str = "") -> None:
        dest = _free_name(self.folder / (DONE if ok else FAILED), p.name)
        os.replace(p, dest)
        if not ok:
            (dest.parent / f"{dest.name}.error.txt").write_text(why.rstrip() + "\n", encoding="utf-8")
