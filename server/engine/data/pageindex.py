"""Sparse page indexes of output files, kept under `.pipeloom/index/`, built once in the background.

An index maps record numbers to byte offsets (one checkpoint per scan block,
see scan.py) and holds the exact record count. It is keyed by the output's
sha256 (outputs are immutable once published) and its format, so every run
that produced or reused the same bytes shares it. The file is written via a
temporary file and os.replace; it records the size and digests of the first
and last 64 KiB of the file it describes, and a CRC of its own body, so an
index that is corrupt, of another version or of other bytes is ignored,
removed and rebuilt.

`PageIndexes.get()` answers at once: a finished index, or the build in
progress (one thread per key; more requests join it). A build publishes its
checkpoints as it goes, so a page far into the file can start as soon as the
scan has passed it (`Build.wait_for`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import threading
import zlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import scan
from ..hashing import text_sha256

log = logging.getLogger("pipeloom")

MAGIC = b"PIPELOOM-PAGE-INDEX\n"
VERSION = 1
SAMPLE = 64 * 1024
INDEXED_FORMATS = ("json", "ndjson", "csv")
INDEX_MIN_BYTES = 4 * 1024 * 1024  # smaller outputs are counted when published, and paged from their start


def _digest(path: Path, size: int) -> tuple[str, str]:
    with open(path, "rb") as f:
        head = f.read(SAMPLE)
        f.seek(max(0, size - SAMPLE))
        tail = f.read(SAMPLE)
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


@dataclass
class PageIndex:
    """Checkpoints into one file, and what is known of its total."""

    fmt: str
    size: int
    checkpoints: list = field(default_factory=list)  # (record, byte, line), by record
    total: int | None = None
    complete: bool = False
    problem: str | None = None
    header_end: int = 0
    header_lines: int = 0

    def checkpoint_for(self, record: int) -> tuple[int, int, int] | None:
        """The last checkpoint at or before `record`, or None."""
        cps = self.checkpoints
        i = bisect.bisect_right(cps, (record, float("inf"), 0)) - 1
        return cps[i] if i >= 0 else None

    @property
    def known_total(self) -> int | None:
        return self.total if self.complete else None


def index_key(path: Path, sha256: str | None, size: int | None, mtime_ns: int | None) -> str:
    """The artifact's sha256 while the file is the one recorded; else a key from the file's identity."""
    st = path.stat()
    if sha256 and size == st.st_size and mtime_ns == st.st_mtime_ns:
        return sha256
    return "file-" + text_sha256(f"{path.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")


def write_index(target: Path, index: PageIndex, path: Path) -> None:
    """Write `index` (complete) for file `path` atomically."""
    flat = array("q")
    for cp in index.checkpoints:
        flat.extend(cp)
    body = flat.tobytes()
    head, tail = _digest(path, index.size)
    header = {"version": VERSION, "format": index.fmt, "size": index.size, "head": head, "tail": tail,
              "total": index.total, "problem": index.problem, "header_end": index.header_end,
              "header_lines": index.header_lines, "checkpoints": len(index.checkpoints),
              "crc": zlib.crc32(body)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as f:
        f.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def read_index(target: Path, path: Path, fmt: str) -> PageIndex | None:
    """The index in `target` if it is whole, of this version and of these bytes; else None."""
    try:
        raw = target.read_bytes()
    except OSError:
        return None
    try:
        if not raw.startswith(MAGIC):
            return None
        nl = raw.index(b"\n", len(MAGIC))
        header = json.loads(raw[len(MAGIC):nl])
        body = raw[nl + 1:]
        size = path.stat().st_size
        if (header.get("version") != VERSION or header.get("format") != fmt or header.get("size") != size
                or zlib.crc32(body) != header.get("crc") or len(body) != 24 * header.get("checkpoints", -1)):
            return None
        if (header.get("head"), header.get("tail")) != _digest(path, size):
            return None
        flat = array("q")
        flat.frombytes(body)
        cps = [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]
        total = header.get("total")
        if total is not None and not isinstance(total, int):
            return None
        return PageIndex(fmt, size, cps, total, True, header.get("problem"), int(header.get("header_end", 0)),
                         int(header.get("header_lines", 0)))
    except (ValueError, TypeError, AttributeError, OSError):
        return None


def native_scan(path: Path, fmt: str, progress: Callable[[tuple[int, int, int]], None],
                stop: threading.Event) -> scan.ScanResult | None:
    """The scan by the compiled converter (native.py), checkpoints passed on as they come; None when it is
    unavailable or leaves the file to the Python scan (anything the readers decide in their own way)."""
    import subprocess

    from . import native

    exe = native.binary() if native.enabled() else None
    if exe is None:
        return None
    proc = subprocess.Popen([exe, "--scan", str(path), fmt, str(scan.BLOCK)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    report = None
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith(b"c "):
                _, r, b, ln = line.split()
                progress((int(r), int(b), int(ln)))
            else:
                report = json.loads(line)
            if stop.is_set():
                raise scan.Stopped()
    finally:
        if proc.poll() is None and stop.is_set():
            proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.wait()
    if proc.returncode != 0 or not isinstance(report, dict) or "total" not in report:
        return None
    return scan.ScanResult(int(report["total"]), [], None, int(report.get("header_end", 0)),
                           int(report.get("header_lines", 0)))


class Build:
    """One background scan; readers may use its checkpoints while it runs."""

    def __init__(self, key: str, path: Path, fmt: str, target: Path):
        self.key, self.path, self.fmt, self.target = key, path, fmt, target
        self.index = PageIndex(fmt, path.stat().st_size)
        self.cond = threading.Condition()
        self.scanned = -1  # the highest record known to start at a published checkpoint
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _progress(self, cp: tuple[int, int, int]) -> None:
        with self.cond:
            self.index.checkpoints.append(cp)
            self.scanned = cp[0]
            self.cond.notify_all()

    def run(self) -> None:
        result = None
        try:
            result = native_scan(self.path, self.fmt, self._progress, self.stop)
            if result is None:
                with self.cond:
                    self.index.checkpoints.clear()
                    self.scanned = -1
                result = scan.scan_file(self.path, self.fmt, self._progress, self.stop)
            if result is None:  # a JSON document that is not an array: nothing to count
                result = scan.ScanResult(None, [], "not a JSON array")
        except scan.Stopped:
            pass
        except Exception as exc:  # a damaged or vanished file: the pages say what is wrong
            log.info("cannot index %s: %s", self.path, exc)
            result = scan.ScanResult(None, [], str(exc))
        if result is not None:
            cps = list(result.checkpoints) or list(self.index.checkpoints)
            done = PageIndex(self.fmt, self.index.size, cps, result.total, True, result.problem,
                             result.header_end, result.header_lines)
            try:
                write_index(self.target, done, self.path)  # on disk before anyone is told it is done
            except OSError as exc:
                log.info("cannot write the page index %s: %s", self.target, exc)
        with self.cond:
            if result is not None:
                self.index = done
            self.cond.notify_all()

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive() and self.index.complete

    def wait_for(self, record: int, timeout: float) -> PageIndex:
        """The index as far as it goes, once the scan has passed `record` or ended (or `timeout` ran out)."""
        with self.cond:
            self.cond.wait_for(lambda: self.index.complete or self.scanned > record or self.stop.is_set(),
                               timeout)
            idx = self.index
            return PageIndex(idx.fmt, idx.size, list(idx.checkpoints), idx.total, idx.complete, idx.problem,
                             idx.header_end, idx.header_lines)


class PageIndexes:
    """The page indexes of one workspace: on disk under `root`, remembered in memory, built one at a time per key."""

    def __init__(self, root: str | os.PathLike, on_built: Callable[[str, PageIndex], None] | None = None):
        self.root = Path(root)
        self.on_built = on_built
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}
        self._memo: OrderedDict[str, PageIndex] = OrderedDict()
        self._waiters: dict[str, list[Callable[[PageIndex], None]]] = {}
        self._closed = False

    def _target(self, key: str, fmt: str) -> Path:
        return self.root / f"{key}.{fmt}.idx"

    def get(self, path: str | os.PathLike, fmt: str, key: str,
            when_built: Callable[[PageIndex], None] | None = None) -> PageIndex | Build | None:
        """A finished index, the build in progress (started if need be), or None for formats without one.

        `when_built` is called once with the finished index (at once if it is already there)."""
        if fmt not in INDEXED_FORMATS:
            return None
        path = Path(path)
        mk = f"{key}.{fmt}"
        with self._lock:
            idx = self._memo.get(mk)
            if idx is not None and idx.size == path.stat().st_size:
                self._memo.move_to_end(mk)
                found: PageIndex | Build = idx
            elif mk in self._builds:
                found = self._builds[mk]
                if when_built:
                    self._waiters.setdefault(mk, []).append(when_built)
                return found
            else:
                found = None  # type: ignore[assignment]
        if found is None:
            target = self._target(key, fmt)
            idx = read_index(target, path, fmt)
            if idx is None:
                return self._start(mk, path, fmt, target, when_built)
            self._remember(mk, idx)
            found = idx
        if when_built:
            when_built(found)  # type: ignore[arg-type]
        return found

    def _remember(self, mk: str, idx: PageIndex) -> None:
        with self._lock:
            self._memo[mk] = idx
            self._memo.move_to_end(mk)
            while len(self._memo) > 256:
                self._memo.popitem(last=False)

    def _start(self, mk: str, path: Path, fmt: str, target: Path,
               when_built: Callable[[PageIndex], None] | None) -> Build | PageIndex:
        with self._lock:
            if mk in self._builds:  # another request got here first
                b = self._builds[mk]
            elif self._closed:
                raise RuntimeError("the page indexes are closed")
            else:
                if target.exists():
                    target.unlink(missing_ok=True)  # stale or corrupt: rebuilt below
                b = Build(mk, path, fmt, target)
                self._builds[mk] = b
                # not a daemon: a CLI run that published a large output finishes its index before it exits
                b.thread = threading.Thread(target=self._run, args=(b,), name=f"pipeloom-index-{mk[:12]}")
                b.thread.start()
            if when_built:
                self._waiters.setdefault(mk, []).append(when_built)
        return b

    def _run(self, b: Build) -> None:
        b.run()
        idx = b.index
        if idx.complete:
            self._remember(b.key, idx)
        with self._lock:
            self._builds.pop(b.key, None)
            waiters = self._waiters.pop(b.key, [])
        if not idx.complete:
            return
        for fn in waiters:
            try:
                fn(idx)
            except Exception:
                log.exception("a page index listener failed")

    def builds(self) -> int:
        """How many builds are running (for tests and metrics)."""
        with self._lock:
            return len(self._builds)

    def close(self, timeout: float = 5) -> None:
        """Stop every build and wait for the threads."""
        with self._lock:
            self._closed = True
            builds = list(self._builds.values())
        for b in builds:
            b.stop.set()
            with b.cond:
                b.cond.notify_all()
        for b in builds:
            if b.thread is not None:
                b.thread.join(timeout)


_shared: dict[Path, PageIndexes] = {}
_holders: dict[Path, int] = {}
_shared_lock = threading.Lock()


def shared(root: str | os.PathLike, hold: bool = False) -> PageIndexes:
    """The one PageIndexes of an index folder in this process, so the runner and the server share builds.
    `hold`: the caller (a server) gives it back with release() when it closes."""
    key = Path(root).resolve()
    with _shared_lock:
        got = _shared.get(key)
        if got is None or got._closed:
            got = _shared[key] = PageIndexes(key)
        if hold:
            _holders[key] = _holders.get(key, 0) + 1
        return got


def release(indexes: PageIndexes) -> None:
    """Give back a PageIndexes taken with shared(hold=True); the last holder closes it."""
    key = indexes.root.resolve()
    with _shared_lock:
        left = _holders.get(key, 1) - 1
        if left > 0:
            _holders[key] = left
            return
        _holders.pop(key, None)
        if _shared.get(key) is indexes:
            del _shared[key]
    indexes.close()


def index_published(root: str | os.PathLike, artifacts: list[dict]) -> None:
    """Start building, in the background, the page index of every large json, ndjson or csv output just
    published, so its first preview finds the index and its exact total is known soon after the run."""
    for art in artifacts:
        fmt = art.get("format")
        if fmt not in INDEXED_FORMATS or art.get("records") is not None or (art.get("size") or 0) <= INDEX_MIN_BYTES:
            continue
        try:
            path = Path(art["path"])
            shared(root).get(path, fmt, index_key(path, art.get("sha256"), art.get("size"), art.get("mtime_ns")))
        except (OSError, RuntimeError, KeyError) as exc:  # gone already, or the server is closing
            log.info("cannot index %s: %s", art.get("path"), exc)
