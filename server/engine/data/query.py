"""Sorted, filtered and searched pages of a records file, in bounded memory, whatever its size.

A query is `sort` (one column, `asc` or `desc`), any number of filters
`COLUMN:OP:VALUE` (all must hold) and a search text `q` (found, ignoring case,
in any value of the record). Its answer is a page (offset, limit) of the
matching records in the asked order, each with its record number in the file.

How it stays small: the file is streamed once into a SQLite file under
`.pipeloom/query/<sha256>.<format>.sqlite` (one row per record: its number,
its JSON text and its values as lower-case text for the search), built under a
temporary name and renamed when complete. Each query then runs as SQL over it,
sorting on disk (SQLite's external sort, a 16 MB page cache), and its answer
(the record numbers in order) is kept as a table of that file, so the next
page of the same query, or the same query from another tab, is a lookup. At
most MAX_QUERIES answers are kept per file; the oldest go first. The folder is
kept under PIPELOOM_QUERY_CACHE_MB (8 GB by default) by removing the least
recently used files.

Work on a large file happens in a background thread: `Queries.page()` waits
a little, then answers `{"working": true, ...}` with how far it got; asking
again later gives the page. Bad queries raise QueryError (400 on the web),
naming the parameter.

Order: values of the column in ascending order, numbers (and text that reads
as a number, as csv gives) before text, text before true/false, those before
nested values; text compares ignoring the case of A-Z. A record without the
column, or with null or "" there, comes last in both directions. Equal values keep
the file's order.

Operators: eq, ne, lt, le, gt, ge (numbers compare as numbers when both the
value and the cell read as numbers, else as text ignoring case, except eq and
ne, which compare text exactly), contains (text, ignoring case), empty (no
value, null or "") and notempty. Every operator but empty and notempty needs a
value, and matches only records that have one in that column.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import UsageError
from .cachedir import cap_bytes, touch, trim
from .formats import iter_records

log = logging.getLogger("pipeloom")

QUERY_VERSION = 1
RECORDS_FORMATS = ("json", "ndjson", "csv", "parquet")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "empty", "notempty")
NO_VALUE_OPS = ("empty", "notempty")
MAX_FILTERS = 8
MAX_COLUMNS = 2000  # columns remembered per file (first seen first); records may hold more
MAX_QUERIES = 16  # answers kept per file
MAX_LIMIT = 1000
CACHE_BYTES = cap_bytes("PIPELOOM_QUERY_CACHE_MB")  # the query folder's size, at most
_BATCH = 5000


class QueryError(UsageError):
    """A query that cannot be answered as asked; `field` names the parameter at fault (sort, order, filter, q)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class Stopped(Exception):
    """The query service is closing."""


@dataclass(frozen=True)
class Query:
    """What to sort by, which records to keep and what to search for."""

    sort: str | None = None
    order: str = "asc"
    filters: tuple[tuple[str, str, str], ...] = ()
    q: str = ""

    @property
    def key(self) -> str:
        spec = json.dumps([QUERY_VERSION, self.sort, self.order, list(map(list, self.filters)), self.q.lower()])
        return hashlib.sha256(spec.encode()).hexdigest()[:24]

    def columns(self) -> list[tuple[str, str]]:
        """(parameter, column) of every column the query names."""
        out = [("sort", self.sort)] if self.sort else []
        return out + [("filter", col) for col, _, _ in self.filters]

    def to_dict(self) -> dict:
        return {"sort": self.sort, "order": self.order,
                "filters": [{"column": c, "op": o, "value": v} for c, o, v in self.filters], "q": self.q}


