"""Reading CSV strictly, naming the true physical line of every problem, at C speed.

The file is read as bytes in blocks of up to a megabyte (growing from 16 KiB), each cut at a line
end outside quotes (an even count of quotes before the cut), so no record
spans two blocks. A block is checked for NUL bytes and decoded in one go
(a problem's line is counted from the bytes before it), then split into
rows: on commas directly when it holds no quote at all, otherwise by the
csv module in strict mode. A text wrapper would decode ahead of the csv
reader and report an earlier line; this cannot.

A block that would pass BLOCK_CARRY_MAX without a cut (a quote standing
alone inside an unquoted field, which the csv module takes literally, upsets
the count) hands the rest of the file to a line-by-line reader that is
slower but needs no cut at all.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from typing import Iterator

from .dataerrors import MalformedDataError

BLOCK = 1 << 20
FIRST_BLOCK = 16 << 10
BLOCK_CARRY_MAX = 16 << 20
BOM = b"\xef\xbb\xbf"

# Cells larger than the csv module's 128 KiB default are legitimate (JSON-encoded values).
csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")
_NUL = "a NUL byte, which CSV text cannot hold"
_OPEN_QUOTE = "a quoted field starts here and is never closed (the file ends inside quotes)"


def _breaks(data: bytes) -> int:
    """Line breaks in `data` (LF, CRLF or a bare CR)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _bad_utf8(exc: UnicodeDecodeError, line_start: int) -> str:
    return f"not valid UTF-8 text (byte {exc.start - line_start + 1} of the line)"


def _cut(block: bytes, quotes_before: int) -> int:
    """Where to end a piece of `block`: just after a line end with an even count of quotes before it; 0 if none."""
    end = len(block)
    for _ in range(4):
        nl = block.rfind(b"\n", 0, end)
        if nl < 0:
            # old Mac line ends; a CR at the very end might be the first half of a CRLF
            nl = block.rfind(b"\r", 0, min(end, len(block) - 1))
            if nl < 0:
                return 0
        if (quotes_before + block.count(b'"', 0, nl)) % 2 == 0:
            return nl + 1
        end = nl
    return 0


def _end_of_last_record(lines: Iterator[str]) -> int:
    """The line on which the last complete record ends (0 if none), in lines that end inside quotes."""
    reader = csv.reader(lines, strict=True)
    done = 0
    try:
        for _ in reader:
            done = reader.line_num
    except csv.Error:
        pass
    return done


