"""Byte scanners that find record boundaries in ndjson, csv and JSON-array files, at block speed.

Each scanner reads a file once, in blocks of BLOCK bytes, and reports a
checkpoint per block: (record, byte, line), meaning record number `record`
(counted from 0) starts at byte `byte`, after `line` physical lines. At the
end it knows the exact number of records. The readers in preview.py start a
page at the checkpoint before it, so no page reads more than about a block.

The scanners count what the readers would read, without parsing values:

- ndjson: non-blank lines (bytes.strip()), as preview and conversions read them.
- csv: rows (line breaks outside quotes; empty lines are no rows), less the
  header. A quote counts as opening a field only after a delimiter or a line
  break, as the csv module reads it; a file with a quote inside an unquoted
  field, or with bare CR line ends, is counted by the csv module itself
  (slower, and without checkpoints).
- json: the items of the top-level array: commas at depth 1 outside strings,
  found on whole blocks with bytes methods (escapes, translate, pairs of
  quotes removed, nested containers removed by one regex).

A structural problem (the end of the file inside a string or a container,
content after the array, a NUL byte in csv) ends the scan with `problem` set
and no total; the readers report such a file's errors as before, by record
and line. Values themselves are not checked: a malformed value still counts
as one record, and its page says what is wrong with it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from .. import jsonread
from ..csvread import CsvReader

BLOCK = 256 * 1024
CARRY_MAX = 16 * 1024 * 1024  # a csv record longer than this goes to the csv module
SEEK_LIMIT = 64 * 1024  # how far into a block the JSON scanner looks for an item boundary to checkpoint

Checkpoint = tuple[int, int, int]  # (record, byte, line)


class Stopped(Exception):
    """The scan was asked to stop (the server is closing)."""


@dataclass
class ScanResult:
    """What a scan found: the exact total (None when the file has a structural problem) and the checkpoints."""

    total: int | None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problem: str | None = None
    header_end: int = 0  # csv: the byte where the first data row starts
    header_lines: int = 0  # csv: physical lines in the header


Progress = Callable[[Checkpoint], None]


def scan_file(path: str | os.PathLike, fmt: str, progress: Progress | None = None,
              stop: threading.Event | None = None) -> ScanResult | None:
    """Scan a json, ndjson or csv file; None when the format (or a JSON document that is not an array) has no
    records to index."""
    progress = progress or (lambda cp: None)
    stop = stop or threading.Event()
    with open(path, "rb", buffering=0) as f:
        if fmt == "ndjson":
            return _scan_ndjson(f, progress, stop)
        if fmt == "csv":
            return _scan_csv(f, path, progress, stop)
        if fmt == "json":
            return _scan_json(f, path, progress, stop)
    return None


def _blocks(f, stop: threading.Event):
    while True:
        if stop.is_set():
            raise Stopped()
        chunk = f.read(BLOCK)
        if not chunk:
            return
        yield chunk


# ---------------------------------------------------------------------------- ndjson

def _scan_ndjson(f, progress: Progress, stop: threading.Event) -> ScanResult:
    records = lines = pos = 0
    partial = False  # the line in progress (started in an earlier block) holds a non-blank byte
    at_line_start = True
    cps: list[Checkpoint] = []
    for chunk in _blocks(f, stop):
        first = chunk.find(b"\n")
        if first < 0:
            if at_line_start:
                cps.append((records, pos, lines))
                progress(cps[-1])
            partial = partial or bool(chunk.strip())
            at_line_start = False
            pos += len(chunk)
            continue
        last = chunk.rfind(b"\n")
        cp = (records, pos, lines) if at_line_start else None
        records += partial or bool(chunk[:first].strip())
        lines += 1
        if cp is None:
            cp = (records, pos + first + 1, lines)
        cps.append(cp)
        progress(cp)
        if last > first:
            a, b = first + 1, last + 1  # whole lines, each ending with \n
            n_lines = chunk.count(b"\n", a, b)
            # Records are mostly objects: when every line starts with `{`, none is blank.
            if chunk.count(b"\n{", a, b) + (chunk[a : a + 1] == b"{") == n_lines:
                n = n_lines
            else:
                n = sum(1 for ln in chunk[a:b].split(b"\n")[:-1] if ln.strip())
            records += n
            lines += n_lines
        tail = chunk[last + 1 :]
        partial = bool(tail.strip()) if tail else False
        at_line_start = not tail
        pos += len(chunk)
    if partial:
        records += 1
    return ScanResult(records, cps)


# ---------------------------------------------------------------------------- csv

# Bytes by class: quote, delimiter and line feed stay, anything else becomes `a`.
_CLASSES = bytes(b if b in b'",\n' else ord("a") for b in range(256))
_AS_QUOTES = bytes.maketrans(b"c", b'"')


class _Exact(Exception):
    """The parity model does not fit this file: count with the csv module instead."""


def _csv_rows(chunk: bytes) -> int:
    """Rows in `chunk`, which starts at a row boundary and ends after a line break outside quotes."""
    if b"\r" in chunk:
        if chunk.count(b"\r") != chunk.count(b"\r\n"):
            raise _Exact()
        chunk = chunk.replace(b"\r", b"")
    if b'"' not in chunk:
        if b"\n\n" in chunk or chunk[:1] == b"\n":
            raise _Slow()
        return chunk.count(b"\n")
    # A quote after a delimiter, a line break or a quote may open a field; one after any other byte (`c`)
    # must close one or start an escaped pair, or the csv module reads it as a literal and parity is wrong.
    marks = chunk.translate(_CLASSES).replace(b'a"', b"ac").translate(None, b"a,")  # same length: fast
    if b"c" in marks.translate(None, b"\n")[0::2]:
        raise _Exact()
    if b"\n\n" in chunk or chunk[:1] == b"\n":
        raise _Slow()
    marks = marks.translate(_AS_QUOTES).replace(b'""', b"")
    if b'"' not in marks:
        return marks.count(b"\n")
    return sum(part.count(b"\n") for part in marks.split(b'"')[0::2])


class _Slow(Exception):
    """A block with empty lines (which are no rows): count it with the csv module."""


def _csv_rows_slowly(chunk: bytes) -> int:
    text = chunk.decode("utf-8", "surrogateescape")
    return sum(1 for row in csv.reader(io.StringIO(text, newline="")) if row)


def _breaks(data: bytes) -> int:
    if b"\r" not in data:
        return data.count(b"\n")
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _header_end(data: bytes) -> int:
    """The byte after the first non-empty row of `data` (0 when it does not end in `data`)."""
    start = 0
    while True:
        nl = data.find(b"\n", start)
        if nl < 0:
            return 0
        if data.count(b'"', 0, nl) % 2 == 0:
            if data[:nl + 1].strip(b"\r\n"):
                return nl + 1
        start = nl + 1


def _scan_csv(f, path, progress: Progress, stop: threading.Event) -> ScanResult:
    head = f.read(3)
    bom = 3 if head == jsonread.BOM else 0
    f.seek(bom)
    rows = lines = 0
    pos = bom
    header_end = header_lines = 0
    cps: list[Checkpoint] = []
    carry = b""
    try:
        for block in _blocks(f, stop):
            data = carry + block if carry else block
            nul = block.find(b"\x00")
            if nul >= 0:
                return ScanResult(None, cps, f"a NUL byte at byte {pos + len(carry) + nul:,}", header_end, header_lines)
            cut = _cut(data)
            if not cut:
                carry = data
                if len(carry) > CARRY_MAX:
                    raise _Exact()
                continue
            piece, carry = data[:cut], data[cut:]
            if not header_end:
                end = _header_end(piece)
                if not end:
                    carry = data
                    continue
                header_end, header_lines = pos + end, _breaks(piece[:end])
                lines += header_lines
                pos += end
                piece = piece[end:]
            cp = (rows, pos, lines)
            cps.append(cp)
            progress(cp)
            try:
                rows += _csv_rows(piece)
            except _Slow:
                rows += _csv_rows_slowly(piece)
            lines += _breaks(piece)
            pos += len(piece)
        if carry.strip(b"\r\n"):
            if not header_end:
                header_end = pos + len(carry)
                header_lines = _breaks(carry) + 1
            else:
                try:
                    rows += _csv_rows(carry + b"\n")
                except _Slow:
                    rows += _csv_rows_slowly(carry)
        if carry.count(b'"') % 2:
            return ScanResult(None, cps, "the file ends inside a quoted field", header_end, header_lines)
    except _Exact:
        return _count_csv_exactly(path, stop)
    return ScanResult(rows, cps, None, header_end, header_lines)


def _cut(block: bytes) -> int:
    """Just after the last line end of `block` with an even count of quotes before it; 0 if none."""
    end = len(block)
    for _ in range(8):
        nl = block.rfind(b"\n", 0, end)
        if nl < 0:
            return 0
        if block.count(b'"', 0, nl) % 2 == 0:
            return nl + 1
        end = nl
    return 0


def _count_csv_exactly(path, stop: threading.Event) -> ScanResult:
    """Rows as the csv module reads them (no checkpoints: a page reads from the start)."""
    with open(path, "rb") as g:
        reader = CsvReader(g, path)
        n = 0
        try:
            while reader.next_raw() is not None:
                n += 1
                if not n % 65536 and stop.is_set():
                    raise Stopped()
        except jsonread.MalformedDataError as exc:
            return ScanResult(None, [], str(exc))
    return ScanResult(n, [])


# ---------------------------------------------------------------------------- json arrays

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}",')
_INNER = re.compile(rb"[\[{][^\[\]{}]*[\]}]")
_BRACKET = re.compile(rb"([\[\]{}])")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


class _JsonState:
    """Where a JSON scan stands between blocks."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.odd_backslash = False
        self.commas = 0  # commas at depth 1 so far
        self.ended = False  # the top-level array has closed


