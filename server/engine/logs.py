"""Per-node log files: one line per output line, capped, never held whole in memory.

Each line on disk is `<unix time>\t<stream>\t<text>\n`, where stream is
`out`, `err`, `build` or `meta`. Readers page through with byte offsets.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

DEFAULT_CAP = 64 * 1024 * 1024


def default_cap() -> int:
    """The per-node cap in bytes: PIPELOOM_LOG_CAP (bytes, or with a K/M/G suffix)."""
    raw = os.environ.get("PIPELOOM_LOG_CAP", "").strip()
    if not raw:
        return DEFAULT_CAP
    mult = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(raw[-1].lower(), 1)
    try:
        return int(float(raw.rstrip("kKmMgG")) * mult)
    except ValueError:
        return DEFAULT_CAP


class LogWriter:
    """Appends lines for one node; stops at the cap with one truncation marker."""

    def __init__(self, path: Path, cap: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cap = cap if cap is not None else default_cap()
        self._fh = open(self.path, "ab", buffering=256 * 1024)
        self._written = self._fh.tell()
        self._dropped = 0
        self._lock = threading.Lock()
        self.lines = 0

    @property
    def full(self) -> bool:
        """Past the cap: later lines are only counted."""
        return self._dropped > 0

    def skip(self, count: int) -> None:
        """Count lines that were never read into memory because the log was already full."""
        with self._lock:
            self._dropped += count

    def write(self, stream: str, lines: list[str], ts: float | None = None) -> None:
        if not lines:
            return
        if self._dropped:
            with self._lock:
                self._dropped += len(lines)
            return
        ts = time.time() if ts is None else ts
        prefix = f"{ts:.3f}\t{stream}\t"
        data = "".join(prefix + ln.replace("\n", " ") + "\n" for ln in lines).encode("utf-8", "replace")
        with self._lock:
            if self._dropped:
                self._dropped += len(lines)
                return
            if self._written + len(data) > self.cap:
                room = self.cap - self._written
                kept = 0
                chunks = []
                for ln in lines:
                    b = (prefix + ln.replace("\n", " ") + "\n").encode("utf-8", "replace")
                    if len(b) > room:
                        break
                    chunks.append(b)
                    room -= len(b)
                    kept += 1
                self._fh.write(b"".join(chunks))
                self._written += sum(len(c) for c in chunks)
                self.lines += kept
                self._dropped = len(lines) - kept
                marker = (f"{ts:.3f}\tmeta\t[pipeloom] log truncated at {self.cap:,} bytes; later lines were not "
                          f"kept (raise PIPELOOM_LOG_CAP to keep more)\n")
                self._fh.write(marker.encode())
                self._written += len(marker)
                return
            self._fh.write(data)
            self._fh.flush()  # one flush per batch keeps readers of a running node's log current
            self._written += len(data)
            self.lines += len(lines)

    def meta(self, text: str) -> None:
        """A line from Pipeloom itself (retries, build steps); written even past the cap."""
        with self._lock:
            line = f"{time.time():.3f}\tmeta\t{text}\n".encode("utf-8", "replace")
            self._fh.write(line)
            self._fh.flush()
            self._written += len(line)

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        with self._lock:
            if self._fh.closed:
                return
            if self._dropped:
                line = f"{time.time():.3f}\tmeta\t[pipeloom] {self._dropped:,} lines were not kept\n"
                self._fh.write(line.encode())
            self._fh.close()


def parse_line(raw: str) -> dict:
    parts = raw.rstrip("\n").split("\t", 2)
    if len(parts) < 3:
        return {"stream": "out", "text": raw.rstrip("\n"), "ts": None}
    try:
        ts = float(parts[0])
    except ValueError:
        ts = None
    return {"stream": parts[1], "text": parts[2], "ts": ts}


def read_log(path: str | os.PathLike, offset: int = 0, limit: int = 1000) -> tuple[list[dict], int]:
    """Up to `limit` complete lines from byte `offset`; returns (lines, next offset)."""
    path = Path(path)
    if offset < 0:
        offset = 0
    lines: list[dict] = []
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return [], offset
    with fh:
        fh.seek(offset)
        pos = offset
        while len(lines) < limit:
            raw = fh.readline()
            if not raw or not raw.endswith(b"\n"):
                break  # end of file, or a line still being written
            pos += len(raw)
            lines.append(parse_line(raw.decode("utf-8", "replace")))
    return lines, pos


def tail_log(path: str | os.PathLike, max_lines: int = 200, max_bytes: int = 256 * 1024) -> list[dict]:
    """The last lines of a log, reading at most `max_bytes` from its end."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    start = max(0, size - max_bytes)
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    chunks = data.split(b"\n")
    if start > 0:
        chunks = chunks[1:]
    complete = [c for c in chunks[:-1]] if not data.endswith(b"\n") else chunks[:-1]
    return [parse_line(c.decode("utf-8", "replace")) for c in complete[-max_lines:]]