class CsvReader:
    """Rows of a CSV file with a header line, as dicts of strings.

    Strict: a quote must close before the end of the file and be followed by
    a delimiter, and NUL bytes are refused; every error names the physical
    line. Short rows are padded with empty strings; a row with more cells
    than the header is malformed. `line` is the physical line of the last
    row read."""

    def __init__(self, f: io.BufferedIOBase, path: str | os.PathLike):
        self.path = path
        self.file = f
        self._lineno = 0
        self._block_reader = None
        self._rows = self._read(f)
        self.columns: list[str] = []
        row = self._next()
        if row is not None:
            seen = set()
            for col in row:
                if col in seen:
                    raise MalformedDataError(path, f"column `{col}` appears twice in the header", "line 1")
                seen.add(col)
            self.columns = row

    @property
    def line(self) -> int:
        if self._block_reader is not None:
            return self._lineno + self._block_reader.line_num
        return self._lineno

    def _error(self, message: str, line: int) -> MalformedDataError:
        return MalformedDataError(self.path, message, f"line {line}")

    def _next(self) -> list[str] | None:
        return next(self._rows, None)

    # ------------------------------------------------------------ blocks

    def _read(self, f: io.BufferedIOBase) -> Iterator[list[str]]:
        before = 0  # physical lines in the blocks already read
        carry: list[bytes] = []
        carried = quotes = 0
        first = True
        size = FIRST_BLOCK  # a preview's first page reads little; a conversion soon reads a megabyte at a time
        while True:
            block = f.read(size)
            size = min(size * 2, BLOCK)
            if first:
                first = False
                if block[:3] == BOM:
                    block = block[3:]
            if not block:
                if carry:
                    yield from self._block(b"".join(carry), before)
                return
            cut = _cut(block, quotes)
            if not cut:
                carry.append(block)
                carried += len(block)
                quotes += block.count(b'"')
                if carried > BLOCK_CARRY_MAX:
                    # no safe cut in sight: finish the line in hand and go line by line
                    lead = b"".join(carry) + f.readline()
                    yield from self._by_line(itertools.chain(io.BytesIO(lead), f), before)
                    return
                continue
            carry.append(block[:cut])
            data = b"".join(carry)
            rest = block[cut:]
            carry = [rest] if rest else []
            carried, quotes = len(rest), rest.count(b'"')
            yield from self._block(data, before)
            before += _breaks(data)

    def _block(self, data: bytes, before: int, partial: bool = False) -> Iterator[list[str]]:
        """The rows of one block that starts at a record boundary; `before` lines precede it.

        `partial`: the block is the good start of a bad one, and may stop inside quotes."""
        nul = data.find(b"\0")
        if nul >= 0:
            yield from self._good_part(data, nul, before)
            raise self._error(_NUL, before + _breaks(data[:nul]) + 1)
        if b'"' not in data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                start = yield from self._good_part(data, exc.start, before)
                raise self._error(_bad_utf8(exc, start), before + _breaks(data[:exc.start]) + 1) from None
            lines = _LINE_BREAK.split(text) if "\r" in text else text.split("\n")
            for lineno, line in enumerate(lines, before + 1):
                if line:
                    self._lineno = lineno
                    yield line.split(",")
            return
        if len(data) <= BLOCK:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                start = yield from self._good_part(data, exc.start, before)
                raise self._error(_bad_utf8(exc, start), before + _breaks(data[:exc.start]) + 1) from None

            def make_lines():
                return io.StringIO(text, newline="")  # split at LF, CRLF and CR only, endings kept
        else:
            def make_lines():  # a long carried block: bytes lines cost less than StringIO's 4 bytes a character
                return map(bytes.decode, data.splitlines(keepends=True))
        reader = csv.reader(make_lines(), strict=True)
        self._lineno, self._block_reader = before, reader  # `line` reads the reader's count from here on
        try:
            for row in reader:
                if row:
                    yield row
        except UnicodeDecodeError as exc:
            raise self._error(_bad_utf8(exc, 0), before + reader.line_num + 1) from None
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                raise self._error(f"invalid CSV ({exc})", before + reader.line_num) from exc
            if not partial:
                raise self._error(_OPEN_QUOTE, before + _end_of_last_record(make_lines()) + 1) from None
        finally:
            self._lineno, self._block_reader = before + reader.line_num, None

    def _good_part(self, data: bytes, bad: int, before: int):
        """Yield the rows of the lines before the one holding byte `bad`, so a page shows
        what precedes a problem; return where that line starts."""
        head = data[:bad]
        start = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
        if start:
            yield from self._block(data[:start], before, partial=True)
        return start

    # ------------------------------------------------------------ line by line

    def _by_line(self, raw_lines: Iterator[bytes], before: int) -> Iterator[list[str]]:
        """Rows read one physical line at a time (lines without a quote split directly)."""
        lineno = before
        pending: list[str] = []

        def decoded() -> Iterator[str]:
            nonlocal lineno
            for raw in raw_lines:
                pieces = [p for p in _BARE_CR.split(raw) if p] if raw.count(b"\r") > raw.endswith(b"\r\n") else (raw,)
                for piece in pieces:
                    lineno += 1
                    if b"\0" in piece:
                        raise self._error(_NUL, lineno)
                    try:
                        yield piece.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise self._error(_bad_utf8(exc, 0), lineno) from None

        source = decoded()
        # the csv module reads the line looked at first, then the file; None ends it
        reader = csv.reader(iter(lambda: pending.pop() if pending else next(source, None), None), strict=True)
        while True:
            start = lineno + 1
            line = next(source, None)
            if line is None:
                return
            if '"' not in line:
                text = line.rstrip("\r\n")
                if text:
                    self._lineno = lineno
                    yield text.split(",")
                continue
            pending.append(line)
            try:
                row = next(reader)
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    raise self._error(_OPEN_QUOTE, start) from None
                raise self._error(f"invalid CSV ({exc})", lineno) from exc
            self._lineno = lineno
            if row:
                yield row

    # ------------------------------------------------------------ rows

    def next_raw(self) -> list[str] | None:
        """The next data row as a list, or None at the end."""
        row = self._next()
        if row is not None and len(row) > len(self.columns):
            raise MalformedDataError(
                self.path, f"{len(row)} fields, but the header has {len(self.columns)}", f"line {self.line}"
            )
        return row

    def to_dict(self, row: list[str]) -> dict[str, str]:
        """A data row as a dict keyed by the header."""
        if len(row) < len(self.columns):
            row = row + [""] * (len(self.columns) - len(row))
        return dict(zip(self.columns, row))

    def raw_rows(self) -> Iterator[list[str]]:
        """The remaining data rows as lists, unchecked: for readers that check a batch at once."""
        return self._rows

    def __iter__(self) -> Iterator[dict[str, str]]:
        while (row := self.next_raw()) is not None:
            yield self.to_dict(row)


def open_csv(path: str | os.PathLike) -> io.BufferedReader:
    """Open a CSV file for CsvReader (binary: the reader decodes UTF-8 and drops a leading BOM)."""
    return open(path, "rb")