def parse_query(args: Mapping[str, Any]) -> Query | None:
    """The query in request parameters (`sort`, `order`, `filter` (repeatable), `q`), or None when there is none.

    `args` maps a name to a string, or (a werkzeug MultiDict) offers getlist()."""
    def all_of(name: str) -> list[str]:
        if hasattr(args, "getlist"):
            return [v for v in args.getlist(name)]
        v = args.get(name)
        return [] if v is None else list(v) if isinstance(v, (list, tuple)) else [v]

    sort = (args.get("sort") or "").strip() or None
    order = (args.get("order") or "").strip().lower()
    raw_filters = [f for f in all_of("filter") if f != ""]
    q = args.get("q") or ""
    if order and order not in ("asc", "desc"):
        raise QueryError(f"`order` must be asc or desc, got {order!r}", "order")
    if order and not sort:
        raise QueryError("`order` needs `sort`: the column to sort by, as in ?sort=value&order=desc", "order")
    if not sort and not raw_filters and not q.strip():
        return None
    if len(raw_filters) > MAX_FILTERS:
        raise QueryError(f"`filter`: at most {MAX_FILTERS} filters, got {len(raw_filters)}", "filter")
    filters = []
    for text in raw_filters:
        parts = text.split(":", 2)
        if len(parts) < 2 or not parts[0]:
            raise QueryError(f"`filter` must be COLUMN:OP:VALUE (like value:gt:20 or label:eq:warning), got {text!r}",
                             "filter")
        col, op = parts[0], parts[1].strip().lower()
        value = parts[2] if len(parts) == 3 else ""
        if op not in OPS:
            raise QueryError(f"`filter` {text!r}: unknown operator `{op}` (operators: {', '.join(OPS)})", "filter")
        if op not in NO_VALUE_OPS and len(parts) < 3:
            raise QueryError(f"`filter` {text!r}: `{op}` needs a value, as in {col}:{op}:VALUE", "filter")
        filters.append((col, op, value if op not in NO_VALUE_OPS else ""))
    if len(q) > 1000:
        raise QueryError("`q` is at most 1,000 characters", "q")
    return Query(sort, order or "asc", tuple(filters), q.strip())


# ------------------------------------------------------------ values as the query sees them


def _num(text: Any) -> float | None:
    """A text cell as a number, when it reads as one (csv values are text), else None."""
    if not isinstance(text, str) or not text or len(text) > 64:
        return None
    try:
        n = float(text)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def _text(t: str | None, v: Any) -> str:
    """A cell (json_type t, json_extract v) as text: strings as they are, others as JSON."""
    if t == "true" or t == "false":
        return t
    if t == "integer":
        return str(v)
    if t == "real":
        return json.dumps(v)
    return "" if v is None else str(v)


def _match(op: str, arg: str, t: str | None, v: Any) -> int:
    empty = t is None or t == "null" or (t == "text" and v == "")
    if op == "empty":
        return int(empty)
    if op == "notempty":
        return int(not empty)
    if t is None or t == "null":
        return 0
    text = _text(t, v)
    if op == "contains":
        return int(arg.lower() in text.lower())
    cell = v if t in ("integer", "real") else _num(v) if t == "text" else None
    want = _num(arg.strip())
    if cell is not None and want is not None:
        a, b = float(cell), want
    elif op in ("eq", "ne"):
        a, b = text, arg
    else:
        a, b = text.lower(), arg.lower()
    if op == "eq":
        return int(a == b)
    if op == "ne":
        return int(a != b)
    if op == "lt":
        return int(a < b)
    if op == "le":
        return int(a <= b)
    if op == "gt":
        return int(a > b)
    return int(a >= b)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode  # one encoder, reused


def _search_text(rec: dict) -> str:
    parts = []
    for value in rec.values():
        if isinstance(value, str):
            parts.append(value)
        elif value is None:
            continue
        elif value is True or value is False:
            parts.append("true" if value else "false")
        elif isinstance(value, int):
            parts.append(str(value))
        else:
            parts.append(_encode(value))
    return "\x1f".join(parts).lower()


def _path(column: str) -> str:
    return '$."' + column.replace('"', '\\"') + '"'


# ------------------------------------------------------------ one file's query database


def _row(value: Any) -> dict:
    return value if isinstance(value, dict) else {"value": value}


