"""Paged previews of an output file, in bounded memory.

`preview_file(path, fmt, offset, limit)` returns one page as a dict:

    {"format", "kind", "offset", "limit", "items", "total", "truncated",
     "size", "bytes_read", ...}

`kind` says how to show the page:

- "table": json arrays, ndjson, csv and parquet. `items` are row objects and
  `columns` lists their field names in first-seen order (the header for csv,
  the schema for parquet). An array item or ndjson line that is not an object
  (a number, a string, a list) becomes the row `{"value": item}`, so an array
  of scalars shows as a one-column table named "value". CSV values are strings.
  A cell longer than CELL_CHARS characters (a nested value: its JSON text) is
  cut to its start and listed in `cut_cells` as {"record", "column", "type",
  "chars", "bytes"}; cell_value() pages its full text.
- "tree": a json document that is not an array. Up to 2 MB, `items` is
  `[the whole value]` and `mode` is "document". Larger, a top-level object is
  paged by its entries: `items` are `{"key", "value"}` pairs and `mode` is
  "entries"; a value too big to show whole is cut short and marked
  `"clipped": true`.
- "text": `items` are the lines of the page (a page is `limit` lines), decoded
  as UTF-8 with undecodable bytes replaced. A line longer than 16 KiB is cut
  and ends with "…"; `clipped_lines` counts them.
- "binary": `items` is empty and `hex` is a hex dump of 512 bytes starting at
  byte `offset` (so `offset` pages through the bytes), in the classic
  offset / hex / ASCII layout of `hexdump -C` (without its `*` squeezing).
  `truncated` is true when bytes follow the dump.

`total` is the exact number of items when it is cheap to know: parquet
metadata, a page that reached the end of the file, a finished page index
(pageindex.py; `index=`), or a full streaming count of a file up to 64 MB
(cached per file version). With an index still being built, `counting` is
true. With an index, a json array, ndjson or csv page starts reading at the
checkpoint before its offset. Otherwise `total` is None and
`total_estimate` extrapolates from the bytes read so far. `truncated` is true
when items follow the page. `bytes_read` is how far into the file the page
read (None for parquet, which reads by column chunks). Nothing reads more of a file than the page needs, plus one read buffer.

A malformed file gives the items read before the problem and an `error`
naming the line or record; JSON is read by jsonread's rules (UTF-8, at most
1,000 levels deep). Containers deeper than SHOW_DEPTH levels show as DEPTH_MARK. Bad arguments raise PreviewError, which the web
layer maps to 400; a missing file raises NotFoundError.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

import ijson

from .. import jsonread
from . import formats
from ..errors import NotFoundError, PipeloomError
from .formats import MalformedDataError

MAX_LIMIT = 1000
TREE_WHOLE_BYTES = 2 * 1024 * 1024
COUNT_FULL_BYTES = 64 * 1024 * 1024
HEX_BYTES = 512
TEXT_LINE_BYTES = 16 * 1024
NDJSON_LINE_BYTES = 16 * 1024 * 1024
VALUE_NODES = 10_000  # largest nested value (in JSON nodes) a tree entry shows whole
SHOW_DEPTH = 600  # deeper containers are shown as DEPTH_MARK
DEPTH_MARK = f"… (nested deeper than {SHOW_DEPTH} levels; download the file to see it all)"
CELL_CHARS = 4096  # a table cell longer than this (as text) is cut; the cell route pages the rest
CELL_PAGE_CHARS = 64 * 1024
CELL_MAX_CHARS = 1024 * 1024


class PreviewError(PipeloomError):
    """A preview request that cannot be answered as asked (bad offset, limit or format)."""


# ---------------------------------------------------------------------------
# Helpers


def hex_dump(data: bytes, start: int = 0) -> str:
    """`hexdump -C` style lines: offset, 16 bytes in two groups of 8, then |ASCII|."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start + i:08x}  {left:<23}  {right:<23}  |{text}|")
    return "\n".join(lines)


def _safe_scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return _CONTAINER


_CONTAINER = object()


