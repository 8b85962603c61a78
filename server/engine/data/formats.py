"""The format registry and the streaming conversions between formats.

Formats: json (a document; a top-level array of objects when it carries
records), ndjson, csv, text, binary and parquet (needs the optional pyarrow
package). The records formats (json, ndjson, csv, parquet) inter-convert;
json, ndjson and csv may feed a text input as their raw bytes, and anything
may feed a binary input.

Conversions stream: JSON arrays are read with ijson (its C backend when
present; jsonread.py holds the rules: UTF-8 only, at most MAX_DEPTH levels,
bounded memory at any depth), CSV line by line (strict, errors on the true
physical line) and parquet in row batches, so a 1 GB file converts in
bounded memory. Every output is written to a temporary
file beside the destination and moved into place only when complete.

CSV carries no types. Values read from CSV are always strings (an empty cell
is ""). Values written to CSV are text: null becomes an empty cell, booleans
become `true`/`false`, and nested objects and arrays are JSON-encoded.
JSON has no NaN or Infinity: such numbers are written to json and ndjson as
null.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import importlib
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..csvread import CsvReader, open_csv
from ..dataerrors import ConversionError, FormatError, MalformedDataError
from ..errors import NotFoundError, PipeloomError
from ..jsonread import (MAX_DEPTH, dumps_deep, first_line, iter_json_values,  # noqa: F401
                       iter_ndjson_lines, parse_ndjson_line, peek_json)

_first_line = first_line


def __getattr__(name: str):  # jsonread's ijson names, imported when first asked for
    if name in ("JSON_BACKEND", "_ijson"):
        from .. import jsonread

        return getattr(jsonread, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

BATCH_ROWS = 10_000
NATIVE_MIN_BYTES = 1 << 20  # below this, starting the compiled converter costs more than it saves
PARQUET_HINT = "parquet needs the optional pyarrow package: pip install 'pipeloom[parquet]'"



@dataclass(frozen=True)
class Format:
    """One data format a port can declare."""

    name: str
    extension: str
    is_records: bool
    mime: str
    lexer: str  # a Pygments lexer alias for showing the raw file
    requires: str | None = None  # an optional module the format needs

    def available(self) -> bool:
        """True when the format's optional dependency can be imported."""
        if self.requires is None:
            return True
        if self.requires not in _importable:
            try:
                importlib.import_module(self.requires)
                _importable[self.requires] = True
            except ImportError:
                _importable[self.requires] = False
        return _importable[self.requires]


_importable: dict[str, bool] = {}


FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Add a format to the registry (replacing one of the same name)."""
    FORMATS[fmt.name] = fmt
    return fmt


for _f in (
    Format("json", "json", True, "application/json", "json"),
    Format("ndjson", "ndjson", True, "application/x-ndjson", "json"),
    Format("csv", "csv", True, "text/csv", "text"),
    Format("text", "txt", False, "text/plain", "text"),
    Format("binary", "bin", False, "application/octet-stream", "text"),
    Format("parquet", "parquet", True, "application/vnd.apache.parquet", "text", requires="pyarrow"),
):
    register_format(_f)

# Formats whose bytes are readable text, so they may feed a `text` input unchanged.
_TEXTUAL = {"json", "ndjson", "csv", "text"}

_EXTENSION_ALIASES = {"jsonl": "ndjson", "txt": "text", "log": "text", "md": "text", "pq": "parquet"}


def known_formats() -> list[str]:
    """The registered format names, in registration order."""
    return list(FORMATS)


def _unknown(name: str) -> str:
    return f"unknown format `{name}`; known formats: {', '.join(FORMATS)}"


def get_format(name: str) -> Format:
    """The Format called `name`, or FormatError naming the known ones."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise FormatError(_unknown(name)) from None


def guess_format(filename: str | os.PathLike) -> str:
    """The format a file name suggests by its extension (binary when unknown)."""
    ext = Path(filename).suffix.lower().lstrip(".")
    for fmt in FORMATS.values():
        if fmt.extension == ext:
            return fmt.name
    return _EXTENSION_ALIASES.get(ext, "binary")