def _records(path: Path, fmt: str) -> Iterator[dict]:
    """The records as the previews show them: an array item or ndjson line that is not an object is {"value": it}."""
    from .. import jsonread

    if fmt not in RECORDS_FORMATS:
        raise QueryError(f"a {fmt} file has no records to sort or filter; sorting and filtering apply to "
                         f"{', '.join(RECORDS_FORMATS)}", "sort")
    if fmt == "json":
        with open(path, "rb") as f:
            if jsonread.peek_json(f, path) != "array":
                raise QueryError(f"{path.name} is a JSON document, not an array of records: there is nothing to "
                                 "sort, filter or search", "sort")
            yield from (_row(v) for v in jsonread.iter_json_values(f, path))
        return
    if fmt == "ndjson":
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield _row(jsonread.parse_ndjson_line(path, lineno, line))
        return
    for rec in iter_records(path, fmt):
        yield _row(rec)


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30, check_same_thread=False)
    con.execute("PRAGMA cache_size=-16000")  # 16 MB, whatever the file's size
    con.execute("PRAGMA temp_store=FILE")
    return con


class _NotPlain(Exception):
    """An ndjson file the fast path does not take (a line SQLite's JSON rejects): read it the careful way."""


def load_base(target: Path, path: Path, fmt: str, progress=None, stop: threading.Event | None = None) -> dict:
    """Stream `path` into a new query database at `target` (via a temporary file); returns its meta.

    ndjson lines go in as they are and SQLite's JSON functions (in C) validate them and make the search text;
    any line they reject sends the file through Pipeloom's own readers, which say what is wrong and where."""
    if fmt == "ndjson":
        try:
            return _load(target, path, fmt, _fill_ndjson, progress, stop)
        except _NotPlain:
            pass
    if fmt == "csv":
        return _load(target, path, fmt, _fill_csv, progress, stop)
    return _load(target, path, fmt, _fill_records, progress, stop)


def _load(target: Path, path: Path, fmt: str, fill, progress, stop) -> dict:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        con = _connect(Path(tmp))
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("CREATE TABLE rows (pos INTEGER PRIMARY KEY, rec TEXT NOT NULL, txt TEXT)")
            con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute("CREATE TABLE answers (qkey TEXT PRIMARY KEY, tbl TEXT NOT NULL, total INTEGER NOT NULL, "
                        "used REAL NOT NULL)")
            n, columns = fill(con, path, fmt, progress or (lambda n: None), stop or threading.Event())
            meta = {"version": QUERY_VERSION, "format": fmt, "size": path.stat().st_size, "records": n,
                    "columns": columns}
            con.execute("INSERT INTO meta VALUES ('base', ?)", (json.dumps(meta),))
            con.commit()
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return meta


def _fill_records(con: sqlite3.Connection, path: Path, fmt: str, progress, stop) -> tuple[int, list[str]]:
    """Every record through the format's own reader: parsed, then stored as JSON with its search text."""
    columns: dict[str, None] = {}
    batch: list[tuple[int, str, str]] = []
    n = 0
    for n, rec in enumerate(_records(path, fmt), 1):
        if len(columns) < MAX_COLUMNS:
            for k in rec:
                if k not in columns and len(columns) < MAX_COLUMNS:
                    columns[k] = None
        batch.append((n - 1, _encode(rec), _search_text(rec)))
        if len(batch) >= _BATCH:
            con.executemany("INSERT INTO rows VALUES (?, ?, ?)", batch)
            batch.clear()
            if stop.is_set():
                raise Stopped()
            progress(n)
    if batch:
        con.executemany("INSERT INTO rows VALUES (?, ?, ?)", batch)
    return n, list(columns)


_MAX_SQL_ARGS = 126  # SQLite's default limit on a function's arguments is 127