def safe_value(value: Any) -> Any:
    """A copy of `value` that strict JSON (and so a browser) accepts: non-finite
    floats become strings, dates and decimals become their JSON stand-ins, and
    containers nested deeper than SHOW_DEPTH levels become DEPTH_MARK.

    Iterative, so a deep value cannot exhaust the stack; the depth cut keeps
    the web layer's (recursive) JSON encoder within its limits too."""
    out: list = [None]
    todo: list[tuple[Any, Any, Any, int]] = [(value, out, 0, 1)]
    while todo:
        v, parent, key, depth = todo.pop()
        plain = _safe_scalar(v)
        if plain is not _CONTAINER:
            parent[key] = plain
        elif isinstance(v, (dict, list, tuple)):
            if depth > SHOW_DEPTH:
                parent[key] = DEPTH_MARK
            elif isinstance(v, dict):
                child: Any = {}
                parent[key] = child
                for k, x in v.items():
                    child[str(k)] = None  # keeps the key order
                    todo.append((x, child, str(k), depth + 1))
            else:
                child = [None] * len(v)
                parent[key] = child
                todo.extend((x, child, i, depth + 1) for i, x in enumerate(v))
        else:
            todo.append((formats.jsonable(v), parent, key, depth))
    return out[0]


def _row(value: Any) -> dict:
    return value if isinstance(value, dict) else {"value": value}


def _columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def _bounded_lines(f: io.BufferedReader, max_len: int) -> Iterator[tuple[bytes, bool]]:
    """(line, clipped) for each line of `f`, keeping at most `max_len` bytes of any line."""
    while True:
        line = f.readline(max_len)
        if not line:
            return
        clipped = False
        if len(line) >= max_len and not line.endswith(b"\n"):
            while True:
                rest = f.readline(1 << 20)
                if not rest:
                    break
                clipped = True
                if rest.endswith(b"\n"):
                    break
        yield line, clipped


class _Page:
    """Collects one page from a stream of items, plus a look-ahead for `truncated`."""

    def __init__(self, offset: int, limit: int, start: int = 0):
        self.offset, self.limit = offset, limit
        self.items: list = []
        self.seen = start  # items consumed from the stream (which starts at item `start`), look-ahead included
        self.more = False
        self.ended = False
        self.error: str | None = None
        self.mark = 0  # bytes holding the first `seen` items, for estimates

    def fill(self, items: Iterator, position: Callable[[], int]) -> None:
        """Read the page, then keep counting until the read buffer is used up, so
        an estimate of the total rests on bytes really parsed."""
        end = self.offset + self.limit
        try:
            for item in items:
                if self.seen >= end:
                    self.more = True
                    self.seen += 1
                    break
                if self.seen >= self.offset:
                    self.items.append(item)
                self.seen += 1
            else:
                self.ended = True
                return
            # Readers parse a whole buffer at a time: count what is already parsed,
            # stopping at the item that needs the next read.
            self.mark = position()
            for _ in items:
                if position() != self.mark:
                    return
                self.seen += 1
            self.ended = True
        except MalformedDataError as exc:
            self.error = str(exc)


_count_cache: OrderedDict[tuple, int] = OrderedDict()
_count_lock = threading.Lock()


def _cached_count(path: Path, key: str, count: Callable[[], int]) -> int:
    st = path.stat()
    ident = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, key)
    with _count_lock:
        if ident in _count_cache:
            _count_cache.move_to_end(ident)
            return _count_cache[ident]
    n = count()
    with _count_lock:
        _count_cache[ident] = n
        while len(_count_cache) > 256:
            _count_cache.popitem(last=False)
    return n


def _finish_totals(result: dict, page: _Page, bytes_read: int, size: int, count: Callable[[], int], path: Path,
                   key: str, index: Any = None) -> None:
    """Fill total / total_estimate / truncated / error from a filled page."""
    result["truncated"] = page.more
    result["bytes_read"] = bytes_read
    if page.error:
        result["error"] = page.error
        return
    if page.ended:
        result["total"] = page.seen
        return
    if index is not None:
        if index.complete:
            if index.total is not None:
                result["total"] = index.total
                return
        else:
            result["counting"] = True
            if page.mark > 0:
                result["total_estimate"] = max(page.seen, round(page.seen * size / page.mark))
            return
    if size <= COUNT_FULL_BYTES:
        try:
            result["total"] = _cached_count(path, key, count)
            return
        except MalformedDataError as exc:
            result["error"] = str(exc)
            return
    if page.mark > 0:
        result["total_estimate"] = max(page.seen, round(page.seen * size / page.mark))