def can_convert(src_fmt: str, dst_fmt: str) -> tuple[bool, str | None]:
    """Whether data in `src_fmt` can feed an input declared as `dst_fmt`, and why not."""
    for name in (src_fmt, dst_fmt):
        if name not in FORMATS:
            return False, _unknown(name)
    if src_fmt == dst_fmt or dst_fmt == "binary":
        return True, None
    src, dst = FORMATS[src_fmt], FORMATS[dst_fmt]
    if dst_fmt == "text" and src_fmt in _TEXTUAL:
        return True, None
    if src.is_records and dst.is_records:
        for f in (src, dst):
            if not f.available():
                return False, PARQUET_HINT if f.name == "parquet" else f"{f.name} needs the `{f.requires}` package"
        return True, None
    return False, f"no conversion from {src_fmt} to {dst_fmt}"


# ---------------------------------------------------------------------------
# Value encoding shared by the writers


def jsonable(value: Any) -> Any:
    """A JSON-friendly stand-in for values JSON has no type for (dates, decimals, bytes)."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _make_encoder(item_sep: str, key_sep: str) -> Callable[[Any], str]:
    # JSONEncoder.encode builds a fresh C encoder on every call, which costs as
    # much as encoding a small record; build it once when the C module is there.
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or escape is None:
        return json.JSONEncoder(ensure_ascii=False, default=jsonable, check_circular=False, allow_nan=False,
                                separators=(item_sep, key_sep)).encode
    encode = make(None, jsonable, escape, None, key_sep, item_sep, False, False, False)
    return lambda value: "".join(encode(value, 0))


_encode = _make_encoder(", ", ": ")
_encode_compact = _make_encoder(",", ":")


def json_text(value: Any, *, compact: bool = False) -> str:
    """JSON text for one value, UTF-8 friendly (no \\u escapes); values must not contain themselves.

    NaN and infinities, which JSON cannot express, are written as null (as
    JavaScript's JSON.stringify does)."""
    encode = _encode_compact if compact else _encode
    try:
        return encode(value)
    except (ValueError, RecursionError):
        # a non-finite number, or a value nested deeper than the C encoder recurses
        def scalar(v: Any) -> str:
            return "null" if isinstance(v, float) and not math.isfinite(v) else encode(v)

        return dumps_deep(value, scalar, *((",", ":") if compact else (", ", ": ")))


# Types the csv module already writes as csv_cell would (None as "", numbers via str()).
_CSV_NATIVE = frozenset({str, int, float, type(None)})


def csv_cell(value: Any) -> str:
    """The text of one CSV cell: nested values JSON-encoded, null as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (dict, list)):
        return json_text(value, compact=True)
    v = jsonable(value)
    return v if isinstance(v, str) else json_text(v, compact=True)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# ---------------------------------------------------------------------------
# Readers


def _json_records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for n, value in enumerate(iter_json_values(f, path), 1):
            if not isinstance(value, dict):
                raise MalformedDataError(path, f"expected an object, found {_kind(value)}", f"record {n}")
            yield value


def _ndjson_records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for lineno, line in iter_ndjson_lines(f):
            value = parse_ndjson_line(path, lineno, line)
            if not isinstance(value, dict):
                raise MalformedDataError(path, f"expected a JSON object, found {_kind(value)}", f"line {lineno}")
            yield value


def _csv_records(path: Path) -> Iterator[dict]:
    with open_csv(path) as f:
        yield from CsvReader(f, path)


def open_parquet(path: str | os.PathLike):
    """A pyarrow ParquetFile, or FormatError when pyarrow is missing or the file is unreadable."""
    if not FORMATS["parquet"].available():
        raise FormatError(PARQUET_HINT)
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise MalformedDataError(path, f"not a readable parquet file ({_first_line(exc)})") from exc


def _parquet_records(path: Path) -> Iterator[dict]:
    pf = open_parquet(path)
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()
    finally:
        pf.close()


_READERS: dict[str, Callable[[Path], Iterator[dict]]] = {
    "json": _json_records,
    "ndjson": _ndjson_records,
    "csv": _csv_records,
    "parquet": _parquet_records,
}


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such file")
    return p


def iter_records(path: str | os.PathLike, fmt: str) -> Iterator[dict]:
    """Stream the records of a records-format file as dicts (CSV values are strings)."""
    get_format(fmt)
    if fmt not in _READERS:
        raise FormatError(f"{fmt} is not a records format; records come from {', '.join(_READERS)}")
    return _READERS[fmt](_existing(path))


# ---------------------------------------------------------------------------
# Atomic output


class _AtomicOutput:
    """A temporary file beside `dst` that replaces it only on success."""

    def __init__(self, dst: str | os.PathLike):
        self.dst = Path(dst)
        self.tmp = self.dst.with_name(f".{self.dst.name}.{os.getpid()}.{os.urandom(4).hex()}.part")

    def create(self) -> io.BufferedWriter:
        # os.open with 0o666 honours the umask, unlike mkstemp's 0o600
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        return os.fdopen(fd, "wb", buffering=1 << 20)

    def commit(self) -> None:
        os.replace(self.tmp, self.dst)

    def discard(self) -> None:
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def _copy_raw(src: Path, dst: Path) -> None:
    out = _AtomicOutput(dst)
    try:
        with open(src, "rb") as fin, out.create() as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        out.commit()
    except BaseException:
        out.discard()
        raise


# ---------------------------------------------------------------------------
# Writers


class RecordWriter:
    """Write records (dicts) to a records-format file, atomically.

    Use as a context manager: the file appears at `path` only when the block
    ends without an exception. For csv, `columns` fixes the header (default:
    the keys of the first record); for parquet, `schema` (a pyarrow Schema) or
    `columns` fixes the columns, otherwise they are inferred from the first
    batch of rows. `count` is the number of records written."""

    def __init__(self, path: str | os.PathLike, fmt: str, columns: Iterable[str] | None = None, *,
                 schema: Any = None, batch_rows: int = BATCH_ROWS):
        get_format(fmt)
        if fmt not in _READERS:
            raise FormatError(f"{fmt} is not a records format; records go to {', '.join(_READERS)}")
        if fmt == "parquet" and not FORMATS["parquet"].available():
            raise FormatError(PARQUET_HINT)
        self.path = Path(path)
        self.fmt = fmt
        self.columns = list(columns) if columns is not None else None
        self.schema = schema
        self.batch_rows = batch_rows
        self.count = 0
        self._out = _AtomicOutput(self.path)
        self._file: Any = None
        self._csv: Any = None
        self._pq: Any = None
        self._batch: list[dict] = []
        self._colset: set[str] | None = None

    def __enter__(self) -> "RecordWriter":
        if self.fmt == "parquet":
            self._file = None  # ParquetWriter opens the temp path itself, on the first batch
        else:
            self._file = io.TextIOWrapper(self._out.create(), encoding="utf-8", newline="" if self.fmt == "csv" else "\n")
            if self.fmt == "csv":
                self._csv = _CsvRows(self._file)
                if self.columns:
                    self._csv.writerow(self.columns)
        return self

    def write(self, record: dict) -> None:
        """Append one record."""
        if not isinstance(record, dict):
            raise FormatError(f"{self.path.name} record {self.count + 1}: expected a dict, got {_kind(record)}")
        self.count += 1
        if self.fmt == "json":
            self._file.write(("[\n" if self.count == 1 else ",\n") + json_text(record))
        elif self.fmt == "ndjson":
            self._file.write(json_text(record) + "\n")
        elif self.fmt == "csv":
            self._write_csv(record)
        else:
            self._batch.append(record)
            if len(self._batch) >= self.batch_rows:
                self._flush_parquet()

    def write_many(self, records: Iterable[dict]) -> None:
        """Append every record of an iterable."""
        for r in records:
            self.write(r)

    def _write_csv(self, record: dict) -> None:
        if self.columns is None:
            self.columns = list(record)
            if self.columns:
                self._csv.writerow(self.columns)
        if self._colset is None:
            self._colset = set(self.columns)
        for k in record:
            if k not in self._colset:
                raise FormatError(
                    f"{self.path.name} record {self.count}: field `{k}` is not among the CSV columns"
                    f" ({', '.join(self.columns) or 'none'}); pass columns= with every field"
                )
        get = record.get
        self._csv.writerow([v if type(v) in _CSV_NATIVE else csv_cell(v) for v in map(get, self.columns)])

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows, self._batch = self._batch, []
        if self.schema is None:
            cols = self.columns if self.columns is not None else _union_keys(rows)
            types = {c: _writable(_infer_type([r.get(c) for r in rows])) for c in cols}
            # a column that is all null so far takes text, the most forgiving type for later batches
            self.schema = pa.schema([pa.field(c, pa.string() if pa.types.is_null(t) else t) for c, t in types.items()])
        names = set(self.schema.names)
        for r in rows:
            for k in r:
                if k not in names:
                    raise FormatError(
                        f"{self.path.name}: field `{k}` is not among the parquet columns"
                        f" ({', '.join(self.schema.names) or 'none'}); pass columns= or schema="
                    )
        first = self.count - len(rows) + 1
        arrays = []
        for field in self.schema:
            values = [r.get(field.name) for r in rows]
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                values = [v if v is None or isinstance(v, str) else json_text(v, compact=True) for v in values]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                raise FormatError(
                    f"{self.path.name} records {first}-{self.count}: field `{field.name}` does not fit"
                    f" the parquet column type {field.type} ({_first_line(exc)})"
                ) from exc
        if self._pq is None:
            self._pq = pq.ParquetWriter(str(self._out.tmp), self.schema)
        if rows or self.count == 0:
            self._pq.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def _finish(self) -> None:
        if self.fmt == "json":
            self._file.write("[]\n" if self.count == 0 else "\n]\n")
        elif self.fmt == "parquet":
            if self._batch or self._pq is None:
                self._flush_parquet()
            self._pq.close()
            self._pq = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._finish()
                self._out.commit()
                return
            except BaseException:
                self._abort()
                raise
        self._abort()

    def _abort(self) -> None:
        for closer in (self._pq, self._file):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    pass
        self._pq = self._file = None
        self._out.discard()


class _CsvRows:
    """csv.writer with LF line ends that also quotes a field holding a bare CR, which the csv
    module leaves bare unless CR is in its line terminator (readers would split the row there)."""

    def __init__(self, f):
        self._f = f
        self._lf = csv.writer(f, lineterminator="\n")
        self._buf = io.StringIO()
        self._crlf = csv.writer(self._buf, lineterminator="\r\n")

    def writerow(self, row: list) -> None:
        for c in row:
            if type(c) is str and "\r" in c:
                self._buf.seek(0)
                self._buf.truncate()
                self._crlf.writerow(row)
                self._f.write(self._buf.getvalue()[:-2] + "\n")
                return
        self._lf.writerow(row)


def _union_keys(records: Iterable[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k in r:
            if k not in seen:
                seen[k] = None
    return list(seen)


def _has_empty_struct(t) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_empty_struct(t.value_type)
    return False


def _infer_type(values: list):
    """The arrow type for a column's values; mixed or unrepresentable ones fall back to JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values).type
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.string()


def _writable(t):
    """Parquet cannot store a struct without fields; such columns are kept as JSON text."""
    import pyarrow as pa

    return pa.string() if _has_empty_struct(t) else t


def _unify(a, b):
    import pyarrow as pa

    if a is None or a == b:
        return b
    try:
        return pa.unify_schemas([pa.schema([pa.field("c", a)]), pa.schema([pa.field("c", b)])],
                                promote_options="permissive").field("c").type
    except (pa.ArrowException, TypeError, ValueError):
        return pa.string()


def _scan_columns(path: Path, fmt: str, with_types: bool):
    """First streaming pass: the union of field names in first-seen order and,
    for parquet output, one arrow type per field unified over every batch."""
    seen: dict[str, None] = {}
    types: dict[str, Any] = {}
    batch: list[dict] = []

    def absorb(rows: list[dict]) -> None:
        cols = _union_keys(rows)
        for c in cols:
            seen.setdefault(c, None)
            types[c] = _unify(types.get(c), _infer_type([r.get(c) for r in rows]))

    for rec in iter_records(path, fmt):
        if not with_types:
            for k in rec:
                if k not in seen:
                    seen[k] = None
            continue
        batch.append(rec)
        if len(batch) >= BATCH_ROWS:
            absorb(batch)
            batch = []
    if batch:
        absorb(batch)
    if not with_types:
        return list(seen), None
    import pyarrow as pa

    return list(seen), pa.schema([pa.field(c, _writable(types[c])) for c in seen])


def convert(src_path: str | os.PathLike, src_fmt: str, dst_path: str | os.PathLike, dst_fmt: str, *,
            exact: bool = False, workers: int = 1) -> int | None:
    """Stream `src_path` (in `src_fmt`) into `dst_path` (in `dst_fmt`), atomically.

    Returns the number of records written, or None for a raw byte copy. The
    columnar and compiled paths run first: parquet to text formats read by pyarrow
    and written by the compiled converter (arrowpipe.py; arrowio.py without it), and for a source of NATIVE_MIN_BYTES or more, the compiled converter
    between json, ndjson and csv (native.py), csv to parquet (columnar.py) and json or
    ndjson to parquet (arrowio.py); then the batch path (fast.py; parallel.py with
    `workers` > 1). All give what the record-by-record path gives; `exact` skips
    them, for comparing."""
    src, dst = Path(src_path), Path(dst_path)
    ok, reason = can_convert(src_fmt, dst_fmt)
    if not ok:
        raise ConversionError(f"{src.name} -> {dst.name}: {reason}")
    _existing(src)
    if src_fmt == dst_fmt or not (FORMATS[src_fmt].is_records and FORMATS[dst_fmt].is_records):
        _copy_raw(src, dst)
        return None
    if not exact:
        from . import arrowio, arrowpipe, columnar, fast, native, parallel

        big = src.stat().st_size >= NATIVE_MIN_BYTES
        try:
            if src_fmt == "parquet" and dst_fmt in ("json", "ndjson", "csv"):
                return arrowpipe.parquet_to_text(src, dst, dst_fmt)
            if big and native.usable(src_fmt, dst_fmt):
                return native.convert_native(src, src_fmt, dst, dst_fmt)
            if big and (src_fmt, dst_fmt) == ("csv", "parquet"):
                return columnar.csv_to_parquet(src, dst)
            if big and src_fmt in ("json", "ndjson") and dst_fmt == "parquet":
                return arrowio.json_to_parquet(src, src_fmt, dst)
        except (native.Fallback, columnar.Fallback):  # arrowio raises columnar's
            pass
        try:
            if workers > 1 and parallel.supports(src_fmt, dst_fmt):
                return parallel.convert_parallel(src, src_fmt, dst, dst_fmt, workers)
            return fast.convert_fast(src, src_fmt, dst, dst_fmt)
        except fast.Fallback:
            pass
    return _convert_exact(src, src_fmt, dst, dst_fmt)


def _convert_exact(src: Path, src_fmt: str, dst: Path, dst_fmt: str) -> int:
    """The record-by-record conversion: it defines the output and every error message."""
    columns = schema = None
    if dst_fmt == "csv":
        if src_fmt == "parquet":
            pf = open_parquet(src)
            columns = list(pf.schema_arrow.names)
            pf.close()
        else:
            columns, _ = _scan_columns(src, src_fmt, with_types=False)
    elif dst_fmt == "parquet":
        if src_fmt == "csv":
            import pyarrow as pa

            with open_csv(src) as f:
                header = CsvReader(f, src).columns
            schema = pa.schema([pa.field(c, pa.string()) for c in header])
        else:
            columns, schema = _scan_columns(src, src_fmt, with_types=True)
    with RecordWriter(dst, dst_fmt, columns, schema=schema) as writer:
        for rec in iter_records(src, src_fmt):
            writer.write(rec)
    return writer.count


def count_records(path: str | os.PathLike, fmt: str, max_bytes: int | None = None) -> int | None:
    """The number of records in a file, or None when it is not a records file,
    is larger than `max_bytes`, or is not well formed.

    json counts the items of a top-level array, ndjson its non-blank lines,
    csv its rows without the header, parquet reads its metadata."""
    return check_records(path, fmt, max_bytes)[0]


def check_records(path: str | os.PathLike, fmt: str, max_bytes: int | None = None) -> tuple[int | None, str | None]:
    """(count, problem): the count_records figure, and why the file could not be read when it is malformed
    (a message naming the file and the line or record; None when it reads, is too big or is not records)."""
    if fmt not in _READERS:
        return None, None
    p = Path(path)
    try:
        if fmt == "parquet":
            pf = open_parquet(p)
            try:
                return pf.metadata.num_rows, None
            finally:
                pf.close()
        if max_bytes is not None and p.stat().st_size > max_bytes:
            return None, None
        if fmt == "json":
            with open(p, "rb") as f:
                return sum(1 for _ in iter_json_values(f, p)), None
        if fmt == "ndjson":
            with open(p, "rb") as f:
                return sum(1 for _ in iter_ndjson_lines(f)), None
        with open_csv(p) as f:
            reader = CsvReader(f, p)
            n = 0
            while reader.next_raw() is not None:
                n += 1
            return n, None
    except MalformedDataError as exc:
        return None, str(exc)
    except (PipeloomError, OSError):
        return None, None
    except MemoryError:
        return None, f"{p.name}: too large to read in the memory available"
