"""Reading JSON the one way the engine allows, wherever it reads it.

Two rules: JSON is UTF-8 (RFC 8259; a leading UTF-8 byte-order mark is
skipped, UTF-16 and UTF-32 are refused with a message saying so), and arrays
and objects nest at most MAX_DEPTH levels (the top-level value is level 1).

Memory stays bounded at any depth. ijson's `items()` keeps one prefix string
per open level, each as long as the path to it, so a file of nothing but `[`
costs memory in the square of its depth. A DepthScanner therefore reads every
chunk before the parser does and stops at the first bracket beyond the limit:
the parser never sees a deeper level. The scan works on whole chunks with
bytes methods (replace, translate, split, count), so it costs a fraction of
the parse.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any, Callable, Iterator

from .dataerrors import MalformedDataError

MAX_DEPTH = 1000


def _load_ijson():
    """ijson and its fastest backend, imported on first use: most runs never stream a large JSON file."""
    global ijson, _ijson, JSON_BACKEND
    if "_ijson" in globals():
        return ijson, _ijson
    import ijson as lib

    try:
        backend = lib.get_backend("yajl2_c")
    except ImportError:  # the pure-Python backend still works, just slower
        backend = lib
    ijson, _ijson, JSON_BACKEND = lib, backend, getattr(backend, "backend", "python")
    return lib, backend


def __getattr__(name: str):
    if name in ("ijson", "_ijson", "JSON_BACKEND"):
        _load_ijson()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

READ_CHUNK = 64 * 1024
BOM = b"\xef\xbb\xbf"
UTF8_RULE = "JSON must be UTF-8 (RFC 8259); re-save the file as UTF-8"

_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})
# Every byte but the four brackets and the quote: deleted before counting.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')


def too_deep(limit: int = MAX_DEPTH) -> str:
    """The message for JSON nested beyond `limit` levels."""
    return f"nested too deeply: more than {limit:,} levels of arrays and objects (the limit is {limit:,})"


class TooDeep(Exception):
    """Raised by DepthScanner; readers turn it into a MalformedDataError that says where."""


def not_utf8(head: bytes) -> str | None:
    """The encoding the first bytes of a file suggest when it is not UTF-8 ("UTF-16", "UTF-32"), else None."""
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "UTF-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    # JSON text starts with ASCII, so zero bytes among the first four give the encoding away (RFC 4627 §3)
    if len(head) >= 4 and head[:3] == b"\x00\x00\x00" or len(head) >= 4 and head[1:4] == b"\x00\x00\x00":
        return "UTF-32"
    if len(head) >= 2 and (head[0] == 0 or head[1] == 0):
        return "UTF-16"
    return None


def not_utf8_message(encoding: str) -> str:
    """The message for a JSON file in another encoding."""
    return f"not UTF-8 text (it looks like {encoding}); {UTF8_RULE}"


class DepthScanner:
    """Follows the nesting depth of a JSON text fed to it in consecutive chunks, outside strings."""

    def __init__(self, limit: int = MAX_DEPTH):
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.odd_backslash = False  # the previous chunk ended inside a run of backslashes of odd length

    def feed(self, chunk: bytes) -> None:
        """Account for `chunk`; raises TooDeep at the first bracket beyond the limit."""
        data = b"\\" + chunk if self.odd_backslash else chunk
        body = data.rstrip(b"\\")
        # what a trailing run escapes is in the next chunk; only its parity matters
        self.odd_backslash = (len(data) - len(body)) % 2 == 1
        if b"\\" in body:
            # pairs first (an escaped backslash), then escaped quotes; what is left escapes nothing we count
            body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = body.translate(None, _NOT_STRUCTURE)
        if b'"' in marks:
            flip = marks.count(b'"') % 2 == 1
            # Adjacent quotes either delimit an empty string or end one string and start the next
            # with nothing counted between them: dropping the pair keeps every bracket on its side.
            marks = marks.replace(b'""', b"")
            if b'"' in marks:
                parts = marks.split(b'"')
                marks = b"".join(parts[1::2] if self.in_string else parts[0::2])
            elif self.in_string:
                marks = b""
            if flip:
                self.in_string = not self.in_string
        elif self.in_string:
            marks = b""
        outside = marks
        opens = outside.count(b"[") + outside.count(b"{")
        if self.depth + opens > self.limit:
            depth = self.depth
            for c in outside:
                depth += 1 if c in (91, 123) else -1  # `[` `{` open; the rest here is `]` `}`
                if depth > self.limit:
                    raise TooDeep(too_deep(self.limit))
            self.depth = depth
            return
        self.depth += opens - outside.count(b"]") - outside.count(b"}")


class Scanned:
    """A binary file whose every read passes through a DepthScanner first."""

    def __init__(self, f: io.BufferedIOBase, scanner: DepthScanner):
        self.f, self.scanner = f, scanner

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        data = self.f.read(n if n is not None and n > 0 else READ_CHUNK)
        if data:
            self.scanner.feed(data)
        return data


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (ijson's carry a drawing of the spot)."""
    arg = exc.args[0] if len(exc.args) == 1 else None
    text = (arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


_JSON_START = {b"[": "array", b"{": "object", b'"': "string", b"t": "boolean", b"f": "boolean", b"n": "null"}


def peek_json(f: io.BufferedIOBase, path: str | os.PathLike | None = None) -> str:
    """Kind of the top-level JSON value in binary file `f` ("array", "object", ...,
    "empty" or "invalid"); leaves `f` positioned at the value (after any BOM).

    With `path`, a file in UTF-16 or UTF-32 raises MalformedDataError saying so."""
    pos = f.tell()
    head = f.read(4)
    if path is not None and (encoding := not_utf8(head)):
        raise MalformedDataError(path, not_utf8_message(encoding))
    if head[:3] == BOM:
        pos += 3
    f.seek(pos)
    while True:
        chunk = f.read(4096)
        if not chunk:
            f.seek(pos)
            return "empty"
        stripped = chunk.lstrip(b" \t\r\n")
        if stripped:
            pos += len(chunk) - len(stripped)
            f.seek(pos)
            c = stripped[:1]
            if c in _JSON_START:
                return _JSON_START[c]
            if c in b"-0123456789":
                return "number"
            return "invalid"
        pos += len(chunk)


def iter_json_values(f: io.BufferedIOBase, path: str | os.PathLike) -> Iterator[Any]:
    """Stream the items of the top-level JSON array in binary file `f`.

    Raises MalformedDataError naming the record when the document is not an
    array, is not UTF-8, nests too deeply or stops being valid JSON."""
    kind = peek_json(f, path)
    if kind != "array":
        found = {"empty": "an empty file", "invalid": "invalid JSON", "object": "an object", "null": "null"}.get(
            kind, f"a {kind}"
        )
        raise MalformedDataError(path, f"expected a JSON array of objects, found {found}")
    start = f.tell()
    n = 0
    ijson, backend = _load_ijson()
    it = backend.items(Scanned(f, DepthScanner()), "item", use_float=True, buf_size=READ_CHUNK)
    fallback = backend is not ijson.get_backend("python")
    while True:
        try:
            value = next(it)
        except StopIteration:
            return
        except TooDeep as exc:
            raise MalformedDataError(path, str(exc), f"record {n + 1}") from None
        except (ijson.JSONError, ValueError) as exc:
            message = first_line(exc)
            if fallback and "integer overflow" in message:
                # yajl stops at integers beyond 64 bits; the pure-Python parser
                # takes over from the start, skipping the records already given.
                fallback = False
                f.seek(start)
                it = ijson.get_backend("python").items(Scanned(f, DepthScanner()), "item", use_float=True)
                for _ in range(n):
                    next(it)
                continue
            raise MalformedDataError(path, f"invalid JSON ({message})", f"record {n + 1}") from exc
        n += 1
        yield value


def build_value(events: Iterator[tuple[str, Any]], limit: int = MAX_DEPTH) -> Any:
    """The value described by ijson basic_parse `events`, built without recursion.

    Raises TooDeep beyond `limit` levels; reads the events to their end, so
    trailing garbage still fails."""
    stack: list = []
    keys: list = []
    for event, value in events:
        if event == "map_key":
            keys[-1] = value
            continue
        if event in _ENDS:
            done = stack.pop()
            keys.pop()
            if not stack:
                for _ in events:
                    pass
                return done
            continue
        child = ({} if event == "start_map" else []) if event in _STARTS else value
        if stack:
            parent = stack[-1]
            if type(parent) is dict:
                parent[keys[-1]] = child
            else:
                parent.append(child)
        elif event not in _STARTS:
            for _ in events:
                pass
            return child
        if event in _STARTS:
            if len(stack) >= limit:
                raise TooDeep(too_deep(limit))
            stack.append(child)
            keys.append(None)
    raise ValueError("the document ends inside a value")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads(data: bytes, path: str | os.PathLike, where: str | None = None, *, allow_nan: bool = True) -> Any:
    """One JSON document held in memory, under the engine's rules; MalformedDataError names `path` and `where`."""
    if data[:3] == BOM:
        data = data[3:]
    elif (encoding := not_utf8(data[:4])) and data.strip():
        raise MalformedDataError(path, not_utf8_message(encoding), where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDataError(path, f"not valid UTF-8 (byte {exc.start + 1}); {UTF8_RULE}", where) from None
    try:
        DepthScanner().feed(data)
    except TooDeep as exc:
        raise MalformedDataError(path, str(exc), where) from None
    try:
        return json.loads(text) if allow_nan else json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        here = where or f"line {exc.lineno} column {exc.colno}"
        raise MalformedDataError(path, f"invalid JSON ({exc.msg})", here) from exc
    except ValueError as exc:
        raise MalformedDataError(path, f"invalid JSON ({first_line(exc)})", where) from exc
    except RecursionError:
        pass  # within the limit but deeper than the C decoder's recursion allows
    ijson, backend = _load_ijson()
    try:
        return build_value(backend.basic_parse(io.BytesIO(data), use_float=True))
    except (ijson.JSONError, ValueError) as exc:
        raise MalformedDataError(path, f"invalid JSON ({first_line(exc)})", where) from exc


def iter_ndjson_lines(f: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for every non-blank line of binary file `f`."""
    for lineno, line in enumerate(f, 1):
        if line.strip():
            yield lineno, line


def parse_ndjson_line(path: str | os.PathLike, lineno: int, line: bytes) -> Any:
    """One ndjson line as a value, or MalformedDataError naming the line."""
    if lineno > 1 and sys.getrecursionlimit() <= MAX_DEPTH:
        # The common case, at C speed: what the C decoder accepts within this
        # recursion limit nests less than MAX_DEPTH; anything else takes the long way for its message.
        try:
            return _json_loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            pass
    elif lineno == 1 and line[:3] == BOM:
        line = line[3:]
    return loads(line, path, f"line {lineno}")


_json_loads = json.loads


def dumps_deep(value: Any, scalar: Callable[[Any], str], item_sep: str = ", ", key_sep: str = ": ") -> str:
    """JSON text for a value of any depth, without recursion; `scalar` encodes everything but dicts and lists."""
    out: list[str] = []
    stack: list[list] = []

    def open_(v: Any) -> None:
        if isinstance(v, dict):
            out.append("{")
            stack.append([iter(v.items()), True, True])
        elif isinstance(v, (list, tuple)):
            out.append("[")
            stack.append([iter(v), False, True])
        else:
            out.append(scalar(v))

    open_(value)
    while stack:
        top = stack[-1]
        item = next(top[0], _END)
        if item is _END:
            out.append("}" if top[1] else "]")
            stack.pop()
            continue
        if not top[2]:
            out.append(item_sep)
        top[2] = False
        if top[1]:
            k, v = item
            out.append(scalar(k if isinstance(k, str) else str(k)) + key_sep)
            open_(v)
        else:
            open_(item)
    return "".join(out)


_END = object()
