"""Folders of derived files that can always be made again (query databases, diffs): kept under a size cap.

Such a file is touched each time it is used, and trimming removes the least
recently used ones until the folder fits its cap, never the file just made or
used. A partial file (`*.part`) left behind by a process that was killed while
writing it is removed once it is an hour old: a live writer touches its
partial file far more often than that.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..applog import logger

STALE_PART_S = 3600.0


def cap_bytes(var: str, default_mb: int = 8192) -> int:
    """The cap named by environment variable `var`, in MiB (default `default_mb`)."""
    raw = os.environ.get(var, "").strip()
    try:
        return int(float(raw) * 1024 * 1024) if raw else default_mb * 1024 * 1024
    except ValueError:
        return default_mb * 1024 * 1024


def touch(path: Path) -> None:
    """Mark `path` as just used: the last to go when its folder is trimmed."""
    try:
        os.utime(path)
    except OSError:
        pass


def trim(folder: Path, cap: int, *, keep: Path | None = None, what: str = "cached file",
         now: float | None = None, dry_run: bool = False) -> tuple[int, int]:
    """Remove the least recently used `*.sqlite` files of `folder` (with their -wal and -shm companions) until
    the folder fits in `cap` bytes, never `keep`; also stale partial files. Returns (files removed, bytes freed);
    with `dry_run`, what would go, removing nothing."""
    now = time.time() if now is None else now
    removed = freed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0, 0
    files = []
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if e.name.endswith(".part"):
            if now - st.st_mtime > STALE_PART_S:
                if not dry_run:
                    _unlink(Path(e.path))
                removed, freed = removed + 1, freed + st.st_size
            continue
        if e.name.endswith(".sqlite") and e.is_file(follow_symlinks=False):
            files.append((st.st_mtime, st.st_size, Path(e.path)))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= cap:
            break
        if keep is not None and path == keep:
            continue
        total -= size
        removed, freed = removed + 1, freed + size
        if dry_run:
            continue
        for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            _unlink(extra)
        logger.info("removed the %s %s to keep %s under its size", what, path.name, folder)
    return removed, freed


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.info("could not remove %s: %s", path, exc)
