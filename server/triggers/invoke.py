"""The http trigger's core, with no web framework in it: admission, request bodies, results.

`InvokeGate` lets `max_concurrent` runs go at once and up to `queue` more wait;
past that a caller is told to come back later. `body_to_input` turns a request
body (JSON, NDJSON, CSV or text, by Content-Type) into the entry input's file
through the engine's own conversions, so an invalid body is refused with the
same words a bad file would get.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from server.engine.errors import PipeloomError

CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonlines": "ndjson",
    "text/csv": "csv",
    "text/plain": "text",
}
EXT = {"json": "json", "ndjson": "ndjson", "csv": "csv", "text": "txt", "parquet": "parquet", "binary": "bin"}


class Busy(PipeloomError):
    """Every run slot and queue place is taken; `retry_after` is a hint in seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class BadBody(PipeloomError):
    """The request body cannot feed the entry input."""


class InvokeGate:
    """At most `max_concurrent` runs at once, `queue` more waiting, the rest refused."""

    def __init__(self, max_concurrent: int, queue: int):
        self.max_concurrent = max_concurrent
        self.queue = queue
        self._cond = threading.Condition()
        self.running = 0
        self.waiting = 0
        self._durations: list[float] = []

    def reserve(self) -> None:
        """Take a place in the queue, or raise Busy when every slot and place is taken."""
        with self._cond:
            if self.running >= self.max_concurrent and self.waiting >= self.queue:
                raise Busy(f"{self.running} run(s) going and {self.waiting} waiting; the queue holds {self.queue}",
                           self.retry_after())
            self.waiting += 1

    def acquire(self, timeout: float | None) -> bool:
        """After `reserve()`: wait for a run slot up to `timeout`; False (and the place given up) if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            try:
                while self.running >= self.max_concurrent:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                self.running += 1
                return True
            finally:
                self.waiting -= 1

    def enter(self, timeout: float | None) -> bool:
        """Reserve a place and wait for a slot (see `reserve` and `acquire`)."""
        self.reserve()
        return self.acquire(timeout)

    def leave(self, duration_s: float | None = None) -> None:
        """Give a slot back (when the run has ended, not when the caller stopped waiting)."""
        with self._cond:
            self.running = max(0, self.running - 1)
            if duration_s is not None:
                self._durations = (self._durations + [duration_s])[-20:]
            self._cond.notify()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the typical run time times the queue's depth per slot."""
        typical = sorted(self._durations)[len(self._durations) // 2] if self._durations else 1.0
        return max(1, math.ceil(typical * (self.waiting + 1) / self.max_concurrent))


def body_format(content_type: str | None) -> str:
    """The data format of a request body from its Content-Type (parameters such as charset ignored)."""
    base = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if base not in CONTENT_TYPES:
        raise BadBody(f"Content-Type `{base}` cannot feed a pipeline; send one of {', '.join(CONTENT_TYPES)}")
    return CONTENT_TYPES[base]


def body_to_input(body: bytes, content_type: str | None, input_format: str, dest: Path) -> int | None:
    """Write `body` to `dest` in the entry input's format; returns its record count when known."""
    from server.engine.data import formats

    src_fmt = body_format(content_type)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = dest.with_name(f".body-{os.getpid()}-{threading.get_ident()}.{EXT[src_fmt]}")
    raw.write_bytes(body)
    try:
        if src_fmt == input_format:
            try:
                count = _check(raw, src_fmt)
            except UnicodeDecodeError as exc:
                raise BadBody(f"the body is not UTF-8 (byte {exc.start})") from None
            except BadBody:
                raise  # already says what is wrong with the body
            except PipeloomError as exc:
                raise BadBody(f"the body is not valid {src_fmt}: {_plain(exc, raw)}") from None
            os.replace(raw, dest)
            return count
        if src_fmt == "json" and input_format == "text":
            _json_to_lines(body, dest)
            return None
        ok, why = formats.can_convert(src_fmt, input_format)
        if not ok:
            raise BadBody(f"a {src_fmt} body cannot feed a {input_format} input: {why}")
        try:
            return formats.convert(raw, src_fmt, dest, input_format)
        except PipeloomError as exc:
            raise BadBody(f"the body cannot become {input_format}: {_plain(exc, raw)}") from None
    finally:
        raw.unlink(missing_ok=True)


def _parse_json(raw: bytes):
    """A JSON body as a value, or BadBody saying what is wrong with it."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise BadBody("the body is nested too deeply") from None
    except ValueError as exc:
        raise BadBody(f"the body is not valid JSON: {exc}") from None


def _json_to_lines(body: bytes, dest: Path) -> None:
    """A JSON string, or array of strings, for a text input: one line each."""
    value = _parse_json(body)
    lines = [value] if isinstance(value, str) else value
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise BadBody("a text input takes a JSON string or an array of strings (one line each), "
                      "or send the text itself as text/plain")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    tmp.write_text("".join(x.rstrip("\r\n") + "\n" for x in lines), encoding="utf-8")
    os.replace(tmp, dest)


def _check(path: Path, fmt: str) -> int | None:
    """Read the whole file as the engine would, raising its error on the first bad record."""
    from server.engine.data import formats

    if fmt == "text":
        path.read_bytes().decode("utf-8")
        return None
    if fmt == "json":
        value = _parse_json(path.read_bytes())
        return len(value) if isinstance(value, list) else None
    return sum(1 for _ in formats.iter_records(path, fmt))


def _plain(exc: Exception, raw: Path) -> str:
    """The engine's message without the temporary file's name, which means nothing to a caller."""
    return str(exc).replace(str(raw), "body").replace(raw.name, "body")


def result_body(path: str | os.PathLike, fmt: str) -> tuple[bytes, str]:
    """(bytes, content type) answering a call: JSON as it is, a records output as a JSON array."""
    from server.engine.data import formats

    path = Path(path)
    if fmt == "json":
        return path.read_bytes(), "application/json"
    if fmt in ("ndjson", "csv", "parquet"):
        parts = [b"["]
        for i, rec in enumerate(formats.iter_records(path, fmt)):
            parts.append((b"," if i else b"") + formats.json_text(rec, compact=True).encode("utf-8"))
        parts.append(b"]")
        return b"".join(parts), "application/json"
    if fmt == "text":
        return path.read_bytes(), "text/plain; charset=utf-8"
    return path.read_bytes(), "application/octet-stream"
