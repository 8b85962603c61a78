"""Per-node log files: one line per output line, capped, never held whole in memory.

Each line on disk is `<unix time>\t<stream>\t<text>\n`, where stream is
`out`, `err`, `build` or `meta`. Readers page through with byte offsets.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO, Callable

DEFAULT_CAP = 64 * 1024 * 1024
LIVE_INTERVAL = 0.05  # at most ~20 live batches a second per node
LIVE_KEEP = 2000  # lines per live batch
_CR_EOL = re.compile(rb"\r+\n")


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
    """Appends lines for one node; stops at the cap with one truncation marker.

    The file is made when the first line comes: a node that prints nothing costs no file (creating one is the
    dearest thing a quiet node's run does here), and readers treat a missing log as an empty one."""

    def __init__(self, path: Path, cap: int | None = None):
        self.path = Path(path)
        self.cap = cap if cap is not None else default_cap()
        self._fh: BinaryIO | None = None
        self._written = 0
        self._dropped = 0
        self._closed = False
        self._lock = threading.Lock()
        self.lines = 0

    def _file(self) -> BinaryIO:
        """The open log file, made on first use (called with the lock held)."""
        if self._fh is None:
            try:
                self._fh = open(self.path, "ab", buffering=256 * 1024)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "ab", buffering=256 * 1024)
            self._written = self._fh.tell()
        return self._fh

    @property
    def full(self) -> bool:
        """Past the cap: later lines are only counted."""
        return self._dropped > 0

    def skip(self, count: int) -> None:
        """Count lines that were never read into memory because the log was already full."""
        with self._lock:
            self._dropped += count

    def write(self, stream: str, lines: list[str], ts: float | None = None) -> None:
        """Append text lines (no newline needed; one inside a line becomes a space)."""
        if lines:
            self.write_block(stream, "".join(ln.replace("\n", " ") + "\n" for ln in lines).encode("utf-8", "replace"),
                             ts)

    def write_block(self, stream: str, data: bytes, ts: float | None = None) -> int:
        """Append raw output: whole lines, each ending in a newline, stamped and written in one go; returns
        how many lines were kept. Carriage returns before a newline go; bytes that are not UTF-8 become U+FFFD."""
        n = data.count(b"\n")
        if not n:
            return 0
        if self._dropped:
            with self._lock:
                self._dropped += n
            return 0
        if b"\r" in data:
            data = _CR_EOL.sub(b"\n", data)
        if not data.isascii():
            data = data.decode("utf-8", "replace").encode("utf-8")
        ts = time.time() if ts is None else ts
        prefix = f"{ts:.3f}\t{stream}\t".encode()
        body = prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n"
        with self._lock:
            if self._dropped:
                self._dropped += n
                return 0
            fh = self._file()
            if self._written + len(body) > self.cap:
                cut = body.rfind(b"\n", 0, max(0, self.cap - self._written)) + 1
                kept = body.count(b"\n", 0, cut)
                fh.write(body[:cut])
                self._written += cut
                self.lines += kept
                self._dropped = n - kept
                marker = (f"{ts:.3f}\tmeta\t[pipeloom] log truncated at {self.cap:,} bytes; later lines were not "
                          f"kept (raise PIPELOOM_LOG_CAP to keep more)\n")
                fh.write(marker.encode())
                fh.flush()
                self._written += len(marker)
                return kept
            fh.write(body)
            fh.flush()  # one flush per block keeps readers of a running node's log current
            self._written += len(body)
            self.lines += n
            return n

    def meta(self, text: str) -> None:
        """A line from Pipeloom itself (retries, build steps); written even past the cap."""
        with self._lock:
            line = f"{time.time():.3f}\tmeta\t{text}\n".encode("utf-8", "replace")
            fh = self._file()
            fh.write(line)
            fh.flush()
            self._written += len(line)

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._dropped:
                line = f"{time.time():.3f}\tmeta\t[pipeloom] {self._dropped:,} lines were not kept\n"
                self._file().write(line.encode())
            if self._fh is not None:
                self._fh.close()


LiveEmit = Callable[[list[dict], int], None]


