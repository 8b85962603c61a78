"""The fast path of a conversion: records read and written a batch at a time, at C speed.

Readers cut the source into blocks and parse each block in one call: a JSON
array at its top-level record ends (found with the same DepthScanner that
enforces the depth limit) and parsed with orjson, ndjson a block of lines,
csv a batch of rows, parquet a record batch. Writers encode a whole batch in
one call (the json module's C encoder, the csv module's writer, orjson for
the JSON text of nested values in csv cells).

The fast path never decides what a file means on its own: whenever it cannot
vouch that its result is the exact one (malformed input, integers too long
for orjson, a number orjson would print differently, a JSON array cut it
cannot place), it raises Fallback, and the record-by-record path in
formats.py, which defines the semantics and every error message, does the
whole conversion instead. Output bytes are therefore those of that path.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import re
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any, Iterator

from ..csvread import CsvReader, open_csv
from ..jsonread import MAX_DEPTH, DepthScanner, TooDeep, iter_json_values, parse_ndjson_line, peek_json

try:
    import orjson
except ImportError:  # the fast path needs it; without it every conversion takes the exact path
    orjson = None

BLOCK = 4 << 20  # bytes of source parsed in one call
TAIL = 64 << 10  # where a JSON array block looks for its last record end
MAX_CARRY = 64 << 20  # a record longer than this goes to the exact path
CSV_BATCH = 20_000
_WS = b" \t\r\n"
# Digits to "0", everything else to "x": a run of 19 zeros is an integer orjson might read as a float.
_DIGIT_MAP = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_LONG_DIGITS = b"0" * 19
# Where orjson and Python's repr may print a float differently (exponents, and 1e-05 .. 1e-04).
_FLOAT_STYLE = re.compile(r"[0-9][eE]|\.0000")
_FLOAT_STYLE_B = re.compile(rb"[0-9][eE]|\.0000")


class Fallback(Exception):
    """The fast path cannot vouch for this input; the exact path converts it instead."""


def available() -> bool:
    """True when the fast path can run (it needs orjson)."""
    return orjson is not None


def _long_digits(data: bytes) -> bool:
    return data.translate(_DIGIT_MAP).find(_LONG_DIGITS) >= 0


# ---------------------------------------------------------------------------
# Readers: each yields lists of dicts


def _json_block(body: bytes, path: Path) -> list:
    text = b"[" + body + b"]"
    if _long_digits(body):
        # the engine's own reader keeps integers beyond 64 bits exact; orjson would make them floats
        try:
            return list(iter_json_values(io.BytesIO(text), path))
        except Exception:
            raise Fallback from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Fallback from None


def _cut(data: bytes, scanner: DepthScanner) -> tuple[int, DepthScanner] | None:
    """The end of the last whole record in `data` (just after its `}`) and the scanner state there."""
    start = max(0, len(data) - TAIL)
    base = copy.copy(scanner)
    base.feed(data[:start])
    end = len(data)
    for _ in range(16):
        c = data.rfind(b"}", start, end)
        if c < 0:
            return None
        state = copy.copy(base)
        state.feed(data[start:c + 1])
        if state.depth == 1 and not state.in_string and not state.odd_backslash:
            return c + 1, state
        end = c
    return None


def json_bodies(path: Path) -> Iterator[bytes]:
    """The text of a JSON array file's records, a block of whole records at a time (no brackets,
    no leading comma)."""
    with open(path, "rb") as f:
        if peek_json(f, path) != "array":
            raise Fallback
        f.read(1)
        scanner = DepthScanner(MAX_DEPTH)
        scanner.feed(b"[")
        carry = b""
        first = True
        while True:
            block = f.read(BLOCK)
            if not block:
                if carry.strip(_WS) != b"]":
                    raise Fallback
                return
            data = carry + block if carry else block
            try:
                cut = _cut(data, scanner)
            except TooDeep:
                raise Fallback from None
            if cut is None:
                if len(data) > MAX_CARRY:
                    raise Fallback
                carry = data
                continue
            pos, scanner = cut
            body = data[:pos].lstrip(_WS)
            carry = data[pos:]
            if not first:
                if body[:1] != b",":
                    raise Fallback
                body = body[1:]
            first = False
            yield body


def json_records(body: bytes, path: Path) -> list[dict]:
    """The records of one block from json_bodies."""
    rows = _json_block(body, path)
    if not rows or set(map(type, rows)) != {dict}:
        raise Fallback
    return rows


def json_batches(path: Path) -> Iterator[list[dict]]:
    """The records of a JSON array file, a block at a time."""
    for body in json_bodies(path):
        yield json_records(body, path)


def ndjson_blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of an ndjson file, each with the number of its first line."""
    lineno = 0
    with open(path, "rb") as f:
        carry = b""
        while True:
            block = f.read(BLOCK)
            data = carry + block if carry else block
            if not data:
                return
            if block:
                cut = data.rfind(b"\n") + 1
                if not cut:
                    if len(data) > MAX_CARRY:
                        raise Fallback
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            first = lineno + 1
            lineno += data.count(b"\n") + (not data.endswith(b"\n"))
            yield data, first


