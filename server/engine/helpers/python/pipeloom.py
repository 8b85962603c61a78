"""Read a node's inputs and write its outputs by port name, in their declared formats.

    import pipeloom

    cfg = pipeloom.params()
    with pipeloom.writer("events") as out:
        for rec in pipeloom.records("raw_events"):
            out.write(rec)

Ports come from PIPELOOM_PORTS, which Pipeloom sets for every node. When it is
absent (a program run by hand), a port `x` falls back to PIPELOOM_INPUT_X /
PIPELOOM_OUTPUT_X, then to `x.<ext>` in the current folder, the format guessed
from the extension. A name with an extension (`config.json`) names a file directly.

Standard library only; parquet needs pyarrow and says so when it is missing.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = [
    "PipeloomError", "Port", "params", "input", "output", "input_path", "output_path",
    "read", "records", "write", "writer",
]

FORMATS = ("json", "ndjson", "csv", "text", "binary", "parquet")
EXTENSION_FORMATS = {
    ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv",
    ".txt": "text", ".text": "text", ".log": "text", ".md": "text",
    ".parquet": "parquet", ".pq": "parquet", ".bin": "binary",
}
# The order in which a bare port name is looked up on disk when run by hand.
_GUESS_EXTENSIONS = (".json", ".ndjson", ".jsonl", ".csv", ".txt", ".log", ".parquet", ".bin")
_FORMAT_EXTENSION = {"json": ".json", "ndjson": ".ndjson", "csv": ".csv", "text": ".txt",
                     "binary": ".bin", "parquet": ".parquet"}
_CHUNK = 1 << 20
_TOO_DEEP = "nested too deeply (more arrays and objects inside each other than Python's json reads, about 1,000)"
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9eE+\-.]*")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class PipeloomError(Exception):
    """A port that cannot be found, read or written; the message names port and file."""


class Port:
    """One resolved port: its name, absolute path and format."""

    __slots__ = ("name", "path", "format", "kind")

    def __init__(self, name: str, path: Path, fmt: str, kind: str):
        self.name, self.path, self.format, self.kind = name, path, fmt, kind

    def __repr__(self) -> str:
        return f"Port({self.kind} {self.name!r}, {str(self.path)!r}, {self.format!r})"

    def where(self) -> str:
        return f"{self.kind} `{self.name}` ({self.path})"


# ------------------------------------------------------------------ ports

def _workdir() -> Path:
    return Path(os.environ.get("PIPELOOM_WORKDIR") or os.getcwd())


def _ports() -> dict | None:
    raw = os.environ.get("PIPELOOM_PORTS")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PipeloomError(f"PIPELOOM_PORTS is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else None


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _guess_format(path: Path) -> str:
    return EXTENSION_FORMATS.get(path.suffix.lower(), "binary")


def _resolve(name: str, kind: str, hint: str | None = None) -> Port:
    declared = (_ports() or {}).get(kind + "s") or {}
    entry = declared.get(name)
    if entry is None:
        # A file name such as `events.json` also finds the port that uses it.
        entry = next((e for e in declared.values() if Path(e.get("path", "")).name == name), None)
    if entry is not None:
        path = Path(entry["path"])
        fmt = entry.get("format") or _guess_format(path)
        return Port(name, path, fmt, kind)
    env = os.environ.get(f"PIPELOOM_{kind.upper()}_{_env_key(name)}")
    if env:
        return Port(name, Path(env), _guess_format(Path(env)), kind)
    base = _workdir()
    if Path(name).suffix:
        path = base / name
        return Port(name, path, _guess_format(path), kind)
    if kind == "input" or hint is None:
        for ext in _GUESS_EXTENSIONS:
            if (base / (name + ext)).exists():
                path = base / (name + ext)
                return Port(name, path, _guess_format(path), kind)
    if kind == "input":
        tried = ", ".join(name + e for e in _GUESS_EXTENSIONS[:4])
        raise PipeloomError(
            f"input `{name}` not found: PIPELOOM_PORTS does not declare it and none of {tried}, ... "
            f"exists in {base}")
    fmt = hint or "json"
    return Port(name, base / (name + _FORMAT_EXTENSION.get(fmt, "." + fmt)), fmt, kind)


def input(name: str) -> Port:  # noqa: A001 - mirrors output()
    """The resolved input port `name` (path and format)."""
    return _resolve(name, "input")


def output(name: str, format: str | None = None) -> Port:  # noqa: A002
    """The resolved output port `name`; `format` only guides the by-hand fallback."""
    return _resolve(name, "output", format)


def input_path(name: str) -> Path:
    """Absolute path of input `name`."""
    return input(name).path


def output_path(name: str) -> Path:
    """Absolute path where output `name` must be written."""
    return output(name).path


def params() -> dict:
    """The node's params: PIPELOOM_PARAMS, else params.json in the working folder, else {}."""
    raw = os.environ.get("PIPELOOM_PARAMS")
    source = "PIPELOOM_PARAMS"
    if raw is None:
        path = _workdir() / "params.json"
        if not path.exists():
            return {}
        raw, source = path.read_text(encoding="utf-8"), str(path)
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise PipeloomError(f"params in {source} are not valid JSON: {exc}") from None
    return value if isinstance(value, dict) else {"value": value}