def _fill_csv(con: sqlite3.Connection, path: Path, fmt: str, progress, stop) -> tuple[int, list[str]]:
    """csv rows through Pipeloom's strict reader (so errors name their line), made into JSON by SQLite."""
    from ..csvread import CsvReader
    from .formats import open_csv

    with open_csv(path) as f:
        reader = CsvReader(f, path)
        columns = list(reader.columns)
        if not columns or 2 * len(columns) > _MAX_SQL_ARGS:
            return _fill_records(con, path, fmt, progress, stop)
        pairs = ", ".join("'" + c.replace("'", "''") + "', ?" for c in columns)
        sql = f"INSERT INTO rows (pos, rec, txt) VALUES (?, json_object({pairs}), ?)"
        width = len(columns)
        count = 0

        def rows():
            nonlocal count
            while (row := reader.next_raw()) is not None:
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                yield (count, *row, "\x1f".join(row).lower())
                count += 1
                if count % 50_000 == 0:
                    if stop.is_set():
                        raise Stopped()
                    progress(count)

        con.executemany(sql, rows())
    progress(count)
    return count, columns[:MAX_COLUMNS]


_NDJSON_INSERT = (
    "INSERT INTO rows (pos, rec, txt, ks) SELECT i, "
    # a line that is not an object becomes {"value": ...}, as the previews show it
    "CASE WHEN json_type(r) = 'object' THEN r ELSE json_object('value', json(r)) END, "
    "(SELECT coalesce(pl_lower(group_concat(CASE WHEN j.type IN ('true', 'false') THEN j.type ELSE j.value END, "
    "char(31))), '') FROM json_each(r) j WHERE j.type != 'null'), "
    "CASE WHEN json_type(r) = 'object' THEN (SELECT group_concat(j.key, char(31)) FROM json_each(r) j) "
    "ELSE 'value' END "
    "FROM (SELECT ?1 AS i, json(?2) AS r)")


def _fill_ndjson(con: sqlite3.Connection, path: Path, fmt: str, progress, stop) -> tuple[int, list[str]]:
    """ndjson lines checked, wrapped and indexed for search by SQLite's JSON functions as they go in."""
    count = 0

    def lines():
        nonlocal count
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    raise _NotPlain() from None
                yield count, text
                count += 1
                if count % 50_000 == 0:
                    if stop.is_set():
                        raise Stopped()
                    progress(count)

    con.execute("ALTER TABLE rows ADD COLUMN ks TEXT")  # each record's keys, in order: the columns come from these
    con.create_function("pl_lower", 1, lambda t: t.lower() if t else t, deterministic=True)
    try:
        con.executemany(_NDJSON_INSERT, lines())
    except sqlite3.OperationalError as exc:
        if "JSON" not in str(exc):
            raise
        raise _NotPlain() from None
    progress(count)
    columns: dict[str, None] = {}
    for (keys,) in con.execute("SELECT ks FROM rows GROUP BY ks ORDER BY min(pos)"):
        for key in (keys or "").split("\x1f") if keys else []:
            if len(columns) >= MAX_COLUMNS:
                break
            columns.setdefault(key, None)
    return count, list(columns)


def read_meta(target: Path) -> dict | None:
    """The meta of a finished query database, or None when it is missing, damaged or of another version."""
    if not target.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT value FROM meta WHERE name = 'base'").fetchone()
        finally:
            con.close()
        meta = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        return None
    if not meta or meta.get("version") != QUERY_VERSION:
        return None
    return meta


def check_columns(query: Query, columns: list[str]) -> None:
    """QueryError naming the parameter when the query names a column the file does not have."""
    known = set(columns)
    for param, col in query.columns():
        if col not in known:
            shown = ", ".join(columns[:30]) + (" …" if len(columns) > 30 else "")
            raise QueryError(f"`{param}`: no column `{col}` in this output (columns: {shown or 'none'})", param)