class LiveLog:
    """What a live view is sent of one node's output: every line of a trickle, and of a fast burst only the
    last `keep` lines per `interval` seconds plus the count of lines passed over (all of them are in the log
    file). The newest lines of each stream are among them, so a step's closing line on stdout arrives even
    when stderr was read last in bulk. Lines become dicts only when they are sent."""

    def __init__(self, emit: LiveEmit, *, interval: float = LIVE_INTERVAL, keep: int = LIVE_KEEP):
        self.emit = emit
        self.interval = interval
        self.keep = keep
        self._held: deque[tuple[str, bytes, int, float]] = deque()  # (stream, whole lines, count, ts), oldest first
        self._newest: dict[str, tuple[str, bytes, int, float]] = {}  # each stream's newest block since a flush
        self._held_lines = 0
        self._skipped = 0
        self._next = 0.0
        self._lock = threading.Lock()

    def add(self, stream: str, data: bytes, ts: float) -> None:
        """Whole lines (each ending in a newline) just read; sent now unless a batch went out moments ago."""
        n = data.count(b"\n")
        if not n:
            return
        with self._lock:
            block = (stream, data, n, ts)
            self._held.append(block)
            self._newest[stream] = block
            self._held_lines += n
            while self._held_lines - self._held[0][2] >= self.keep:  # an older block nobody will see
                old = self._held.popleft()
                self._held_lines -= old[2]
                self._skipped += old[2]
            ready = time.monotonic() >= self._next
        if ready:
            self.flush()

    def due(self) -> float | None:
        """Seconds until held lines should be sent (0 if now), or None when nothing is held."""
        with self._lock:
            if not self._held and not self._skipped:
                return None
            return max(0.0, self._next - time.monotonic())

    def flush(self) -> None:
        """Send what is held: the newest `keep` lines, after the number of lines passed over."""
        with self._lock:
            held, self._held = list(self._held), deque()
            newest, self._newest = self._newest, {}
            skipped, self._skipped = self._skipped, 0
            self._held_lines = 0
            self._next = time.monotonic() + self.interval
            if not held and not skipped:
                return
            kept = {id(b) for b in held}
            for block in sorted(newest.values(), key=lambda b: b[3], reverse=True):
                if id(block) not in kept:  # a stream's newest block, passed over for another's newer lines
                    held.insert(0, block)
                    skipped -= block[2]
            take = [0] * len(held)
            room = self.keep
            if len(newest) > 1:  # first a share for the end of each stream
                share = max(1, self.keep // (2 * len(newest)))
                last = {b[0]: i for i, b in enumerate(held)}
                for i in last.values():
                    take[i] = min(held[i][2], share, room)
                    room -= take[i]
            for i in range(len(held) - 1, -1, -1):  # then the newest lines, whichever stream they are on
                more = min(held[i][2] - take[i], room)
                take[i] += more
                room -= more
            lines = []
            for (stream, data, n, ts), t in zip(held, take):
                skipped += n - t
                if t:
                    parts = data[:-1].split(b"\n") if t >= n else data[:-1].rsplit(b"\n", t)[1:]
                    lines += [{"stream": stream, "text": p.decode("utf-8", "replace").rstrip("\r"), "ts": ts}
                              for p in parts]
            self.emit(lines, skipped)  # under the lock, so two readers never send out of order


class NodeOutput:
    """Where a running node's output goes: all of it to the log file, a sample of it to a live view."""

    def __init__(self, log: LogWriter, live: LiveLog | None = None):
        self.log = log
        self.live = live

    @property
    def full(self) -> bool:
        """The log is full: further output is only counted."""
        return self.log.full

    def feed(self, stream: str, data: bytes) -> None:
        """Whole lines of output, each ending in a newline."""
        ts = time.time()
        kept = self.log.write_block(stream, data, ts)
        if self.live is not None and kept:
            self.live.add(stream, data if kept == data.count(b"\n") else _first_lines(data, kept), ts)

    def text(self, stream: str, line: str) -> None:
        """One line from Pipeloom's side of a node (a build step)."""
        self.feed(stream, line.replace("\n", " ").encode("utf-8", "replace") + b"\n")

    def skip(self, count: int) -> None:
        """Lines never read into memory because the log was full."""
        self.log.skip(count)

    def due(self) -> float | None:
        return self.live.due() if self.live is not None else None

    def tick(self) -> None:
        """Send held live lines now."""
        if self.live is not None:
            self.live.flush()


def _first_lines(data: bytes, n: int) -> bytes:
    end = -1
    for _ in range(n):
        end = data.index(b"\n", end + 1)
    return data[:end + 1]


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


def last_error_lines(path: str | os.PathLike, n: int = 3) -> list[str]:
    """The last `n` lines a failed node wrote to stderr (or to stdout when it wrote no stderr), each cut
    to 200 characters: for a Python program, the end of its traceback."""
    lines = tail_log(path, max_lines=200)
    err = [ln["text"] for ln in lines if ln["stream"] == "err" and ln["text"].strip()]
    out = [ln["text"] for ln in lines if ln["stream"] in ("out", "build") and ln["text"].strip()]
    return [ln[:200] for ln in (err or out)[-n:]]
