"""Parquet to json, ndjson and csv: pyarrow reads, the compiled converter writes the text.

pyarrow reads and decodes the parquet file a record batch at a time, on
this thread, with the GIL released while it decodes (string columns stored
with a small dictionary are read as dictionaries: they decode faster, and
the converter makes the text of each value once). Each batch's column
buffers (validity bitmaps, values, offsets, string bytes, dictionary indices)
go as pyarrow holds them, without a copy, over a pipe to the compiled
converter (native/src/arrow_text.rs describes the stream), a thread of this
process writing them while this one reads on. The converter writes every
record's text into the destination's temporary file, which is published
only once it has written the whole stream and counted as many records as
were sent: reading and encoding run side by side, on two cores. It writes what the
exact path (formats.json_text and csv_cell) writes for the same values:
integers, floats by Python's repr (NaN and the infinities as null in JSON,
as repr writes them in csv), booleans, strings JSON-escaped or csv-quoted,
nulls, and lists and structs of these (compact JSON in a csv cell).

A column of any other type (timestamps, dates, decimals, binary, maps, a
struct with two fields of one name, ...) is encoded here by arrowio's
pyarrow.compute rules, which write the exact path's text too, and is sent
as finished text. Without the compiled converter, arrowio converts the
whole file. Whatever the converter cannot vouch for (a string that is not
UTF-8) raises Fallback, and the caller converts record by record.
"""

from __future__ import annotations

import os
import queue
import struct
import subprocess
import threading
from array import array
from pathlib import Path

from . import arrowio, native
from .columnar import Fallback

ROWS = 65_536  # rows per batch (at most one row group): about 7 MB of column buffers
QUEUED = 2  # batches read ahead of the pipe
MAGIC = b"PLAT\x01\x00\x00\x00"
END = struct.pack("<Q", (1 << 64) - 1)
IOV = 512  # buffers per writev
SMALL_DICTIONARY = 64 << 10  # bytes of a column's dictionary page, at most, to read it as a dictionary

# the converter's type tags (arrow_text.rs)
NULL, BOOL, F32, F64, STR, LSTR, LIST, LLIST, STRUCT, TEXT, DICT = 0, 1, 10, 11, 12, 13, 14, 15, 16, 17, 19
_INTS = {(8, True): 2, (16, True): 3, (32, True): 4, (64, True): 5,
         (8, False): 6, (16, False): 7, (32, False): 8, (64, False): 9}


def _tag(pa, t) -> int | None:
    """The converter's tag for a type it encodes itself (its items and fields too), or None."""
    if pa.types.is_null(t):
        return NULL
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        return _INTS[(t.bit_width, pa.types.is_signed_integer(t))]
    if pa.types.is_float32(t):
        return F32
    if pa.types.is_float64(t):
        return F64
    if pa.types.is_string(t):
        return STR
    if pa.types.is_large_string(t):
        return LSTR
    if pa.types.is_dictionary(t):  # of strings: each value's text is made once, and copied for every row
        v = t.value_type
        return DICT if pa.types.is_string(v) or pa.types.is_large_string(v) else None
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if _tag(pa, t.value_type) is None:
            return None
        return LIST if pa.types.is_list(t) else LLIST
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        if len(set(names)) != len(names):  # a dict keeps one of them: the exact rules decide which
            return None
        if any(_tag(pa, t.field(i).type) is None for i in range(t.num_fields)):
            return None
        return STRUCT
    return None


def _key(name: str) -> bytes:
    from .formats import json_text

    data = json_text(name).encode()
    return struct.pack("<I", len(data)) + data


def _describe(pa, t) -> bytes:
    """The schema words of a type the converter encodes."""
    tag = _tag(pa, t)
    out = bytes([tag])
    if tag in (LIST, LLIST):
        out += _describe(pa, t.value_type)
    elif tag == DICT:
        out += bytes([_tag(pa, t.index_type)]) + _describe(pa, t.value_type)
    elif tag == STRUCT:
        out += struct.pack("<I", t.num_fields)
        for i in range(t.num_fields):
            out += _key(t.field(i).name) + _describe(pa, t.field(i).type)
    return out


def _native_type(pa, t):
    """The type the converter receives for a column of type `t` (a dictionary of other values decoded), or
    None."""
    if pa.types.is_dictionary(t) and _tag(pa, t) is None:
        t = t.value_type
    return t if _tag(pa, t) is not None else None


