"""The watchdog bridge: file changes in the workspace, debounced, handed to
the app as a set of paths (the app decides what a path means)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("pipeloom.web")

IGNORED_DIRS = frozenset({".pipeloom", ".git", "node_modules", "__pycache__", "target", ".venv", "venv"})
IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


def ignored(path: str | Path, root: Path) -> bool:
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return True
    return any(p in IGNORED_DIRS for p in parts[:-1]) or (bool(parts) and parts[-1] in IGNORED_DIRS)


class _Handler(FileSystemEventHandler):
    def __init__(self, bridge: "WatchBridge"):
        self.bridge = bridge

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        for p in paths:
            p = os.fsdecode(p)
            if event.is_directory:
                if event.event_type in ("created", "moved") and Path(p).parent == self.bridge.root:
                    self.bridge.watch_top_dir(Path(p))
                continue
            self.bridge.touch(Path(p))


class WatchBridge:
    """Watches a workspace (skipping state, VCS and vendor folders) and calls
    `on_change(paths)` once a burst of events has been quiet for `debounce` s."""

    def __init__(self, root: Path, on_change: Callable[[set[Path]], None], debounce: float = 0.15):
        self.root = Path(root).resolve()
        self.on_change = on_change
        self.debounce = debounce
        self._pending: dict[Path, float] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._observer = None
        self._watched: set[Path] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching: the workspace root itself, and each top-level folder recursively."""
        self._observer = Observer()
        handler = _Handler(self)
        self._handler = handler
        self._observer.schedule(handler, str(self.root), recursive=False)
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and not child.is_symlink():
                self.watch_top_dir(child)
        self._observer.start()
        self._thread = threading.Thread(target=self._loop, name="pipeloom-watch", daemon=True)
        self._thread.start()

    def watch_top_dir(self, path: Path) -> None:
        # a recursive watch per top-level folder lets us leave .pipeloom/, .git/ and node_modules/ unwatched
        if path.name in IGNORED_DIRS or path in self._watched or self._observer is None or path.is_symlink():
            return  # a linked folder may lead out of the workspace: never watch through it
        try:
            self._observer.schedule(self._handler, str(path), recursive=True)
            self._watched.add(path)
        except OSError as exc:
            log.warning("cannot watch %s: %s", path, exc)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def touch(self, path: Path) -> None:
        """Note a change; it is reported after `debounce` seconds of quiet for that path."""
        if ignored(path, self.root):
            return
        with self._cond:
            self._pending[path] = time.monotonic() + self.debounce
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    due = {p for p, t in self._pending.items() if t <= now}
                    if due:
                        for p in due:
                            del self._pending[p]
                        break
                    wait = min(self._pending.values()) - now if self._pending else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
            try:
                self.on_change(due)
            except Exception:
                log.exception("handling file changes %s", sorted(map(str, due)))