def _outside(state: _JsonState, chunk: bytes) -> bytes:
    """The structural bytes of `chunk` that are outside strings (`[]{},`), updating the string state."""
    data = b"\\" + chunk if state.odd_backslash else chunk
    body = data.rstrip(b"\\")
    state.odd_backslash = (len(data) - len(body)) % 2 == 1
    if b'\\"' in body:  # without a backslash before a quote, escapes change nothing we count
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(None, _NOT_STRUCTURE)
    if state.in_string:
        q = marks.find(b'"')
        if q < 0:
            return b""
        marks = marks[q + 1 :]
        state.in_string = False
    nq = marks.count(b'"')
    if not nq:
        return marks
    if nq == 2 * marks.count(b'""'):
        return marks.translate(None, b'"')
    marks = marks.replace(b'""', b"")
    parts = marks.split(b'"')
    state.in_string = len(parts) % 2 == 0
    return b"".join(parts[0::2])


def _walk(state: _JsonState, marks: bytes) -> None:
    """Count depth-1 commas in `marks` (outside strings) and follow the depth."""
    if state.depth == 1 and not marks.translate(None, b","):
        state.commas += len(marks)
        return
    while True:
        fewer = _INNER.sub(b"", marks)
        if len(fewer) == len(marks):
            break
        marks = fewer
    # what is left: commas and closers of containers opened earlier, then commas and openers of new ones
    for piece in _BRACKET.split(marks):
        if not piece:
            continue
        c = piece[0]
        if c == 44:
            if state.ended:
                raise ValueError("content after the end of the top-level array")
            if state.depth == 1:
                state.commas += len(piece)
        elif c in _OPEN:
            if state.ended:
                raise ValueError("content after the end of the top-level array")
            state.depth += 1
        else:
            state.depth -= 1
            if state.depth < 0:
                raise ValueError("a closing bracket without an opening one")
            if state.depth == 0:
                state.ended = True
        if c in _OPEN and len(piece) > 1:  # pragma: no cover - _BRACKET splits brackets one by one
            raise AssertionError(piece)