def ndjson_records(data: bytes, first: int, path: Path) -> list[dict]:
    """The records of one block from ndjson_blocks."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return _ndjson_block(path, lines, data, first)


def ndjson_batches(path: Path) -> Iterator[list[dict]]:
    """The records of an ndjson file, a block of lines at a time."""
    for data, first in ndjson_blocks(path):
        rows = ndjson_records(data, first, path)
        if rows:
            yield rows


def _ndjson_block(path: Path, lines: list[bytes], data: bytes, first: int) -> list[dict]:
    try:
        if first == 1 and lines and lines[0][:3] == b"\xef\xbb\xbf":
            raise ValueError("a byte-order mark")
        DepthScanner(MAX_DEPTH).feed(data)
        if _long_digits(data):
            raise ValueError("long integers")
        rows = list(map(orjson.loads, lines))
        if set(map(type, rows)) <= {dict}:
            return rows
    except (ValueError, TooDeep):  # orjson.JSONDecodeError is a ValueError
        pass
    # The engine's own line reader, which says exactly what is wrong and where.
    from .formats import MalformedDataError, _kind

    rows = []
    for lineno, line in enumerate(lines, first):
        if not line.strip():
            continue
        value = parse_ndjson_line(path, lineno, line)
        if not isinstance(value, dict):
            raise MalformedDataError(path, f"expected a JSON object, found {_kind(value)}", f"line {lineno}")
        rows.append(value)
    return rows


def csv_header(path: Path) -> list[str]:
    """The columns of a CSV file (its header line)."""
    with open_csv(path) as f:
        return CsvReader(f, path).columns


def csv_row_batches(path: Path) -> Iterator[list[list[str]]]:
    """The data rows of a CSV file as lists padded to the header, a batch at a time."""
    with open_csv(path) as f:
        reader = CsvReader(f, path)
        width = len(reader.columns)
        rows_iter = reader.raw_rows()
        while True:
            try:
                batch = list(itertools.islice(rows_iter, CSV_BATCH))
            except Exception:
                raise Fallback from None  # the exact path reports the first problem, in file order
            if not batch:
                return
            lengths = set(map(len, batch))
            if max(lengths) > width:
                raise Fallback
            if lengths != {width}:
                pad = [""] * width
                batch = [r if len(r) == width else r + pad[len(r):] for r in batch]
            yield batch


def csv_batches(path: Path) -> Iterator[list[dict]]:
    """The records of a CSV file as dicts of strings, a batch at a time."""
    cols = csv_header(path)
    for batch in csv_row_batches(path):
        yield [dict(zip(cols, r)) for r in batch]


def parquet_batches(path: Path) -> Iterator[list[dict]]:
    """The records of a parquet file, a record batch at a time."""
    from .formats import BATCH_ROWS, open_parquet

    pf = open_parquet(path)
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            yield batch.to_pylist()
    finally:
        pf.close()


READERS = {"json": json_batches, "ndjson": ndjson_batches, "csv": csv_batches, "parquet": parquet_batches}


# ---------------------------------------------------------------------------
# Writers


def json_lines(rows: list[dict], sep: str = "\n") -> str:
    """The JSON text of each record, joined by `sep`."""
    from .formats import _encode, json_text

    try:
        return sep.join(map(_encode, rows))
    except (ValueError, RecursionError):
        return sep.join(map(json_text, rows))


def _nested_cells(values: list) -> list[str]:
    """CSV cells for a column holding nested values (and maybe others), as csv_cell gives them."""
    from .formats import csv_cell

    dumps = orjson.dumps
    if None not in values and str not in set(map(type, values)):
        try:
            cells = list(map(dumps, values))
        except TypeError:  # beyond 64-bit integers, non-string keys, and the like
            return list(map(csv_cell, values))
        if _FLOAT_STYLE_B.search(b"\0".join(cells)):
            return list(map(csv_cell, values))
        return list(map(bytes.decode, cells))
    out = []
    for v in values:
        t = type(v)
        if t is dict or t is list:
            try:
                s = dumps(v).decode()
            except TypeError:
                s = csv_cell(v)
            else:
                if _FLOAT_STYLE.search(s):
                    s = csv_cell(v)
            out.append(s)
        elif t is str or v is None:
            out.append(v)
        else:
            out.append(csv_cell(v))
    return out


_NATIVE = frozenset({str, int, float, type(None)})
_BOOL_CELL = {True: "true", False: "false", None: ""}


def _gather(rows: list[dict], cols: list[str]) -> list:
    """The values of `rows` under `cols`, column by column (None where a record lacks the key)."""
    if len(cols) > 1:
        try:
            return list(zip(*map(itemgetter(*cols), rows)))
        except KeyError:
            pass
    return [list(map(methodcaller("get", c), rows)) for c in cols]


def csv_columns(rows: list[dict], cols: list[str]) -> list[list]:
    """The cells of `rows` under `cols`, column by column, as the csv module should write them."""
    from .formats import csv_cell

    out = []
    for c, values in zip(cols, _gather(rows, cols)):
        kinds = set(map(type, values))
        if kinds <= _NATIVE:
            out.append(values)
        elif kinds <= {bool, type(None)}:
            out.append(list(map(_BOOL_CELL.__getitem__, values)))
        elif orjson is not None and kinds <= {dict, list, str, type(None)}:
            out.append(_nested_cells(values))
        else:
            out.append([v if type(v) in _NATIVE else csv_cell(v) for v in values])
    return out


def csv_text(rows: list) -> str:
    """CSV text for rows of cells: minimal quoting, LF line ends, and a field holding a CR quoted too.

    (The csv module quotes only the characters of its line terminator, so a bare CR would
    otherwise split the row for every reader.)"""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    text = buf.getvalue()
    if "\r" not in text:
        return text
    return _csv_text_with_cr(rows)


def _csv_text_with_cr(rows) -> str:
    buf = io.StringIO()
    lf = csv.writer(buf, lineterminator="\n")
    crlf = csv.writer(buf, lineterminator="\r\n")  # quotes fields holding CR or LF
    for row in rows:
        if any("\r" in c for c in row if type(c) is str):
            crlf.writerow(row)
            buf.seek(buf.tell() - 2)
            buf.write("\n")
            buf.truncate()
        else:
            lf.writerow(row)
    return buf.getvalue()


def csv_row_text(row: list) -> str:
    """One CSV line, by the same rules as csv_text."""
    return csv_text([row])


def _union_new(rows: list[dict], known: dict[str, None]) -> list[str]:
    new: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k not in known and k not in new:
                new[k] = None
    return list(new)


class CsvSink:
    """CSV output in one pass: the header is the union of keys in first-seen order.

    Columns first seen after rows were written go at the end; rows written
    before them (or encoded in parallel without them) are padded with empty
    cells when the file is finished, a copy of the body needed only then."""

    def __init__(self, out, columns: list[str] | None = None):
        self.out = out  # a binary file
        self.fixed = columns is not None
        self.columns: list[str] = list(columns or [])
        self._known = dict.fromkeys(self.columns)
        self._regions: list[list[int]] = []  # [end offset in the body, columns in its rows]
        self._body = 0
        self._head = 0
        self._started = False
        if self.fixed:
            self._start()

    def _start(self) -> None:
        self._started = True
        if self.columns:
            head = csv_row_text(self.columns).encode()
            self.out.write(head)
            self._head = len(head)

    def _append(self, data: bytes, width: int) -> None:
        if not self._started:
            self._start()
        self.out.write(data)
        self._body += len(data)
        if self._regions and self._regions[-1][1] == width:
            self._regions[-1][0] = self._body
        else:
            self._regions.append([self._body, width])

    def write(self, rows: list[dict]) -> None:
        """Append records, encoding them here."""
        if not self.fixed:
            keyset = self._known.keys()
            if not all(map(keyset.__ge__, map(dict.keys, rows))):
                new = _union_new(rows, self._known)
                self.columns += new
                self._known.update(dict.fromkeys(new))
        self._append(encode_csv_rows(rows, self.columns), len(self.columns))

    def merge(self, used: list[str], data: bytes) -> bool:
        """Append rows encoded elsewhere under the columns `used`; False when `used` does not
        agree with the columns so far, and the rows must be encoded again under them."""
        n = len(self.columns)
        if used[:n] == self.columns:
            new = used[n:]
            if new and self.fixed:
                return False
            self.columns += new
            self._known.update(dict.fromkeys(new))
        elif self.columns[:len(used)] != used:
            return False
        self._append(data, len(used))
        return True

    def finish(self) -> list[tuple[int, int]]:
        """Write the header when no row came; the regions of the body up to the last one whose
        rows need padding (none when every row has every column)."""
        if not self._started:
            self._start()
        width = len(self.columns)
        narrow = [i for i, (_, w) in enumerate(self._regions) if w < width]
        return [tuple(r) for r in self._regions[:narrow[-1] + 1]] if narrow else []


def encode_csv_rows(rows: list[dict], columns: list[str]) -> bytes:
    """The CSV lines of `rows` under `columns`."""
    if not columns:
        return csv_text([[]] * len(rows)).encode()
    return csv_text(list(zip(*csv_columns(rows, columns)))).encode()


def block_columns(rows: list[dict], given: list[str]) -> list[str]:
    """`given` followed by the keys of `rows` it lacks, in first-seen order."""
    known = dict.fromkeys(given)
    keyset = known.keys()
    if all(map(keyset.__ge__, map(dict.keys, rows))):
        return list(given)
    return list(given) + _union_new(rows, known)


def commit_csv(out, dst: Path, sink, segments: list[tuple[int, int]]) -> None:
    """Finish a CSV written through `sink` into `out` (an _AtomicOutput): as it is, or, when columns first
    appeared late (`segments`), as a padded copy under the full header, `out` then being dropped."""
    if not segments:
        out.commit()
        return
    from .formats import _AtomicOutput

    padded = _AtomicOutput(dst)
    try:
        with padded.create() as g:
            rewrite_with_padding(out.tmp, g, sink.columns, sink._head, segments)
        padded.commit()
    except BaseException:
        padded.discard()
        raise
    out.discard()


def rewrite_with_padding(src: Path, dst_file, columns: list[str], head_len: int,
                         segments: list[tuple[int, int]]) -> None:
    """Copy the CSV at `src` into `dst_file` under the full header, padding the rows of early segments."""
    dst_file.write(csv_row_text(columns).encode())
    width = len(columns)
    with open(src, "rb") as f:
        f.seek(head_len)
        done = 0
        for end, ncols in segments:
            def lines(limit: int = end - done):
                left = limit
                while left > 0:
                    line = f.readline(left)
                    if not line:
                        return
                    left -= len(line)
                    yield line.decode("utf-8")

            if ncols == width:
                left = end - done
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    dst_file.write(chunk)
                    left -= len(chunk)
                done = end
                continue
            done = end
            pad = [""] * (width - ncols)
            rows = csv.reader(lines())
            while batch := list(itertools.islice(rows, CSV_BATCH)):
                dst_file.write(csv_text([r + pad for r in batch]).encode())
        while chunk := f.read(1 << 20):
            dst_file.write(chunk)


def rebatch(batches: Iterator[list], n: int) -> Iterator[list]:
    """The same items in lists of exactly `n` (the last one shorter)."""
    pending: list = []
    for b in batches:
        pending.extend(b)
        while len(pending) >= n:
            yield pending[:n]
            del pending[:n]
    if pending:
        yield pending


# ---------------------------------------------------------------------------
# Conversions


class _Widened(Exception):
    """A later batch needs a wider parquet schema than the one already written."""


def convert_fast(src: Path, src_fmt: str, dst: Path, dst_fmt: str) -> int:
    """Convert between two different records formats in one pass; Fallback when the exact path must."""
    if orjson is None:
        raise Fallback
    try:
        return _convert(src, src_fmt, dst, dst_fmt)
    except UnicodeEncodeError:  # a lone surrogate (from a \\u escape): the exact path raises as it always has
        raise Fallback from None


def _convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str) -> int:
    if dst_fmt == "parquet":
        try:
            return _to_parquet(src, src_fmt, dst, None)
        except _Widened:
            return _to_parquet(src, src_fmt, dst, _scan_schema(src, src_fmt))
    if dst_fmt == "csv":
        return _to_csv(src, src_fmt, dst)
    return _to_json(src, src_fmt, dst, "\n" if dst_fmt == "ndjson" else ",\n")


def _to_json(src: Path, src_fmt: str, dst: Path, sep: str) -> int:
    from .formats import _AtomicOutput

    out = _AtomicOutput(dst)
    count = 0
    try:
        with out.create() as f:
            for rows in READERS[src_fmt](src):
                text = json_lines(rows, sep)
                if sep == "\n":
                    f.write((text + "\n").encode())
                else:
                    f.write(((",\n" if count else "[\n") + text).encode())
                count += len(rows)
            if sep != "\n":
                f.write(b"[]\n" if count == 0 else b"\n]\n")
        out.commit()
    except BaseException:
        out.discard()
        raise
    return count


def _to_csv(src: Path, src_fmt: str, dst: Path) -> int:
    from .formats import _AtomicOutput, open_parquet

    columns = None
    if src_fmt == "parquet":
        pf = open_parquet(src)
        columns = list(pf.schema_arrow.names)
        pf.close()
    out = _AtomicOutput(dst)
    count = 0
    try:
        with out.create() as f:
            sink = CsvSink(f, columns)
            for rows in READERS[src_fmt](src):
                sink.write(rows)
                count += len(rows)
            segments = sink.finish()
        commit_csv(out, dst, sink, segments)
    except BaseException:
        out.discard()
        raise
    return count


def _parquet_arrays(rows: list[dict], schema) -> list:
    import pyarrow as pa

    from .formats import json_text

    arrays = []
    for field in schema:
        values = list(map(methodcaller("get", field.name), rows))
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            if not set(map(type, values)) <= {str, type(None)}:
                values = [v if v is None or isinstance(v, str) else json_text(v, compact=True) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return arrays


def _record_batches(src: Path, src_fmt: str) -> Iterator[list[dict]]:
    from .formats import BATCH_ROWS

    return rebatch(READERS[src_fmt](src), BATCH_ROWS)


def _scan_schema(src: Path, src_fmt: str):
    """The parquet schema the exact path would choose: keys in first-seen order, types unified over batches."""
    import pyarrow as pa

    from .formats import _infer_type, _unify, _union_keys, _writable

    types: dict[str, Any] = {}
    for rows in _record_batches(src, src_fmt):
        for c in _union_keys(rows):
            types[c] = _unify(types.get(c), _infer_type(list(map(methodcaller("get", c), rows))))
    return pa.schema([pa.field(c, _writable(t)) for c, t in types.items()])


def _to_parquet(src: Path, src_fmt: str, dst: Path, schema) -> int:
    """Write parquet in 10,000-record row groups; with no schema, the first batch sets it and a
    later batch that needs a wider one raises _Widened."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .formats import BATCH_ROWS, _AtomicOutput, _infer_type, _unify, _union_keys, _writable

    out = _AtomicOutput(dst)
    writer = None
    count = 0
    raw: dict[str, Any] = {}
    try:
        if src_fmt == "csv":
            header = csv_header(src)
            schema = pa.schema([pa.field(c, pa.string()) for c in header])
            for rows in rebatch(csv_row_batches(src), BATCH_ROWS):
                if writer is None:
                    writer = pq.ParquetWriter(str(out.tmp), schema)
                cols = list(zip(*rows)) if header else []
                writer.write_table(pa.Table.from_arrays([pa.array(c, type=pa.string()) for c in cols],
                                                        schema=schema))
                count += len(rows)
        else:
            for rows in _record_batches(src, src_fmt):
                if schema is None or raw:
                    keys = _union_keys(rows)
                    found = {c: _infer_type(list(map(methodcaller("get", c), rows))) for c in keys}
                    if schema is None:
                        raw = found
                        schema = pa.schema([pa.field(c, _writable(t)) for c, t in found.items()])
                    else:
                        if any(c not in raw for c in keys):
                            raise _Widened
                        for c, t in found.items():
                            u = _unify(raw[c], t)
                            if _writable(u) != schema.field(c).type:
                                raise _Widened
                            raw[c] = u
                if writer is None:
                    writer = pq.ParquetWriter(str(out.tmp), schema)
                try:
                    writer.write_table(pa.Table.from_arrays(_parquet_arrays(rows, schema), schema=schema))
                except (pa.ArrowException, OverflowError, TypeError, ValueError):
                    raise Fallback from None
                count += len(rows)
        if writer is None:
            raise Fallback  # no records: the exact path writes the empty file
        writer.close()
        writer = None
        out.commit()
    except BaseException:
        if writer is not None:
            writer.close()
        out.discard()
        raise
    return count