def _bitmap(buf, offset: int, n: int, words: list, bufs: list) -> None:
    """A bitmap's bytes from the one holding bit `offset`, and the bit shift into them."""
    if buf is None:
        words += (0, 0)
        return
    start = offset >> 3
    nbytes = (offset - (start << 3) + n + 7) >> 3
    words += (nbytes, offset & 7)
    bufs.append(buf.slice(start, nbytes))


def _offsets(buf, offset: int, n: int, large: bool, words: list, bufs: list) -> tuple[int, int]:
    """The n + 1 offsets of a string or list array; its first and last offset."""
    size = 8 if large else 4
    if buf is None:  # an empty array may have no offsets
        words.append(size)
        bufs.append(bytes(size))
        return 0, 0
    view = memoryview(buf).cast("q" if large else "i")
    first, last = view[offset], view[offset + n]
    view.release()
    words.append((n + 1) * size)
    bufs.append(buf.slice(offset * size, (n + 1) * size))
    return first, last


def _node(pa, arr, words: list, bufs: list) -> None:
    """The words and buffers of `arr` (and its items or fields), as the converter reads them."""
    t = arr.type
    tag = _tag(pa, t)
    n = len(arr)
    offset = arr.offset
    b = arr.buffers()
    words.append(n)
    _bitmap(b[0] if tag != NULL and arr.null_count else None, offset, n, words, bufs)
    if tag == BOOL:
        _bitmap(b[1], offset, n, words, bufs)
    elif tag in (STR, LSTR):
        first, last = _offsets(b[1], offset, n, tag == LSTR, words, bufs)
        words.append(last - first)
        if last > first:
            bufs.append(b[2].slice(first, last - first))
    elif tag in (LIST, LLIST):
        first, last = _offsets(b[1], offset, n, tag == LLIST, words, bufs)
        _node(pa, arr.values.slice(first, last - first), words, bufs)
    elif tag == STRUCT:
        for i in range(t.num_fields):
            _node(pa, arr.field(i), words, bufs)
    elif tag == DICT:
        indices = arr.indices
        size = indices.type.bit_width // 8
        words.append(n * size)
        if n:
            bufs.append(indices.buffers()[1].slice(indices.offset * size, n * size))
        _node(pa, arr.dictionary, words, bufs)
    elif tag != NULL:  # integers and floats
        size = t.bit_width // 8
        words.append(n * size)
        if n:
            bufs.append(b[1].slice(offset * size, n * size))


def _text_node(arr, words: list, bufs: list) -> None:
    """A column encoded here: its text as a string array without nulls."""
    n = len(arr)
    b = arr.buffers()
    words += (n, 0, 0)
    first, last = _offsets(b[1], arr.offset, n, False, words, bufs)
    words.append(last - first)
    if last > first:
        bufs.append(b[2].slice(first, last - first))


def _message(pa, pc, batch, plan: list, dst_fmt: str) -> list:
    """One batch as the converter reads it: its header, then its buffers."""
    words: list = []
    bufs: list = []
    alone = len(plan) == 1
    for i, native_type in enumerate(plan):
        col = batch.column(i)
        if native_type is None:
            if dst_fmt == "csv":
                text = arrowio._join(pa, pc, arrowio._csv_cell(pa, pc, col, alone), len(col))
            else:
                text = arrowio._join(pa, pc, arrowio._parts(pa, pc, col, arrowio.JSON), len(col))
            _text_node(text, words, bufs)
            continue
        if col.type != native_type:
            col = col.dictionary_decode()
        _node(pa, col, words, bufs)
    total = sum(len(b) for b in bufs)
    head = struct.pack("<3Q", batch.num_rows, len(words), total) + array("Q", words).tobytes()
    return [head, *bufs]