class _Joined:
    """A few bytes (an array's `[`, a csv header) followed by file `f` from byte `base`: a reader starts
    mid-file as if at the start. `tell` and `seek` count in this joined stream; `real` is where `f` is."""

    def __init__(self, prefix: bytes, f: io.BufferedReader, base: int):
        self.prefix, self.f, self.base = prefix, f, base
        self.pos = 0
        f.seek(base)

    def read(self, n: int = -1) -> bytes:
        out = b""
        if self.pos < len(self.prefix):
            out = self.prefix[self.pos:] if n is None or n < 0 else self.prefix[self.pos:self.pos + n]
            self.pos += len(out)
            if n is not None and n >= 0:
                n -= len(out)
                if n == 0:
                    return out
        more = self.f.read(n)
        self.pos += len(more)
        return out + more if out else more

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos
        self.f.seek(self.base + max(0, pos - len(self.prefix)))
        return pos

    def tell(self) -> int:
        return self.pos

    def real(self) -> int:
        return self.f.tell()


def _real_tell(source: Any) -> int:
    return source.real() if isinstance(source, _Joined) else source.tell()


def _renumbered(items: Iterator, word: str, shift: int) -> Iterator:
    """`items`, with the record or line number of a MalformedDataError moved by `shift` (a page that
    started mid-file counts from its checkpoint)."""
    if not shift:
        return items

    def gen():
        try:
            yield from items
        except MalformedDataError as exc:
            where = exc.where or ""
            if where.startswith(word + " ") and where[len(word) + 1:].isdigit():
                raise MalformedDataError(exc.path, exc.detail, f"{word} {int(where[len(word) + 1:]) + shift}") from exc
            raise
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    return gen()


# ---------------------------------------------------------------------------
# One function per kind of page


def _json_page(path: Path, result: dict, offset: int, limit: int, index: Any = None) -> None:
    size = result["size"]
    with open(path, "rb") as f:
        try:
            top = formats.peek_json(f, path)
        except MalformedDataError as exc:
            result.update(kind="tree", mode="document", error=str(exc))
            return
        if top == "array":
            result["kind"] = "table"
            cp = index.checkpoint_for(offset) if index is not None else None
            start = 0
            source: Any = f
            if cp is not None and cp[0] > 0:
                start = cp[0]
                source = _Joined(b"[", f, cp[1])  # the items from record `start` on, as an array of their own
            values = _renumbered(formats.iter_json_values(source, path), "record", start)
            page = _Page(offset, limit, start)
            page.fill((_row(v) for v in values), lambda: _real_tell(source))
            bytes_read = _real_tell(source)
            values.close()

            def count() -> int:
                with open(path, "rb") as g:
                    return sum(1 for _ in formats.iter_json_values(g, path))

            result["items"] = page.items
            result["columns"] = _columns(page.items)
            _finish_totals(result, page, bytes_read, size, count, path, "json-array", index)
            return
        result["kind"] = "tree"
        if top == "empty":
            result.update(mode="document", total=0, error=f"{path.name}: empty file, expected a JSON document")
            return
        if size <= TREE_WHOLE_BYTES:
            result["mode"] = "document"
            f.seek(0)
            data = f.read()
            result["bytes_read"] = f.tell()
            try:
                value = jsonread.loads(data, path)
            except MalformedDataError as exc:
                result["error"] = str(exc)
                return
            result["total"] = 1
            result["items"] = [value][offset : offset + limit]
            result["truncated"] = offset + limit < 1
            return
        if top == "invalid":
            result["mode"] = "document"
            result["error"] = f"{path.name}: invalid JSON (the document does not start with a JSON value)"
            return
        if top != "object":
            result["mode"] = "document"
            result["error"] = f"{path.name}: a top-level JSON {top} of {size} bytes is too large to preview"
            return
        result["mode"] = "entries"
        page = _Page(offset, limit)
        page.fill(_object_entries(f, path, offset, offset + limit), f.tell)
        bytes_read = f.tell()

    def count_keys() -> int:
        with open(path, "rb") as g:
            formats.peek_json(g, path)
            return sum(1 for _ in _object_entries(g, path, 0, 0))

    result["items"] = page.items
    _finish_totals(result, page, bytes_read, size, count_keys, path, "json-keys")