# ------------------------------------------------------------------ reading

def _open_text(port: Port):
    try:
        # Text keeps going past stray bytes (U+FFFD), as logs from the field need.
        errors = "replace" if port.format == "text" else "strict"
        return open(port.path, "r", encoding="utf-8-sig", errors=errors, newline="")
    except FileNotFoundError:
        raise PipeloomError(f"{port.where()}: file not found") from None
    except OSError as exc:
        raise PipeloomError(f"{port.where()}: cannot open: {exc.strerror}") from None


def _need_pyarrow(port: Port):
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise PipeloomError(
            f"{port.where()}: the parquet format needs pyarrow; add it to the node "
            "(a PEP 723 block: `# dependencies = [\"pyarrow\"]`) or use json/ndjson/csv") from None
    return pq


def read(name: str) -> Any:
    """Input `name` as native data: json -> its value, ndjson/csv/parquet -> a list of
    dicts, text -> str, binary -> bytes."""
    port = input(name)
    fmt = port.format
    if fmt == "json":
        with _open_text(port) as fh:
            try:
                return json.load(fh)
            except ValueError as exc:
                raise PipeloomError(f"{port.where()}: invalid JSON: {exc}") from None
            except RecursionError:
                raise PipeloomError(f"{port.where()}: invalid JSON: {_TOO_DEEP}") from None
    if fmt in ("ndjson", "csv", "parquet"):
        return list(_records(port))
    if fmt == "text":
        with _open_text(port) as fh:
            return fh.read()
    if fmt == "binary":
        try:
            return port.path.read_bytes()
        except OSError as exc:
            raise PipeloomError(f"{port.where()}: cannot read: {exc.strerror}") from None
    raise PipeloomError(f"{port.where()}: unknown format `{fmt}` (expected one of {', '.join(FORMATS)})")


def records(name: str) -> Iterator[Any]:
    """Stream the records of input `name`: the items of a JSON array, ndjson lines,
    csv rows (dicts of strings), parquet rows, or text lines (without the newline)."""
    return _records(input(name))


def _records(port: Port) -> Iterator[Any]:
    fmt = port.format
    if fmt == "json":
        return _json_array(port)
    if fmt == "ndjson":
        return _ndjson(port)
    if fmt == "csv":
        return _csv_rows(port)
    if fmt == "text":
        return _text_lines(port)
    if fmt == "parquet":
        return _parquet_rows(port)
    raise PipeloomError(f"{port.where()}: format `{fmt}` has no records; use read() instead")


def _ndjson(port: Port) -> Iterator[Any]:
    loads = json.loads
    with _open_text(port) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield loads(line)
                except ValueError as exc:
                    raise PipeloomError(f"{port.where()} line {n}: invalid JSON: {exc}") from None
                except RecursionError:
                    raise PipeloomError(f"{port.where()} line {n}: invalid JSON: {_TOO_DEEP}") from None