def _send(fd: int, parts: list) -> None:
    """Write every part (bytes or pyarrow Buffers) to `fd`, as they are."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:IOV])
        while n and views:  # a partial write: drop what went, keep the rest
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def _pump(fd: int, messages: queue.Queue, stop: list) -> None:
    """Send the queued messages until None; once `stop` holds anything (a write error: the converter
    stopped; or the reader gave up), only drain them, so the reader never blocks on a full queue."""
    while True:
        msg = messages.get()
        if msg is None:
            return
        if stop:
            continue
        try:
            _send(fd, msg)
        except OSError as exc:
            stop.append(exc)


def _repeating(pf) -> list[str]:
    """The string columns stored with a small dictionary (in a few row groups looked at): read as
    dictionaries, they decode faster, and the converter makes each value's text once."""
    import pyarrow as pa

    md = pf.metadata
    groups = md.num_row_groups
    if not groups:
        return []
    leaves = {md.schema.column(j).path: j for j in range(md.num_columns)}
    found = []
    for field in pf.schema_arrow:
        j = leaves.get(field.name)
        if j is None or not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        for g in sorted({0, groups - 1, *range(0, groups, max(1, groups // 6))}):
            c = md.row_group(g).column(j)
            if not c.has_dictionary_page or c.dictionary_page_offset is None or c.data_page_offset is None:
                break
            size = c.data_page_offset - c.dictionary_page_offset
            if size > SMALL_DICTIONARY or size * 2 > c.total_compressed_size:
                break  # values that seldom repeat: pyarrow would hash those written without the dictionary
        else:
            found.append(field.name)
    return found


def parquet_to_text(src: Path, dst: Path, dst_fmt: str) -> int:
    """Convert a parquet file to json, ndjson or csv, atomically; the record count, or Fallback.

    Without the compiled converter, arrowio's pyarrow path converts instead."""
    exe = native.binary() if native.enabled() else None
    if exe is None:
        return arrowio.parquet_to_text(src, dst, dst_fmt)
    import pyarrow.parquet as pq

    pf = None
    try:
        pf = pq.ParquetFile(src, pre_buffer=False)  # pre-buffered, it holds the whole file in memory
        repeating = _repeating(pf)
        if repeating:
            pf.close()
            pf = None
            pf = pq.ParquetFile(src, pre_buffer=False, read_dictionary=repeating)
    except Exception as exc:  # the exact path says why the file cannot be read
        if pf is not None:
            pf.close()
        raise Fallback(str(exc)) from None
    try:
        # one decoding thread: the converter has the other core
        batches = pf.iter_batches(batch_size=ROWS, use_threads=False)
        return batches_to_text(pf.schema_arrow, batches, dst, dst_fmt, exe)
    finally:
        pf.close()


def batches_to_text(schema, batches, dst: Path, dst_fmt: str, exe: str) -> int:
    """Write record batches of `schema` into `dst` as json, ndjson or csv through the converter at `exe`,
    atomically; the record count, or Fallback (nothing written)."""
    import pyarrow as pa

    from .fast import csv_row_text
    from .formats import _AtomicOutput

    names = schema.names
    if not names or len(set(names)) != len(names):
        raise Fallback("no columns, or a column name twice")
    plan = [_native_type(pa, f.type) for f in schema]
    head = [MAGIC, struct.pack("<I", len(names))]
    for name, t in zip(names, plan):
        head.append(_key(name))
        head.append(_describe(pa, t) if t is not None else bytes([TEXT]))
    preamble = csv_row_text(names).encode() if dst_fmt == "csv" else b""
    head.append(struct.pack("<I", len(preamble)) + preamble)
    out = _AtomicOutput(dst)
    try:
        count = _run(exe, batches, plan, b"".join(head), out.tmp, dst_fmt)
        out.commit()
    except BaseException:
        out.discard()
        raise
    return count


def _run(exe: str, batches, plan: list, head: bytes, tmp: Path, dst_fmt: str) -> int:
    """Have the converter write `tmp` while the batches are read and sent to it; the record count."""
    import pyarrow as pa

    pc = None
    if any(t is None for t in plan):  # columns encoded here
        import pyarrow.compute as pc
    try:
        proc = subprocess.Popen([exe, "-", "arrow", str(tmp), dst_fmt], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as exc:
        raise Fallback(f"cannot start the converter: {exc}") from None
    fd = proc.stdin.fileno()
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)  # fewer, larger writes
    except (ImportError, OSError):
        pass
    messages: queue.Queue = queue.Queue(QUEUED)
    stop: list = []
    pump = threading.Thread(target=_pump, args=(fd, messages, stop), daemon=True)
    pump.start()
    rows = 0
    try:
        try:
            messages.put([head])
            for batch in batches:
                if stop:
                    break
                messages.put(_message(pa, pc, batch, plan, dst_fmt))
                rows += batch.num_rows
                del batch
            messages.put([END])
        except BaseException as exc:
            stop.append(exc)
            if isinstance(exc, (pa.ArrowException, ValueError, OverflowError, TypeError)):
                raise Fallback(f"pyarrow: {exc}") from None
            raise
        finally:
            messages.put(None)
            pump.join()
            proc.stdin.close()  # the converter then stops, and deletes `tmp`, unless it had the whole stream
        said = proc.stdout.read()
        proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    report = native.report(said)
    if proc.returncode != 0 or not isinstance(report.get("count"), int):
        raise Fallback(report.get("fallback") or f"the converter failed (exit {proc.returncode})")
    if stop or report["count"] != rows:
        raise Fallback("the converter counts other records")
    return rows