_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})


def _object_entries(f: io.BufferedReader, path: Path, build_from: int, build_to: int) -> Iterator[dict | None]:
    """The entries of a top-level JSON object, built only for indexes in
    [build_from, build_to) (None for the others), each cut at VALUE_NODES."""
    events = jsonread._ijson.basic_parse(jsonread.Scanned(f, jsonread.DepthScanner()), use_float=True,
                                         buf_size=jsonread.READ_CHUNK)
    index = 0
    try:
        event, _ = next(events)  # start_map
        for event, value in events:
            if event == "end_map":
                break
            key = value  # map_key
            event, value = next(events)
            build = build_from <= index < build_to
            if event in _STARTS:
                value, clipped = _read_container(events, event, VALUE_NODES if build else 0)
            else:
                clipped = False
            if build:
                entry = {"key": key, "value": value}
                if clipped:
                    entry["clipped"] = True
                yield entry
            else:
                yield None
            index += 1
        for _ in events:  # trailing content must be valid too
            pass
    except jsonread.TooDeep as exc:
        raise MalformedDataError(path, str(exc), f"entry {index + 1}") from None
    except (ijson.JSONError, ValueError) as exc:
        raise MalformedDataError(path, f"invalid JSON ({jsonread.first_line(exc)})", f"entry {index + 1}") from exc


def _read_container(events: Iterator, first: str, budget: int) -> tuple[Any, bool]:
    """Build the container that `first` opened, keeping at most `budget` nodes."""
    root: Any = {} if first == "start_map" else []
    stack = [root]
    key = None
    nodes = 0
    skip = 0
    clipped = False
    for event, value in events:
        if skip:
            if event in _STARTS:
                skip += 1
            elif event in _ENDS:
                skip -= 1
            continue
        if event in _ENDS:
            stack.pop()
            if not stack:
                return (root if budget else None), clipped
            continue
        if event == "map_key":
            key = value
            continue
        nodes += 1
        if nodes > budget:
            clipped = bool(budget)
            if event in _STARTS:
                skip = 1
            continue
        child = ({} if event == "start_map" else []) if event in _STARTS else value
        parent = stack[-1]
        if isinstance(parent, dict):
            parent[key] = child
        else:
            parent.append(child)
        if event in _STARTS:
            stack.append(child)
    raise ValueError("the document ends inside a value")


def _ndjson_page(path: Path, result: dict, offset: int, limit: int, index: Any = None) -> None:
    result["kind"] = "table"
    end = offset + limit
    cp = index.checkpoint_for(offset) if index is not None else None
    start, byte, first_line = cp if cp is not None else (0, 0, 0)

    def rows(f) -> Iterator[dict]:
        index = start
        for lineno, (line, clipped) in enumerate(_bounded_lines(f, NDJSON_LINE_BYTES), first_line + 1):
            if not line.strip():
                continue
            if offset <= index < end:
                if clipped:
                    raise MalformedDataError(path, f"a record longer than {NDJSON_LINE_BYTES} bytes", f"line {lineno}")
                yield _row(formats.parse_ndjson_line(path, lineno, line))
            else:
                yield None
            index += 1

    with open(path, "rb") as f:
        f.seek(byte)
        page = _Page(offset, limit, start)
        page.fill(rows(f), f.tell)
        bytes_read = f.tell()

    def count() -> int:
        with open(path, "rb") as g:
            return sum(1 for line, _ in _bounded_lines(g, NDJSON_LINE_BYTES) if line.strip())

    result["items"] = page.items
    result["columns"] = _columns(page.items)
    _finish_totals(result, page, bytes_read, result["size"], count, path, "ndjson", index)