def build_answer(target: Path, query: Query, columns: list[str]) -> tuple[str, int]:
    """Run `query` over the query database, keep its answer as a table, and return (table, total)."""
    check_columns(query, columns)
    con = _connect(target)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.create_function("pl_num", 1, _num, deterministic=True)
        con.create_function("pl_match", 4, _match, deterministic=True)
        row = con.execute("SELECT tbl, total FROM answers WHERE qkey = ?", (query.key,)).fetchone()
        if row:
            return row[0], row[1]
        where, params = [], []
        for col, op, value in query.filters:
            where.append("pl_match(?, ?, json_type(rec, ?), json_extract(rec, ?))")
            params += [op, value, _path(col), _path(col)]
        if query.q:
            where.append("instr(txt, ?) > 0")
            params.append(query.q.lower())
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        tbl = f"a_{query.key}"
        con.execute(f"DROP TABLE IF EXISTS {tbl}")
        con.execute(f"CREATE TABLE {tbl} (n INTEGER PRIMARY KEY, pos INTEGER NOT NULL)")
        if query.sort:
            d = " DESC" if query.order == "desc" else ""
            inner = (f"SELECT pos, json_type(rec, ?) AS t, json_extract(rec, ?) AS v FROM rows{cond}")
            sql = (f"INSERT INTO {tbl} (pos) SELECT pos FROM ({inner}) ORDER BY "
                   "(t IS NULL OR t = 'null' OR (t = 'text' AND v = '')), "
                   "(CASE WHEN t IN ('integer', 'real') OR (t = 'text' AND pl_num(v) IS NOT NULL) THEN 0 "
                   f"WHEN t = 'text' THEN 1 WHEN t IN ('true', 'false') THEN 2 ELSE 3 END){d}, "
                   f"(CASE WHEN t IN ('integer', 'real') THEN v WHEN t = 'text' THEN pl_num(v) END){d}, "
                   f"(CASE WHEN t = 'text' THEN v WHEN t IN ('true', 'false', 'array', 'object') THEN v END) "
                   f"COLLATE NOCASE{d}, pos")
            con.execute(sql, [_path(query.sort), _path(query.sort), *params])
        else:
            con.execute(f"INSERT INTO {tbl} (pos) SELECT pos FROM rows{cond} ORDER BY pos", params)
        total = con.execute(f"SELECT count(*) FROM {tbl}").fetchone()[0]
        con.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (query.key, tbl, total, time.time()))
        old = con.execute("SELECT qkey, tbl FROM answers ORDER BY used DESC LIMIT -1 OFFSET ?",
                          (MAX_QUERIES,)).fetchall()
        for qkey, name in old:
            con.execute(f"DROP TABLE IF EXISTS {name}")
            con.execute("DELETE FROM answers WHERE qkey = ?", (qkey,))
        con.commit()
        return tbl, total
    finally:
        con.close()


def read_answer(target: Path, query: Query, offset: int, limit: int) -> tuple[list[tuple[int, dict]], int] | None:
    """(records with their numbers, total) of one page of a kept answer, or None when it is not kept."""
    try:
        con = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT tbl, total FROM answers WHERE qkey = ?", (query.key,)).fetchone()
        if not row:
            return None
        tbl, total = row
        rows = con.execute(f"SELECT q.pos, r.rec FROM {tbl} q JOIN rows r ON r.pos = q.pos "
                           "WHERE q.n > ? AND q.n <= ? ORDER BY q.n", (offset, offset + limit)).fetchall()
    except sqlite3.Error:
        return None  # dropped meanwhile (evicted): built again
    finally:
        con.close()
    return [(pos, json.loads(rec)) for pos, rec in rows], total


# ------------------------------------------------------------ the service


