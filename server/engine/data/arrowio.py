"""Parquet to and from json and ndjson, and parquet to csv, at columnar speed with pyarrow.

Parquet to json, ndjson and csv, where the compiled converter is not there
(arrowpipe.py writes the text with it, and encodes here only the columns of
types it does not take): the exact path (formats.py) turns every
parquet row into a Python dict and encodes it. Here a record batch is
encoded column by column instead, with no Python object per value: numbers
cast to text, strings JSON-escaped, structs and lists joined from their
children, and the pieces of every line gathered in row order by one `take`,
whose text buffer is written as it is. Where pyarrow's text could differ
from what the exact path writes, the values concerned are encoded by the
exact rules themselves (formats.json_text and csv_cell), so the bytes are
the same:

- a float whose shortest text pyarrow prints otherwise than Python's repr
  (an exponent, a value below 1e-4 or from 1e16 up, NaN and the infinities,
  which JSON writes as null and csv as repr gives them);
- a string holding a control character (JSON escapes it);
- a struct with two fields of one name (a dict keeps only one);
- every column of a type without a vectorised form here (dates, timestamps,
  decimals, binary, maps, ...): that column is encoded value by value.

Batches are encoded on two worker threads (pyarrow's kernels release the
GIL) while this thread reads the next ones from the file and writes the
finished ones in order, a few in flight at a time, so memory stays bounded.

json and ndjson to parquet: see json_to_parquet.

Anything either direction cannot vouch for raises Fallback, and the caller
converts record by record, which also words every error.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .columnar import Fallback  # one for both pyarrow paths: the caller converts record by record

ROWS = 8_192  # rows encoded at a time: about 2 MB of text
IN_FLIGHT = 4
JSON, COMPACT, CSVJSON, CSV = "json", "compact", "csvjson", "csv"
_PRINTABLE = bytes(range(32, 256))  # deleted, what is left of a text is its control characters


def _view(arr):
    """The bytes of a string array's values (nulls take none), without a copy: a pyarrow Buffer."""
    import pyarrow as pa

    bufs = arr.buffers()
    if bufs[2] is None or len(arr) == 0:
        return pa.py_buffer(b"")
    offsets = memoryview(bufs[1]).cast("i")  # a string array (not large_string): 32-bit offsets
    start = offsets[arr.offset]
    return bufs[2].slice(start, offsets[arr.offset + len(arr)] - start)


def _data(arr) -> bytes:
    """The bytes of a string array's values, as bytes."""
    return _view(arr).to_pybytes()


def _has_control(data: bytes) -> bool:
    return bool(data.translate(None, _PRINTABLE))


# Modes: JSON text as records are written (", " and ": "), COMPACT JSON text (nested values in csv
# cells), CSVJSON the same with every quote doubled (the inside of a quoted csv cell), and CSV: a cell's
# text before quoting.
_NULL = {JSON: "null", COMPACT: "null", CSVJSON: "null", CSV: ""}


def _exact(mode: str):
    """The exact rules for one value, in `mode`."""
    from .formats import csv_cell, json_text

    if mode == CSV:
        return csv_cell
    if mode == JSON:
        return json_text
    if mode == COMPACT:
        return lambda v: json_text(v, compact=True)
    return lambda v: json_text(v, compact=True).replace('"', '""')