def _first_boundary(state: _JsonState, chunk: bytes) -> int:
    """The offset in `chunk` just after its first comma at depth 1 outside strings, from the state at its start
    (before _outside/_walk update it); -1 if none within SEEK_LIMIT bytes."""
    depth, in_string, escaped = state.depth, state.in_string, state.odd_backslash
    for i in range(min(len(chunk), SEEK_LIMIT)):
        c = chunk[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:
                escaped = True
            elif c == 34:
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 44:
            if depth == 1:
                return i + 1
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth <= 0:
                return -1
    return -1


def _scan_json(f, path, progress: Progress, stop: threading.Event) -> ScanResult | None:
    kind = jsonread.peek_json(f, path)  # raises on UTF-16/32
    if kind != "array":
        return None
    pos = f.tell()
    f.seek(pos + 1)
    pos += 1
    state = _JsonState()
    state.depth = 1
    nonempty: bool | None = None
    cps: list[Checkpoint] = []
    try:
        for chunk in _blocks(f, stop):
            if nonempty is None:
                rest = chunk.lstrip(b" \t\r\n")
                if rest:
                    nonempty = rest[:1] != b"]"
                    if nonempty:
                        cp = (0, pos + len(chunk) - len(rest), 0)
                        cps.append(cp)
                        progress(cp)
            elif state.depth >= 1 and not state.ended:
                at = _first_boundary(state, chunk)
                if at >= 0:
                    cp = (state.commas + 1, pos + at, 0)
                    cps.append(cp)
                    progress(cp)
            _walk(state, _outside(state, chunk))
            pos += len(chunk)
    except ValueError as exc:
        return ScanResult(None, cps, str(exc))
    if not state.ended or state.in_string:
        return ScanResult(None, cps, "the file ends inside the top-level array")
    return ScanResult(state.commas + 1 if nonempty else 0, cps)