def _csv_rows(port: Port) -> Iterator[dict]:
    """Rows as dicts, strictly (a quote left open and NUL bytes are errors), naming the true line.

    Lines are read as bytes and decoded one by one: a text file decodes ahead
    of the csv reader, so its errors would name an earlier line."""
    lineno = 0

    def lines(fh) -> Iterator[str]:
        nonlocal lineno
        for raw in fh:
            if lineno == 0 and raw[:3] == b"\xef\xbb\xbf":
                raw = raw[3:]
            # old Mac files end lines with a bare CR
            pieces = re.split(rb"(?<=\r)(?!\n)", raw) if raw.count(b"\r") > raw.endswith(b"\r\n") else (raw,)
            for piece in filter(None, pieces):
                lineno += 1
                if b"\0" in piece:
                    raise PipeloomError(f"{port.where()} line {lineno}: a NUL byte, which CSV text cannot hold")
                try:
                    yield piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise PipeloomError(f"{port.where()} line {lineno}: not valid UTF-8 text "
                                        f"(byte {exc.start + 1} of the line)") from None

    try:
        fh = open(port.path, "rb")
    except OSError:
        fh = _open_text(port)  # raises the usual message
    with fh:
        reader = csv.DictReader(lines(fh), strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    raise PipeloomError(f"{port.where()} line {start}: a quoted field starts here and is never "
                                        "closed (the file ends inside quotes)") from None
                raise PipeloomError(f"{port.where()} line {lineno}: invalid CSV: {exc}") from None
            start = lineno + 1
            yield row


def _text_lines(port: Port) -> Iterator[str]:
    with _open_text(port) as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def _parquet_rows(port: Port) -> Iterator[dict]:
    pq = _need_pyarrow(port)
    pf = pq.ParquetFile(port.path)
    for batch in pf.iter_batches(batch_size=10_000):
        yield from batch.to_pylist()


def _json_array(port: Port) -> Iterator[Any]:
    """Items of a top-level JSON array in bounded memory.

    Whole runs of items are parsed with one json.loads call: the text up to a
    `}` followed by `,` is tried as an array. A `,` nested inside an item or a
    string always leaves a bracket or quote open, so such a try fails and the
    next candidate is used; what the fast path cannot take is read one item at
    a time.
    """
    loads = json.loads
    decode = json.JSONDecoder().raw_decode
    ws = _WS.match

    def invalid(why: str) -> PipeloomError:
        return PipeloomError(f"{port.where()}: invalid JSON: {why}")

    with _open_text(port) as fh:
        buf = fh.read(_CHUNK)
        eof = len(buf) < _CHUNK
        pos = ws(buf, 0).end()
        if pos >= len(buf) or buf[pos] != "[":
            raise PipeloomError(f"{port.where()}: expected a JSON array of records, found "
                                f"{buf[pos:pos + 20]!r}; use read() for other JSON documents")
        pos += 1
        state = "first"  # first: an item or `]`; item: an item (after a comma); next: `,` or `]`

        def finish(rest: str) -> None:
            while True:
                if rest.strip():
                    raise invalid(f"text after the closing `]`: {rest.strip()[:20]!r}")
                rest = fh.read(_CHUNK)
                if not rest:
                    return

        while True:
            if not eof and len(buf) - pos < _CHUNK:
                more = fh.read(_CHUNK)
                eof = len(more) < _CHUNK
                buf, pos = buf[pos:] + more, 0
            if state != "next":
                if eof:
                    # The rest of the file in one go; after a comma a dummy
                    # first item makes a trailing `,]` fail as it should.
                    try:
                        items = loads(("[" if state == "first" else "[0,") + buf[pos:])
                    except (ValueError, RecursionError):
                        items = None
                    if items is not None:
                        yield from (items if state == "first" else items[1:])
                        return
                else:
                    end, done = len(buf), False
                    for _ in range(4):
                        j = buf.rfind("}", pos, end)
                        if j < 0:
                            break
                        k = ws(buf, j + 1).end()
                        if k < len(buf) and buf[k] == ",":
                            try:
                                items = loads("[" + buf[pos:j + 1] + "]")
                            except (ValueError, RecursionError):
                                end = j
                                continue
                            yield from items
                            pos, state, done = k + 1, "item", True
                            break
                        end = j
                    if done:
                        continue
            # Slow path: token by token until the buffer needs more text.
            while True:
                pos = ws(buf, pos).end()
                if pos >= len(buf):
                    if eof:
                        raise PipeloomError(f"{port.where()}: JSON array is not closed (missing `]`)")
                    break
                c = buf[pos]
                if state == "next":
                    if c == ",":
                        pos, state = pos + 1, "item"
                        continue
                    if c == "]":
                        finish(buf[pos + 1:])
                        return
                    raise invalid(f"expected `,` or `]` at {buf[pos:pos + 20]!r}")
                if c == "]" and state == "first":
                    finish(buf[pos + 1:])
                    return
                try:
                    item, nxt = decode(buf, pos)
                except RecursionError:
                    raise invalid(_TOO_DEEP) from None
                except ValueError as exc:
                    if not eof and len(buf) - pos < 64 * _CHUNK:
                        break  # perhaps an item cut at the buffer's end
                    raise invalid(str(exc)) from None
                if not eof and type(item) in (int, float) and _NUMBER_TAIL.fullmatch(buf, nxt):
                    break  # a number cut at the buffer's end (`12` of `12.5`) may be incomplete
                yield item
                pos, state = nxt, "next"
            more = fh.read(max(_CHUNK, len(buf) - pos))
            eof = not more
            buf, pos = buf[pos:] + more, 0


# ------------------------------------------------------------------ writing

@contextlib.contextmanager
def _atomic(port: Port, mode: str):
    """Open a temporary file beside the target; rename it into place only on success."""
    port.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = port.path.with_name(f".{port.path.name}.tmp-{os.getpid()}")
    try:
        fh = open(tmp, mode, encoding=None if "b" in mode else "utf-8",
                  newline=None if "b" in mode else "")
    except OSError as exc:
        raise PipeloomError(f"{port.where()}: cannot write: {exc.strerror}") from None
    try:
        with fh:
            yield fh
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.replace(tmp, port.path)


def write(name: str, data: Any) -> Path:
    """Write output `name` in its declared format and return its path: json takes any
    value; ndjson/csv/parquet an iterable of records; text a str (or lines); binary bytes."""
    hint = "binary" if isinstance(data, (bytes, bytearray)) else "text" if isinstance(data, str) else None
    port = output(name, hint)
    if port.format == "json":
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=_default)
        except (TypeError, ValueError) as exc:
            raise PipeloomError(f"{port.where()}: cannot be written as JSON: {exc}") from None
        with _atomic(port, "w") as fh:
            fh.write(text + "\n")
    elif port.format == "binary":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise PipeloomError(f"{port.where()}: binary output needs bytes, got {type(data).__name__}")
        with _atomic(port, "wb") as fh:
            fh.write(data)
    elif port.format == "text" and isinstance(data, str):
        with _atomic(port, "w") as fh:
            fh.write(data)
    else:
        with _open_writer(port) as w:
            for item in ([data] if isinstance(data, dict) else data):
                w.write(item)
    return port.path


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Writer:
    """Writes records one at a time; see writer()."""

    def __init__(self, port: Port, fh, columns: list[str] | None):
        self.port = port
        self._fh = fh
        self.count = 0
        self._columns = list(columns) if columns else None
        self._csv = None
        self._batch: list = []
        self._flushed = False
        self._parquet = None
        self._enc = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=False,
                                     default=_default).encode
        if port.format == "json":
            fh.write("[")
        if port.format in ("json", "ndjson"):
            self.write = self._write_json  # the hot path, without the format dispatch

    def _write_json(self, record: Any) -> None:
        self.count += 1
        # Kept in a batch and encoded in one call at flush (several times
        # faster); the shallow copy keeps later changes to the record out.
        self._batch.append(record.copy() if type(record) is dict else record)
        if len(self._batch) >= 2000:
            self._flush()

    def write(self, record: Any) -> None:
        """Append one record (a dict for csv/parquet, any JSON value for json/ndjson,
        a line for text, bytes for binary)."""
        fmt = self.port.format
        self.count += 1
        if fmt == "parquet":
            self._batch.append(dict(record))
            if len(self._batch) >= 10_000:
                self._flush()
        elif fmt == "csv":
            self._write_csv(record)
        elif fmt == "text":
            self._fh.write(record if isinstance(record, str) else str(record))
            self._fh.write("\n")
        elif fmt == "binary":
            self._fh.write(record)
        else:
            raise PipeloomError(f"{self.port.where()}: unknown format `{fmt}`")

    def write_many(self, records: Iterable[Any]) -> None:
        """Append every record of an iterable."""
        for r in records:
            self.write(r)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        fmt = self.port.format
        if fmt == "parquet":
            self._write_parquet(batch)
            return
        sep = ",\n" if fmt == "json" else "\n"
        try:
            text = self._encode_batch(batch, sep)
        except (TypeError, ValueError) as exc:
            raise PipeloomError(f"{self.port.where()}: a record cannot be written as JSON: {exc}") from None
        if fmt == "json":
            self._fh.write(("," if self._flushed else "") + "\n" + text)
            self._flushed = True
        else:
            self._fh.write(text + "\n")

    def _encode_batch(self, batch: list, sep: str) -> str:
        """Encode records one per line, joined by `sep`.

        When every record is an object, the whole list is encoded at once and
        split at `}, {`. Between two records that pattern always occurs, so
        finding it exactly len-1 times proves none sits inside a record.
        """
        if all(type(r) is dict for r in batch):
            inner = self._enc(batch)[1:-1]
            if inner.count("}, {") == len(batch) - 1:
                return inner.replace("}, {", "}" + sep + "{")
        return sep.join(map(self._enc, batch))

    def _write_csv(self, record: Any) -> None:
        if not isinstance(record, dict):
            raise PipeloomError(f"{self.port.where()}: csv records must be objects (dicts), "
                                f"got {type(record).__name__}")
        if self._csv is None:
            if self._columns is None:
                self._columns = list(record.keys())
            self._colset = set(self._columns)
            self._csv = csv.writer(self._fh, lineterminator="\n")
            self._csv.writerow(self._columns)
        extra = [k for k in record if k not in self._colset]
        if extra:
            raise PipeloomError(f"{self.port.where()}: record {self.count} has fields not in the csv "
                                f"header {self._columns}: {extra}; pass columns= to writer()")
        self._csv.writerow([_cell(record.get(c)) for c in self._columns])

    def _write_parquet(self, batch: list) -> None:
        pq = _need_pyarrow(self.port)
        import pyarrow as pa
        table = pa.Table.from_pylist(batch)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._fh, table.schema)
        else:
            table = table.cast(self._parquet.schema)
        self._parquet.write_table(table)

    def _close(self) -> None:
        self._flush()
        fmt = self.port.format
        if fmt == "json":
            self._fh.write("\n]\n" if self._flushed else "]\n")
        elif fmt == "csv" and self._csv is None and self._columns:
            csv.writer(self._fh, lineterminator="\n").writerow(self._columns)
        elif fmt == "parquet" and self._parquet is not None:
            self._parquet.close()
        elif fmt == "parquet":
            raise PipeloomError(f"{self.port.where()}: cannot write a parquet file with no records "
                                "(its columns are unknown)")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _open_writer(port: Port, columns: list[str] | None = None):
    binary = port.format in ("binary", "parquet")

    @contextlib.contextmanager
    def manage():
        with _atomic(port, "wb" if binary else "w") as fh:
            w = Writer(port, fh, columns)
            yield w
            w._close()

    return manage()


def writer(name: str, columns: list[str] | None = None):
    """A context manager that streams records into output `name`; the file appears
    only when the block ends without an error. `columns` fixes the csv header."""
    return _open_writer(output(name), columns)