@dataclass
class Job:
    """One query being answered in the background."""

    stage: str = "reading"  # reading the file, then sorting (or filtering), then done
    read: int = 0
    started: float = field(default_factory=time.monotonic)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Queries:
    """The query databases of one workspace, under `root`, with their answers built in background threads."""

    def __init__(self, root: str | os.PathLike, cache_bytes: int | None = None):
        self.root = Path(root)
        self.cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
        self._lock = threading.Lock()
        self._file_locks: dict[str, threading.Lock] = {}
        self._jobs: dict[tuple[str, str], Job] = {}
        self._stop = threading.Event()

    def target(self, key: str, fmt: str) -> Path:
        return self.root / f"{key}.{fmt}.sqlite"

    def page(self, path: str | os.PathLike, fmt: str, key: str, query: Query, offset: int = 0, limit: int = 50,
             *, wait: float = 2.0, expected: int | None = None) -> dict:
        """One page of `query` over the file (key: its content hash), or `{"working": true, ...}` while it is
        being worked out; see the module docstring."""
        if fmt not in RECORDS_FORMATS:
            raise QueryError(f"a {fmt} output has no records to sort, filter or search; these apply to "
                             f"{', '.join(RECORDS_FORMATS)}", "sort" if query.sort else "filter" if query.filters else "q")
        path = Path(path)
        target = self.target(key, fmt)
        meta = read_meta(target)
        if meta is not None:
            touch(target)  # recently used: the last to go when the folder is trimmed
            check_columns(query, meta["columns"])
            got = read_answer(target, query, offset, limit)
            if got is not None:
                return self._answer(path, fmt, meta, query, offset, limit, *got)
        job = self._job(path, fmt, key, query, expected)
        job.done.wait(wait)
        if job.done.is_set():
            with self._lock:
                if self._jobs.get((key, query.key)) is job:
                    del self._jobs[(key, query.key)]
            if job.error is not None:
                raise job.error
            meta = read_meta(target)
            got = read_answer(target, query, offset, limit) if meta is not None else None
            if got is not None:
                return self._answer(path, fmt, meta, query, offset, limit, *got)
            raise QueryError("the answer was dropped before it could be read; ask again", "q")
        return {"format": fmt, "kind": "table", "offset": offset, "limit": limit, "items": [], "positions": [],
                "total": None, "truncated": False, "size": path.stat().st_size, "bytes_read": None,
                "columns": meta["columns"] if meta else None, "query": query.to_dict(), "working": True,
                "stage": job.stage, "read": job.read, "records": meta["records"] if meta else expected,
                "seconds": round(time.monotonic() - job.started, 1), "total_known": False, "counting": False}

    def _job(self, path: Path, fmt: str, key: str, query: Query, expected: int | None) -> Job:
        with self._lock:
            job = self._jobs.get((key, query.key))
            if job is not None and not (job.done.is_set() and job.error is None):
                return job  # at work, or failed (the next ask hears why); a finished one's answer may be gone since
            if self._stop.is_set():
                raise QueryError("the server is closing", "q")
            job = self._jobs[(key, query.key)] = Job()
            lock = self._file_locks.setdefault(key, threading.Lock())
        threading.Thread(target=self._run, args=(job, lock, path, fmt, key, query), daemon=True,
                         name=f"pipeloom-query-{key[:10]}").start()
        return job

    def _run(self, job: Job, lock: threading.Lock, path: Path, fmt: str, key: str, query: Query) -> None:
        target = self.target(key, fmt)
        try:
            with lock:  # one writer per file: its base first, then one answer at a time
                meta = read_meta(target)
                if meta is None:
                    target.unlink(missing_ok=True)

                    def progress(n: int) -> None:
                        job.read = n

                    meta = load_base(target, path, fmt, progress, self._stop)
                    trim(self.root, self.cache_bytes, keep=target, what="query database")
                job.read = meta["records"]
                job.stage = "sorting" if query.sort else "filtering"
                build_answer(target, query, meta["columns"])
        except BaseException as exc:  # handed to whoever asks next
            if not isinstance(exc, (UsageError, Stopped)):
                log.info("query over %s failed: %s", path, exc)
            job.error = exc if isinstance(exc, Exception) else QueryError(str(exc), "q")
        finally:
            job.stage = "done"
            job.done.set()

    @staticmethod
    def _answer(path: Path, fmt: str, meta: dict, query: Query, offset: int, limit: int,
                rows: list[tuple[int, dict]], total: int) -> dict:
        from .preview import cap_cells, safe_value

        result = {"format": fmt, "kind": "table", "offset": offset, "limit": limit,
                  "items": safe_value([rec for _, rec in rows]), "positions": [pos for pos, _ in rows],
                  "total": total, "truncated": offset + len(rows) < total, "size": path.stat().st_size,
                  "bytes_read": None, "columns": meta["columns"], "records": meta["records"],
                  "query": query.to_dict(), "working": False, "total_known": True, "counting": False}
        cap_cells(result, result["positions"])
        return result

    def close(self) -> None:
        self._stop.set()