def _patch(pa, pc, texts, arr, mask, mode: str):
    """`texts` with the values where `mask` holds replaced by the exact rules' text of the original values."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return texts
    encode = _exact(mode)
    values = pc.filter(arr, mask).to_pylist()
    return pc.replace_with_mask(texts, mask, pa.array([encode(v) for v in values], pa.string()))


def _join(pa, pc, parts: list, n: int):
    """The element-wise concatenation of `parts` (strings and string arrays of length `n`)."""
    arrays = [p for p in parts if not isinstance(p, str)]
    if len(parts) == 1 and arrays:
        return arrays[0]
    if not arrays:
        return pa.array(["".join(parts)] * n, pa.string())
    return pc.binary_join_element_wise(*parts, "")


def _nullable(pa, pc, arr, parts: list, mode: str) -> list:
    """`parts` as they are when `arr` has no null, else one array with the null text where `arr` is null."""
    if not arr.null_count:
        return parts
    return [pc.if_else(arr.is_valid(), _join(pa, pc, parts, len(arr)), _NULL[mode])]


def _floats(pa, pc, arr, mode: str) -> list:
    """Floats as repr writes them: pyarrow's shortest digits where its form is repr's, the rest by the exact rules.

    repr writes [1e-4, 1e16) without an exponent and a whole number with ".0"; pyarrow writes a
    whole number without ".0", and an exponent from 1e10 up."""
    if arr.type != pa.float64():
        arr = pc.cast(arr, pa.float64())  # a float32 is written as the double it widens to
    text = pc.cast(arr, pa.string())
    size = pc.abs(arr)
    low, high = pc.min_max(pc.if_else(pc.equal(size, 0.0), 1.0, size)).values()  # (min_max passes over NaN)
    if (low.is_valid and low.as_py() >= 1e-4 and high.as_py() < 1e10  # zeros, and numbers without an exponent
            and b"e" not in _data(text)):  # (as this pyarrow writes them: checked, not assumed)
        fixed = pc.invert(pc.is_nan(arr))
        whole = pc.equal(arr, pc.floor(arr))
    else:
        fixed = pc.and_(pc.or_(pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e16)), pc.equal(size, 0.0)),
                        pc.invert(pc.match_substring(text, "e")))
        whole = pc.invert(pc.match_substring(text, "."))
    odd = pc.or_(pc.invert(fixed), whole)
    if (pc.sum(odd).as_py() or 0) > len(arr) // 16:  # many whole numbers: ".0" added here, the rest by the rules
        text = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
        odd = pc.invert(fixed)
    text = _patch(pa, pc, text, arr, odd, mode)
    return [pc.fill_null(text, _NULL[mode])] if text.null_count else [text]


def _strings(pa, pc, arr, mode: str) -> list:
    if arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    if mode == CSV:
        return [pc.fill_null(arr, "")] if arr.null_count else [arr]
    data = _data(arr)
    text = arr
    if b"\\" in data:
        text = pc.replace_substring(text, "\\", "\\\\")
    quote = '""' if mode == CSVJSON else '"'
    if b'"' in data:
        text = pc.replace_substring(text, '"', "\\" + quote)
    if _has_control(data):
        fix = pc.match_substring_regex(arr, r"[\x00-\x1f]")
        text = pc.if_else(fix, _patch(pa, pc, pc.if_else(fix, "", text), arr, fix, mode),
                          pc.binary_join_element_wise(quote, text, quote, ""))
        return _nullable(pa, pc, arr, [text], mode)
    return _nullable(pa, pc, arr, [quote, text, quote], mode)


def _struct(pa, pc, arr, mode: str) -> list:
    from .formats import json_text

    names = [arr.type.field(i).name for i in range(arr.type.num_fields)]
    if len(set(names)) != len(names):
        return [_python(pa, arr, mode)]
    if not names:
        return _nullable(pa, pc, arr, ["{}"], mode)
    sep, colon = (", ", ": ") if mode == JSON else (",", ":")
    parts: list = []
    for i, name in enumerate(names):
        key = json_text(name)
        parts.append(("{" if i == 0 else sep) + (key.replace('"', '""') if mode == CSVJSON else key) + colon)
        parts += _parts(pa, pc, arr.field(i), mode)
    parts.append("}")
    return _nullable(pa, pc, arr, parts, mode)


def _list(pa, pc, arr, mode: str) -> list:
    parts = _parts(pa, pc, arr.values, mode)
    sep = ", " if mode == JSON else ","
    text = _string_list(pa, pc, arr, parts, sep, "", "")
    if text is not None:
        return _nullable(pa, pc, arr, [text], mode)
    make = pa.LargeListArray if pa.types.is_large_list(arr.type) else pa.ListArray
    items = _join(pa, pc, parts, len(arr.values))
    joined = pc.binary_join(make.from_arrays(arr.offsets, items), sep)
    return _nullable(pa, pc, arr, ["[", joined, "]"], mode)


def _string_list(pa, pc, arr, parts: list, sep: str, lead: str, tail: str):
    """Lists of strings without nulls, each item quote + text + quote: the quotes go into the separator
    instead, and `lead` and `tail` around each non-empty list; None for other lists."""
    if not (pa.types.is_string(arr.type.value_type) and len(parts) == 3 and isinstance(parts[0], str)
            and parts[0] == parts[2] and not isinstance(parts[1], str)):
        return None
    q = parts[0]
    make = pa.LargeListArray if pa.types.is_large_list(arr.type) else pa.ListArray
    joined = pc.binary_join(make.from_arrays(arr.offsets, parts[1]), q + sep + q)
    text = pc.binary_join_element_wise(lead + "[" + q, joined, q + "]" + tail, "")
    if pc.any(pc.equal(pc.list_value_length(arr), 0)).as_py():
        text = pc.if_else(pc.greater(pc.list_value_length(arr), 0), text, "[]")
    return text


def _python(pa, arr, mode: str):
    """The exact rules, value by value: for the types encoded nowhere else."""
    encode = _exact(mode)
    return pa.array([encode(v) for v in arr.to_pylist()], pa.string())


def _parts(pa, pc, arr, mode: str) -> list:
    """Pieces (strings, and string arrays without nulls) whose element-wise concatenation is the text
    of every value of `arr` as the exact path writes it in `mode`."""
    t = arr.type
    if pa.types.is_dictionary(t):
        return _parts(pa, pc, arr.dictionary_decode(), mode)
    if pa.types.is_null(t):
        return [_NULL[mode]]
    if mode == CSV and (pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t)):
        return _nested_cell(pa, pc, arr)
    if pa.types.is_boolean(t):
        return [pc.fill_null(pc.if_else(arr, "true", "false"), _NULL[mode])]
    if pa.types.is_integer(t):
        text = pc.cast(arr, pa.string())
        return [pc.fill_null(text, _NULL[mode])] if arr.null_count else [text]
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return _floats(pa, pc, arr, mode)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _strings(pa, pc, arr, mode)
    if pa.types.is_struct(t):
        return _struct(pa, pc, arr, mode)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _list(pa, pc, arr, mode)
    return [_python(pa, arr, mode)]


def _nested_cell(pa, pc, arr) -> list:
    """A csv cell holding a struct or list: its compact JSON text, quoted when it holds a comma or a quote."""
    t = arr.type
    if pa.types.is_struct(t) and t.num_fields and not arr.null_count:
        return ['"', *_parts(pa, pc, arr, CSVJSON), '"']  # every value holds a key in quotes
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # a list of strings holds a quote unless it is empty
        text = _string_list(pa, pc, arr, _parts(pa, pc, arr.values, CSVJSON), ",", '"', '"')
        if text is not None:
            return [pc.if_else(arr.is_valid(), text, "")] if arr.null_count else [text]
    inner = _join(pa, pc, _parts(pa, pc, arr, CSVJSON), len(arr))  # quotes doubled already
    quoted = pc.binary_join_element_wise('"', inner, '"', "")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        v = t.value_type
        # a string or an object in a list always shows a quote; numbers, booleans and nulls need two items
        # for a comma
        if pa.types.is_string(v) or pa.types.is_large_string(v) or (pa.types.is_struct(v) and v.num_fields):
            need = pc.greater_equal(pc.list_value_length(arr), 1)
        elif pa.types.is_integer(v) or pa.types.is_floating(v) or pa.types.is_boolean(v) or pa.types.is_null(v):
            need = pc.greater_equal(pc.list_value_length(arr), 2)
        else:
            need = pc.match_substring_regex(inner, '[,"]')
    else:
        need = pc.match_substring_regex(inner, '[,"]')
    text = pc.if_else(pc.fill_null(need, False), quoted, inner)
    return [pc.if_else(arr.is_valid(), text, "")] if arr.null_count else [text]


def _csv_cell(pa, pc, arr, alone: bool) -> list:
    parts = _parts(pa, pc, arr, CSV)
    t = arr.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t)):
        text = _join(pa, pc, parts, len(arr))
        data = _data(text)
        special = [c for c in (",", '"', "\n", "\r") if c.encode() in data]
        if special:
            need = pc.match_substring(text, special[0])
            for c in special[1:]:
                need = pc.or_(need, pc.match_substring(text, c))
            inner = pc.replace_substring(text, '"', '""') if '"' in special else text
            text = pc.if_else(need, pc.binary_join_element_wise('"', inner, '"', ""), text)
        parts = [text]
    if alone:  # the csv module quotes the one empty field of a row, or the row would be a blank line
        text = _join(pa, pc, parts, len(arr))
        parts = [pc.if_else(pc.equal(text, ""), '""', text)]
    return parts


def encode_batch(batch, dst_fmt: str):
    """The output text of one record batch (a string array whose buffer holds the bytes to write).
    json records each start with ",\\n" (the caller drops the comma before the first one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .formats import json_text

    names = batch.schema.names
    parts: list = []
    for i, name in enumerate(names):
        if dst_fmt == "csv":
            if i:
                parts.append(",")
            parts += _csv_cell(pa, pc, batch.column(i), len(names) == 1)
        else:
            lead = ("{" if dst_fmt == "ndjson" else ",\n{") if i == 0 else ", "
            parts.append(lead + json_text(name) + ": ")
            parts += _parts(pa, pc, batch.column(i), JSON)
    parts.append("\n" if dst_fmt == "csv" else "}\n" if dst_fmt == "ndjson" else "}")
    merged: list = []
    for p in parts:  # adjacent strings as one
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return _interleave(pa, pc, merged, batch.num_rows)


_layouts: dict = {}


def _interleave(pa, pc, parts: list, n: int):
    """Like _join, as a string array of n * len(parts) pieces in row order, whose bytes are the rows:
    one `take` over all the pieces, cheaper than joining many arrays element-wise."""
    if all(isinstance(p, str) for p in parts):
        return _join(pa, pc, parts, n)
    from array import array

    literals = tuple(p for p in parts if isinstance(p, str))
    shape = (n, tuple(p if isinstance(p, str) else None for p in parts))
    got = _layouts.get(shape)
    if got is None:
        k = len(parts)
        flat = array("q", bytes(8 * n * k))
        at_literal, at = 0, len(literals)  # the literal strings first, one slot each, then n per column
        for j, p in enumerate(parts):
            if isinstance(p, str):
                flat[j::k] = array("q", [at_literal]) * n
                at_literal += 1
            else:
                flat[j::k] = array("q", range(at, at + n))
                at += n
        got = (pa.array(literals, pa.string()), pa.Array.from_buffers(pa.int64(), n * k, [None, pa.py_buffer(flat)]))
        if len(_layouts) >= 2:  # a few MB each: two at most, dropped when a conversion ends
            _layouts.clear()
        _layouts[shape] = got
    literal_values, index = got
    values = pa.concat_arrays([literal_values, *(p for p in parts if not isinstance(p, str))])
    return pc.take(values, index)


def parquet_to_text(src: Path, dst: Path, dst_fmt: str) -> int:
    """Convert a parquet file to json, ndjson or csv, atomically; the record count, or Fallback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .fast import csv_row_text
    from .formats import _AtomicOutput

    try:
        pf = pq.ParquetFile(src, pre_buffer=False)  # pre-buffered, it holds the whole file in memory
    except Exception as exc:  # the exact path says why the file cannot be read
        raise Fallback(str(exc)) from None
    out = _AtomicOutput(dst)
    count = 0
    try:
        names = pf.schema_arrow.names
        if not names or len(set(names)) != len(names):
            raise Fallback("no columns, or a column name twice")
        with out.create() as f, ThreadPoolExecutor(2) as pool:
            if dst_fmt == "csv":
                f.write(csv_row_text(names).encode())
            elif dst_fmt == "json":
                f.write(b"[")
            pending: deque = deque()

            def drain(keep: int) -> None:
                nonlocal count
                while len(pending) > keep:
                    rows, text = pending.popleft().result()
                    data = _view(text)
                    if dst_fmt == "json" and count == 0 and rows:
                        data = data.slice(1)  # "[" then "\n{...": the first record's "," dropped
                    f.write(data)
                    count += rows

            try:
                for batch in pf.iter_batches(batch_size=ROWS):
                    pending.append(pool.submit(lambda b: (b.num_rows, encode_batch(b, dst_fmt)), batch))
                    drain(IN_FLIGHT)
                drain(0)
            except (pa.ArrowException, ValueError, OverflowError, TypeError) as exc:
                raise Fallback(f"pyarrow: {exc}") from None
            finally:
                for p in pending:
                    p.cancel()
            if dst_fmt == "json":
                f.write(b"\n]\n" if count else b"]\n")
        out.commit()
    except BaseException:
        out.discard()
        raise
    finally:
        pf.close()
        _layouts.clear()
    return count


# ---------------------------------------------------------------------------
# json and ndjson to parquet

WIDENINGS = 2  # the converter's wider schema is the whole file's: one start again is enough
BATCH = 10_000  # records per batch and parquet row group, as the exact path writes them (formats.BATCH_ROWS)
SCHEMA, BATCH_FRAME, WIDEN, END = 1, 2, 3, 4  # the converter's frames (native/src/arrow_cols.rs)


def _type_of(pa, text: bytes):
    """The arrow schema the converter wrote as `text` (arrow_cols.rs: `n` `b` `i` `f` `s`, `l` + item type,
    `t` + field count + `,` + per field its name's length, `:`, the name and its type)."""
    pos = 0

    def read():
        nonlocal pos
        c = text[pos:pos + 1]
        pos += 1
        simple = {b"n": pa.null, b"b": pa.bool_, b"i": pa.int64, b"f": pa.float64, b"s": pa.string}.get(c)
        if simple is not None:
            return simple()
        if c == b"l":
            return pa.list_(read())
        if c != b"t":
            raise Fallback("an unreadable schema from the converter")
        end = text.index(b",", pos)
        fields = []
        count, pos = int(text[pos:end]), end + 1
        for _ in range(count):
            end = text.index(b":", pos)
            size, pos = int(text[pos:end]), end + 1
            name = text[pos:pos + size].decode("utf-8")
            pos += size
            fields.append(pa.field(name, read()))
        return pa.struct(fields)

    record = read()
    if pos != len(text) or not pa.types.is_struct(record):
        raise Fallback("an unreadable schema from the converter")
    return pa.schema(list(record))


def _frame(pa, f):
    """(kind, payload: a pyarrow Buffer) of the converter's next frame; (None, None) where its stream ends."""
    head = _read(pa, f, 16)
    if head is None:
        return None, None
    kind, size = memoryview(head).cast("Q")
    payload = _read(pa, f, size)
    return (kind, payload) if payload is not None else (None, None)


def _read(pa, f, size: int):
    """`size` bytes from the pipe `f` in a new pyarrow Buffer (aligned, not zeroed first), or None where it
    ends first."""
    buf = pa.allocate_buffer(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = f.readinto(view[got:])
        if not n:
            return None
        got += n
    return buf


def _batch(pa, schema, payload):
    """The record batch whose buffers the converter sent in `payload`, wrapped without a copy."""
    rows, count = memoryview(payload)[:16].cast("Q")
    table = memoryview(payload)[16:16 + 24 * count].cast("Q")
    bufs = iter([(payload.slice(table[3 * k], table[3 * k + 1]), table[3 * k + 2]) for k in range(count)])
    next(bufs)  # the records themselves: never null
    arrays = [_array(pa, field.type, rows, bufs) for field in schema]
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    batch.validate()
    return batch


def _array(pa, t, n: int, bufs):
    valid, nulls = next(bufs)
    valid = valid if nulls else None
    if pa.types.is_null(t):
        return pa.nulls(n)
    if pa.types.is_string(t):
        offsets, data = next(bufs)[0], next(bufs)[0]
        return pa.Array.from_buffers(t, n, [valid, offsets, data], null_count=nulls)
    if pa.types.is_list(t):
        offsets = next(bufs)[0]
        items = _array(pa, t.value_type, memoryview(offsets).cast("i")[n], bufs)
        return pa.Array.from_buffers(t, n, [valid, offsets], null_count=nulls, children=[items])
    if pa.types.is_struct(t):
        fields = [_array(pa, t.field(i).type, n, bufs) for i in range(t.num_fields)]
        return pa.Array.from_buffers(t, n, [valid], null_count=nulls, children=fields)
    return pa.Array.from_buffers(t, n, [valid, next(bufs)[0]], null_count=nulls)  # bool, int64, double


def _leaves(pa, arr, path: str):
    """(parquet column path, values) of every leaf column inside `arr`."""
    t = arr.type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _leaves(pa, arr.field(i), f"{path}.{t.field(i).name}")
    elif pa.types.is_list(t):
        yield from _leaves(pa, arr.flatten(), f"{path}.list.element")
    else:
        yield path, arr


def _repeating(pa, pc, table) -> list:
    """The parquet columns worth a dictionary, judged on the first block: those whose values repeat.

    A column of values seen once each (ids, timestamps, measurements) gains nothing from one, and
    building it costs a hash of every value in every row group."""
    keep = []
    for name in table.column_names:
        for path, arr in _leaves(pa, table[name].combine_chunks(), name):
            if pa.types.is_null(arr.type) or (len(arr) and pc.count_distinct(arr).as_py() * 2 <= len(arr)):
                keep.append(path)
    return keep


class _Widen(Exception):
    """The file needs a wider schema than its first records gave: the converter's text of it."""

    def __init__(self, schema: bytes):
        super().__init__("a wider schema")
        self.schema = schema


def json_to_parquet(src: Path, src_fmt: str, dst: Path) -> int:
    """Convert a json array or ndjson file to parquet, atomically; the record count, or Fallback.

    The compiled converter (native/src/arrow_cols.rs) parses the records into Arrow column buffers and
    sends them over a pipe, a batch of BATCH records at a time; here they are wrapped as arrays without a
    copy and written by pyarrow's parquet writer on another thread, so parsing and encoding run on two
    cores at once. The types are the exact path's: taken from the first batch, and where a later record
    needs wider ones (a new key, a float among integers, a value where only nulls were seen), the
    converter reads the rest of the file for its types only and the conversion starts again once with
    the union of them all. What that path keeps as JSON text or decides itself (two kinds of value in one
    column, an integer beyond 64 bits, malformed text, duplicate keys, a record that is not an object,
    ...) makes the converter step aside, and this raises Fallback."""
    schema = None
    for _ in range(WIDENINGS):
        try:
            return _json_to_parquet(src, src_fmt, dst, schema)
        except _Widen as w:
            schema = w.schema
    raise Fallback("the schema kept widening")


def _json_to_parquet(src: Path, src_fmt: str, dst: Path, given: bytes | None) -> int:
    import os
    import subprocess

    from . import native
    from .formats import _AtomicOutput

    exe = native.binary() if native.enabled() else None
    if exe is None:
        raise Fallback("the compiled converter is not available")
    r, w = os.pipe()
    args = [exe, str(src), src_fmt, f"/dev/fd/{w}", "arrow", str(BATCH)] + ([given.hex()] if given else [])
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                pass_fds=(w,))
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise Fallback(f"cannot start the converter: {exc}") from None
    os.close(w)
    try:
        import fcntl

        fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)  # fewer, larger reads
    except (ImportError, OSError):
        pass
    f = os.fdopen(r, "rb", buffering=0)
    out = _AtomicOutput(dst)
    writer = None
    count = 0
    try:
        import pyarrow as pa  # while the converter starts reading
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        written: deque = deque()
        end = None
        with ThreadPoolExecutor(1) as pool:  # parquet is encoded while the next batch is read
            try:
                kind, payload = _frame(pa, f)
                if kind == SCHEMA:
                    schema = _type_of(pa, payload.to_pybytes())
                    while True:
                        kind, payload = _frame(pa, f)
                        if kind == BATCH_FRAME:
                            batch = _batch(pa, schema, payload)
                            del payload
                            if writer is None:
                                writer = pq.ParquetWriter(str(out.tmp), schema, use_dictionary=_repeating(
                                    pa, pc, pa.Table.from_batches([batch])))
                            written.append(pool.submit(writer.write_batch, batch))
                            count += batch.num_rows
                            del batch
                            while len(written) > IN_FLIGHT // 2:
                                written.popleft().result()
                            continue
                        if kind == WIDEN:
                            proc.communicate()
                            raise _Widen(payload.to_pybytes())
                        if kind == END:
                            end = int.from_bytes(payload.to_pybytes(), "little")
                        break
                while written:
                    written.popleft().result()
            except pa.ArrowException as exc:
                raise Fallback(f"pyarrow: {exc}") from None
            finally:
                for p in written:
                    p.cancel()
        got, _ = proc.communicate()
        report = native.report(got)
        if proc.returncode != 0 or not isinstance(report.get("count"), int):
            raise Fallback(report.get("fallback") or "the converter failed")
        if not (report["count"] == end == count):
            raise Fallback("the converter sent other records than it counted")
        if writer is None:
            raise Fallback("no records: the exact path writes the empty file")
        writer.close()
        writer = None
        out.commit()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if writer is not None:
            writer.close()
        out.discard()
        raise
    finally:
        f.close()
        if proc.stdout:
            proc.stdout.close()
    return count