def _csv_page(path: Path, result: dict, offset: int, limit: int, index: Any = None) -> None:
    result["kind"] = "table"
    end = offset + limit
    cp = index.checkpoint_for(offset) if index is not None else None
    with formats.open_csv(path) as f:
        start, source, shift = 0, f, 0
        if cp is not None and cp[0] > 0 and index.header_end:
            # the header, then the rows from checkpoint `start` on; errors name the file's own lines
            start, shift = cp[0], cp[2] - index.header_lines
            source = _Joined(f.read(index.header_end), f, cp[1])
        try:
            reader = formats.CsvReader(source, path)
        except MalformedDataError as exc:
            result.update(error=str(exc), columns=[], bytes_read=_real_tell(source))
            return
        result["columns"] = reader.columns

        def rows() -> Iterator[dict | None]:
            index = start
            while (row := reader.next_raw()) is not None:
                yield reader.to_dict(row) if offset <= index < end else None
                index += 1

        page = _Page(offset, limit, start)
        page.fill(_renumbered(rows(), "line", shift), lambda: _real_tell(source))
        bytes_read = _real_tell(source)

    def count() -> int:
        with formats.open_csv(path) as g:
            r = formats.CsvReader(g, path)
            n = 0
            while r.next_raw() is not None:
                n += 1
            return n

    result["items"] = page.items
    _finish_totals(result, page, bytes_read, result["size"], count, path, "csv", index)


def _parquet_page(path: Path, result: dict, offset: int, limit: int) -> None:
    result["kind"] = "table"
    try:
        pf = formats.open_parquet(path)
    except formats.FormatError as exc:
        result.update(error=str(exc), columns=[])
        return
    try:
        md = pf.metadata
        total = md.num_rows
        result.update(total=total, columns=list(pf.schema_arrow.names), truncated=offset + limit < total,
                      bytes_read=None)
        items: list[dict] = []
        if limit and offset < total:
            group, start = 0, 0
            while group < md.num_row_groups and start + md.row_group(group).num_rows <= offset:
                start += md.row_group(group).num_rows
                group += 1
            skip = offset - start
            batches = pf.iter_batches(batch_size=min(max(limit, 64), 1024), row_groups=range(group, md.num_row_groups))
            for batch in batches:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                items.extend(batch.slice(skip, limit - len(items)).to_pylist())
                skip = 0
                if len(items) >= limit:
                    break
        result["items"] = items
    except Exception as exc:  # a damaged file surfaces as one of several pyarrow errors
        result["error"] = f"{path.name}: unreadable parquet data ({formats._first_line(exc)})"
    finally:
        pf.close()


def _text_page(path: Path, result: dict, offset: int, limit: int) -> None:
    result["kind"] = "text"
    clipped_lines = 0

    def lines(f) -> Iterator[str | None]:
        nonlocal clipped_lines
        for index, (line, clipped) in enumerate(_bounded_lines(f, TEXT_LINE_BYTES)):
            if not offset <= index < offset + limit:
                yield None
                continue
            text = line.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
            if clipped:
                clipped_lines += 1
                text += "…"
            yield text

    with open(path, "rb") as f:
        page = _Page(offset, limit)
        page.fill(lines(f), f.tell)
        bytes_read = f.tell()

    def count() -> int:
        n = 0
        last = b"\n"
        with open(path, "rb") as g:
            while chunk := g.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")

    result["items"] = page.items
    if clipped_lines:
        result["clipped_lines"] = clipped_lines
    _finish_totals(result, page, bytes_read, result["size"], count, path, "text")


def _binary_page(path: Path, result: dict, offset: int, limit: int) -> None:
    result["kind"] = "binary"
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(HEX_BYTES)
    result.update(hex=hex_dump(data, offset), hex_bytes=len(data), bytes_read=offset + len(data),
                  truncated=offset + len(data) < result["size"])


_INDEXED = frozenset({"json", "ndjson", "csv"})
_PAGERS: dict[str, Callable[..., None]] = {
    "json": _json_page,
    "ndjson": _ndjson_page,
    "csv": _csv_page,
    "parquet": _parquet_page,
    "text": _text_page,
    "binary": _binary_page,
}


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PreviewError(f"{name} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise PreviewError(f"{name} must be {bound}, got {value}")
    return value


def preview_file(path: str | os.PathLike, fmt: str, offset: int = 0, limit: int = 50, index: Any = None) -> dict:
    """One page of a file's content for display; see the module docstring for the shape.

    `index` (a pageindex.PageIndex, finished or partial) lets a json array, ndjson or csv page start at the
    checkpoint before it, and gives the exact total once counted."""
    _check_int("offset", offset, 0)
    _check_int("limit", limit, 0, MAX_LIMIT)
    if fmt not in _PAGERS:
        raise PreviewError(f"cannot preview format `{fmt}`; known formats: {', '.join(_PAGERS)}")
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such file")
    result: dict[str, Any] = {
        "format": fmt,
        "kind": None,
        "offset": offset,
        "limit": limit,
        "items": [],
        "total": None,
        "truncated": False,
        "size": p.stat().st_size,
        "bytes_read": 0,
    }
    if index is not None and fmt in _INDEXED:
        _PAGERS[fmt](p, result, offset, limit, index=index)
    else:
        _PAGERS[fmt](p, result, offset, limit)
    result["items"] = safe_value(result["items"])
    if result["kind"] == "table":
        cap_cells(result)
    return result


def _cell_text(value: Any) -> tuple[str, str]:
    """(text, type) of a cell as the cell route pages it: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value, "string"
    return formats.json_text(value, compact=True), "json"


def cap_cells(result: dict, positions: list[int] | None = None) -> None:
    """Cut every cell longer than CELL_CHARS characters (as text) and list the cut ones in `cut_cells`.

    `positions` gives each row's record number in the file (a sorted page); else rows follow `offset`."""
    cut = []
    for i, row in enumerate(result["items"]):
        if not isinstance(row, dict):
            continue
        for column, value in row.items():
            if isinstance(value, str):
                if len(value) <= CELL_CHARS:
                    continue
            elif not isinstance(value, (dict, list)):
                continue
            text, kind = _cell_text(value)
            if len(text) <= CELL_CHARS:
                continue
            row[column] = text[:CELL_CHARS]
            record = positions[i] if positions is not None else result["offset"] + i
            cut.append({"record": record, "column": column, "type": kind, "chars": len(text),
                        "bytes": len(text.encode("utf-8", "surrogatepass"))})
    result["cell_chars"] = CELL_CHARS
    result["cut_cells"] = cut


def cell_value(path: str | os.PathLike, fmt: str, record: int, column: str, offset: int = 0,
               limit: int = CELL_PAGE_CHARS, index: Any = None) -> dict:
    """One page (`limit` characters from `offset`) of the full text of one table cell.

    Returns {"record", "column", "type", "chars", "bytes", "offset", "limit",
    "text", "next"}: `type` is "string", or "json" for a nested value sent as
    JSON text; `chars` and `bytes` (UTF-8) measure the whole value; `next` is
    the offset of the following page, or None after the last."""
    _check_int("record", record, 0)
    _check_int("offset", offset, 0)
    _check_int("limit", limit, 1, CELL_MAX_CHARS)
    if fmt not in ("json", "ndjson", "csv", "parquet"):
        raise PreviewError(f"a {fmt} output has no table cells; cells exist in json, ndjson, csv and parquet")
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such file")
    page: dict[str, Any] = {"items": [], "total": None, "size": p.stat().st_size}
    if index is not None and fmt in _INDEXED:
        _PAGERS[fmt](p, page, record, 1, index=index)
    else:
        _PAGERS[fmt](p, page, record, 1)
    if page.get("kind") != "table":
        raise PreviewError(f"{p.name} is a JSON document, not a table; it has no cells")
    if not page["items"]:
        if page.get("error"):
            raise PreviewError(page["error"])
        raise NotFoundError(f"{p.name} has no record {record} (records are counted from 0)")
    row = page["items"][0]
    if not isinstance(row, dict) or column not in row:
        raise NotFoundError(f"record {record} of {p.name} has no column `{column}`")
    text, kind = _cell_text(safe_value(row[column]))
    if offset > len(text):
        raise PreviewError(f"offset must be at most {len(text)}, the length of the cell, got {offset}")
    end = offset + limit
    return {"record": record, "column": column, "type": kind, "chars": len(text),
            "bytes": len(text.encode("utf-8", "surrogatepass")), "offset": offset, "limit": limit,
            "text": text[offset:end], "next": end if end < len(text) else None}
