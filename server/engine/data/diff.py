"""What a step did to its records: dropped, added, changed and unchanged, between two records files.

Both sides are streamed into a small SQLite file (never held in memory), one
row per record: its position, its match key, a hash of its content and its
JSON text. Counts and pages are then SQL over that file. The file is built
under a temporary name and renamed when complete, keyed by both files'
content hashes and the key, so a diff is computed once per pair of outputs and
a half-built one never looks finished.

Records are matched by a key:
- a declared key (a port's `key: [field, ...]`), which must be present and
  unique on both sides, else a DiffError names the side, the field and the record;
- else an inferred one: a field present in every record of both sides, with
  text or whole-number values, unique on each side (an id-like name first);
- else by content: two records match when they are equal, counted as a
  multiset, so nothing can be "changed", only dropped or added.

A matched record counts as changed when a field it came in with changed or
went, or when it gained a field that not every record gained. Fields that
every matched record gained (classify's `label`, `score`, `reason`) are
annotations: said once ("added the fields label, score and reason to every
record"), and they make a record changed only when the output's `normal:`
names one and the record's value is not the normal one (a `label` other than
`normal`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import UsageError
from .formats import iter_records
from .cachedir import cap_bytes, touch, trim

DIFF_VERSION = 2
KINDS = ("dropped", "added", "changed", "unchanged")
RECORDS_FORMATS = ("json", "ndjson", "csv", "parquet")
SAMPLE = 2000  # records per side looked at to pick a key candidate
_INSERT_BATCH = 5000
_ID_NAMES = ("id", "key", "uuid", "line", "seq", "index", "offset")


class DiffError(UsageError):
    """A diff that cannot be computed as asked (a declared key that is missing or repeated, a non-records side)."""


@dataclass
class Side:
    """One side of a diff: a records file, its format, and a name for messages ("input `events`")."""

    path: Path
    fmt: str
    name: str
    sha256: str | None = None


@dataclass
class Diff:
    """A computed diff: its key, how it was chosen, the four counts, and pages of items from its file."""

    db_path: Path
    key: list[str] | None
    key_inferred: bool
    method: str  # "key" or "content"
    counts: dict[str, int]
    note: str
    reasons: dict[str, str] = field(default_factory=dict)  # dropped record's key text -> why the step dropped it
    annotations: list[str] = field(default_factory=list)  # fields every matched record gained, in output order
    normal: dict[str, list] = field(default_factory=dict)  # annotation -> its normal values (the output's `normal:`)
    marked: int = 0  # changed records whose only change is an annotation with a value that is not normal

    def items(self, kind: str, offset: int = 0, limit: int = 50) -> list[dict]:
        """One page of the records of `kind`, in the order they appear (the input's order; the output's for added)."""
        if kind not in KINDS:
            raise DiffError(f"unknown kind `{kind}`: use one of {', '.join(KINDS)}")
        offset, limit = max(0, int(offset)), max(0, min(int(limit), 1000))
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            rows = con.execute(_PAGE_SQL[kind], (limit, offset)).fetchall()
        finally:
            con.close()
        out = []
        for first, second in rows:
            rec = json.loads(first)
            key = self.key_of(rec)
            if kind == "changed":
                after = json.loads(second)
                out.append({"key": key, "before": rec, "after": after, "fields": changed_fields(rec, after)})
            else:
                item = {"key": key, "record": rec}
                if kind == "dropped" and key is not None:
                    reason = self.reasons.get(_key_text(key))
                    if reason:
                        item["reason"] = reason
                out.append(item)
        return out

    def key_of(self, rec: dict) -> Any:
        """A record's key value (a list for a key of several fields), or None when matched by content."""
        if self.method != "key" or not self.key:
            return None
        return rec.get(self.key[0]) if len(self.key) == 1 else [rec.get(f) for f in self.key]

    @property
    def said(self) -> str:
        """What the step did, as a sentence without its subject (see `what_it_did`)."""
        return what_it_did(self.counts, self.annotations, self.normal, self.marked)

    def to_dict(self) -> dict:
        return {"key": self.key, "key_inferred": self.key_inferred, "method": self.method,
                "counts": dict(self.counts), "note": self.note, "annotations": list(self.annotations),
                "normal": dict(self.normal), "marked": self.marked, "said": self.said}


_PAGE_SQL = {
    "dropped": "SELECT a.rec, NULL FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k) "
               "ORDER BY a.pos LIMIT ? OFFSET ?",
    "added": "SELECT b.rec, NULL FROM b WHERE NOT EXISTS (SELECT 1 FROM a WHERE a.k = b.k) "
             "ORDER BY b.pos LIMIT ? OFFSET ?",
    "changed": "SELECT a.rec, b.rec FROM a JOIN b ON a.k = b.k WHERE b.c > 0 ORDER BY a.pos LIMIT ? OFFSET ?",
    "unchanged": "SELECT a.rec, NULL FROM a JOIN b ON a.k = b.k WHERE b.c = 0 ORDER BY a.pos LIMIT ? OFFSET ?",
}

_COUNT_SQL = {
    "dropped": "SELECT count(*) FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
    "added": "SELECT count(*) FROM b WHERE NOT EXISTS (SELECT 1 FROM a WHERE a.k = b.k)",
    "changed": "SELECT count(*) FROM a JOIN b ON a.k = b.k WHERE b.c > 0",
    "unchanged": "SELECT count(*) FROM a JOIN b ON a.k = b.k WHERE b.c = 0",
}


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def _not_normal(normal: dict[str, list]) -> str:
    """"label is not normal", "label is not normal or ok", for the fields of `normal`."""
    def values(vs: list) -> str:
        return " or ".join(v if isinstance(v, str) else json.dumps(v) for v in vs)
    return " or ".join(f"{f} is not {values(vs)}" for f, vs in normal.items())


def what_it_did(counts: dict, annotations: Iterable[str] = (), normal: dict | None = None, marked: int = 0) -> str:
    """A step's four counts as people say them: "dropped 9 of 1,000 records and changed 991"; fields every record
    gained are said once ("added the fields label, score and reason to every record"), and the records changed
    only by a value that is not normal say which ("changed 35 of 991 records (those whose label is not normal)")."""
    annotations = list(annotations)
    total = counts["dropped"] + counts["changed"] + counts["unchanged"]
    records = f"{total:,} record" + ("" if total == 1 else "s")
    parts = []
    if counts["dropped"]:
        parts.append(f"dropped {counts['dropped']:,} of {records}")
    if counts["changed"]:
        part = f"changed {counts['changed']:,}" + ("" if parts else f" of {records}")
        flagged = {f: v for f, v in (normal or {}).items() if f in annotations}
        if marked and flagged:
            why = _not_normal(flagged)
            part += f" (those whose {why})" if marked == counts["changed"] else f" ({marked:,} of them because {why})"
        parts.append(part)
    if counts["added"]:
        parts.append(f"added {counts['added']:,}")
    if annotations:
        fields = f"the field {annotations[0]}" if len(annotations) == 1 else f"the fields {_and(annotations)}"
        parts.append(f"added {fields} to every record")
    if not parts:
        return f"passed all {records} through unchanged"
    return _and(parts)


def changed_fields(before: dict, after: dict) -> list[dict]:
    """The top-level fields that differ, in the order they appear: [{field, before, after}] ("absent" when missing)."""
    names = list(before) + [k for k in after if k not in before]
    out = []
    for name in names:
        b, a = before.get(name, _ABSENT), after.get(name, _ABSENT)
        if _canon(b) != _canon(a):
            out.append({"field": name, "before": None if b is _ABSENT else b, "after": None if a is _ABSENT else a,
                        "was": "absent" if b is _ABSENT else "present", "now": "absent" if a is _ABSENT else "present"})
    return out


_ABSENT = object()


def _canon(value: Any) -> str:
    if value is _ABSENT:
        return "\x00absent"
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _key_text(value: Any) -> str:
    """A key as text, the same for 17 and "17" (a csv side carries text)."""
    if isinstance(value, list):
        return json.dumps([_key_text(v) for v in value], ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------ choosing a key


def _scalar_key(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value != ""


def _candidates(a_sample: list[dict], b_sample: list[dict]) -> list[str]:
    """Fields that could be a key, best first: present with a text or whole-number value in every sampled
    record of both sides, and unique within each side's sample."""
    if not a_sample or not b_sample:
        return []
    order = list(a_sample[0])
    ok = []
    for name in order:
        good = True
        for sample in (a_sample, b_sample):
            seen = set()
            for rec in sample:
                v = rec.get(name)
                t = _key_text(v)
                if not _scalar_key(v) or t in seen:
                    good = False
                    break
                seen.add(t)
            if not good:
                break
        if good:
            ok.append(name)

    def rank(name: str) -> tuple:
        low = name.lower()
        idlike = 0 if low == "id" else 1 if low.endswith("id") or low in _ID_NAMES else 2
        whole = 0 if isinstance(a_sample[0].get(name), int) else 1
        return (idlike, whole, order.index(name))

    return sorted(ok, key=rank)


# ------------------------------------------------------------ building


def _records(side: Side) -> Iterator[dict]:
    if side.fmt not in RECORDS_FORMATS:
        raise DiffError(f"{side.name} is {side.fmt}, not records ({', '.join(RECORDS_FORMATS)}): "
                        f"there is nothing to match record by record")
    return iter_records(side.path, side.fmt)


def _load(con: sqlite3.Connection, table: str, records: Iterable[dict]) -> None:
    batch = []
    for pos, rec in enumerate(records):
        text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), default=str)
        h = hashlib.blake2b(_canon(rec).encode(), digest_size=16).hexdigest()
        batch.append((pos, h, text, _FIELD_SEP.join(rec) if isinstance(rec, dict) else ""))
        if len(batch) >= _INSERT_BATCH:
            con.executemany(f"INSERT INTO {table} (pos, h, rec, f) VALUES (?, ?, ?, ?)", batch)
            batch.clear()
    if batch:
        con.executemany(f"INSERT INTO {table} (pos, h, rec, f) VALUES (?, ?, ?, ?)", batch)


_FIELD_SEP = "\x1f"


def _annotations(con: sqlite3.Connection) -> list[str]:
    """The fields that every matched record gained (absent on its input side, present on its output side), in the
    output's order; none when nothing matched. Grouped by each side's field names, so this reads a few rows."""
    matched = 0
    gained: dict[str, int] = {}
    order: list[str] = []
    for af, bf, n in con.execute("SELECT a.f, b.f, count(*) FROM a JOIN b ON a.k = b.k GROUP BY a.f, b.f"):
        matched += n
        before = set(af.split(_FIELD_SEP)) if af else set()
        for name in (bf.split(_FIELD_SEP) if bf else []):
            if name not in before:
                gained[name] = gained.get(name, 0) + n
                if name not in order:
                    order.append(name)
    return [name for name in order if matched and gained[name] == matched]


def _mark_changed(con: sqlite3.Connection, annotations: list[str], normal: dict[str, list]) -> None:
    """b.c for every matched output record: 0 unchanged, 1 changed, 2 changed only by an annotation that is not
    normal. Without annotations a record is changed exactly when its content is not the same. With them, the
    output record without its annotations is compared with the input record: as text first (in SQLite, the usual
    case of a step that keeps the field order), else by content hash in Python (fields in another order)."""
    if not annotations:
        con.execute("UPDATE b SET c = (a.h != b.h) FROM a WHERE a.k = b.k")
        return
    skip = set(annotations)

    def same_core(b_text: str, a_hash: str) -> int:
        after = json.loads(b_text)
        core = _canon({k: v for k, v in after.items() if k not in skip})
        return int(hashlib.blake2b(core.encode(), digest_size=16).hexdigest() == a_hash)

    con.create_function("same_core", 2, same_core, deterministic=True)
    paths = [_json_path(f) for f in annotations]
    is_normal, normal_args = _normal_sql({f: vs for f, vs in normal.items() if f in skip})
    con.execute(f"UPDATE b SET c = CASE WHEN a.h = b.h THEN 0 "
                f"WHEN json_remove(b.rec, {', '.join('?' for _ in paths)}) = a.rec OR same_core(b.rec, a.h) "
                f"THEN (CASE WHEN {is_normal} THEN 0 ELSE 2 END) ELSE 1 END FROM a WHERE a.k = b.k",
                [*paths, *normal_args])


def _json_path(name: str) -> str:
    return f'$."{name}"'


def _normal_sql(normal: dict[str, list]) -> tuple[str, list]:
    """A SQL condition on b.rec: every field of `normal` holds one of its normal values (a JSON string, number,
    true, false or null, told apart by json_type)."""
    if not normal:
        return "1", []
    fields, args = [], []
    for name, values in normal.items():
        ors = []
        for v in values:
            p = _json_path(name)
            if v is None or isinstance(v, bool):
                ors.append("json_type(b.rec, ?) = ?")
                args += [p, "null" if v is None else "true" if v else "false"]
            elif isinstance(v, (int, float)):
                ors.append("(json_type(b.rec, ?) IN ('integer', 'real') AND json_extract(b.rec, ?) = ?)")
                args += [p, p, v]
            else:
                ors.append("(json_type(b.rec, ?) = 'text' AND json_extract(b.rec, ?) = ?)")
                args += [p, p, str(v)]
        fields.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(fields), args


def _sample(side: Side) -> list[dict]:
    out = []
    for rec in _records(side):
        out.append(rec)
        if len(out) >= SAMPLE:
            break
    return out


def _set_key(con: sqlite3.Connection, fields: list[str]) -> None:
    """Fill k with the key's text on both sides (integers and numeric text alike, so csv meets json)."""
    paths = [f'$."{f}"' for f in fields]
    con.create_function("keytext", -1, lambda *vs: _key_text(list(vs) if len(vs) > 1 else vs[0]),
                        deterministic=True)
    args = ", ".join("json_extract(rec, ?)" for _ in paths)
    present = " AND ".join("coalesce(json_type(rec, ?), 'null') != 'null'" for _ in paths)
    for table in ("a", "b"):
        con.execute(f"UPDATE {table} SET k = CASE WHEN {present} THEN keytext({args}) END", [*paths, *paths])


def _key_problem(con: sqlite3.Connection, sides: dict[str, Side], fields: list[str]) -> str | None:
    """Why `fields` cannot be the key (a record without it, or a value seen twice on one side), or None."""
    for table, side in sides.items():
        row = con.execute(f"SELECT pos FROM {table} WHERE k IS NULL ORDER BY pos LIMIT 1").fetchone()
        if row:
            return f"record {row[0] + 1} of {side.name} has no `{', '.join(fields)}`"
        row = con.execute(f"SELECT k, count(*) FROM {table} GROUP BY k HAVING count(*) > 1 LIMIT 1").fetchone()
        if row:
            return f"`{', '.join(fields)}` is not unique in {side.name}: {row[0]} appears {row[1]} times"
    return None


def _content_keys(con: sqlite3.Connection) -> None:
    """Match by content: the key is the content hash and its occurrence, so equal records pair off one by one."""
    for table in ("a", "b"):
        con.execute("DROP TABLE IF EXISTS temp.m")
        con.execute("CREATE TEMP TABLE m (pos INTEGER PRIMARY KEY, k TEXT)")
        con.execute(f"INSERT INTO m SELECT pos, h || '#' || row_number() OVER (PARTITION BY h ORDER BY pos) "
                    f"FROM {table}")
        con.execute(f"UPDATE {table} SET k = m.k FROM m WHERE m.pos = {table}.pos")


def _cache_name(before: Side, after: Side, key: list[str] | None, normal: dict | None) -> str | None:
    if not (before.sha256 and after.sha256):
        return None
    spec = json.dumps([DIFF_VERSION, before.sha256, before.fmt, after.sha256, after.fmt, key, normal or {}],
                      sort_keys=True, default=str)
    return hashlib.sha256(spec.encode()).hexdigest()[:32] + ".sqlite"


def compute(before: Side, after: Side, *, key: list[str] | None = None, cache_dir: Path | None = None,
            reasons: dict[str, str] | None = None, normal: dict[str, list] | None = None) -> Diff:
    """Diff `after` against `before`, reusing a finished diff file from `cache_dir` when one exists. `normal`
    (the output's `normal:`) names the normal values of fields the step adds to every record."""
    normal = {f: (list(v) if isinstance(v, (list, tuple)) else [v]) for f, v in (normal or {}).items()}
    name = _cache_name(before, after, key, normal)
    if cache_dir is not None and name is not None:
        done = Path(cache_dir) / name
        if done.is_file():
            diff = _open(done)
            if diff is not None:
                touch(done)  # recently used: the last to go when the folder is trimmed
                diff.reasons = reasons or {}
                return diff
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".diff-", suffix=".sqlite.part", dir=folder)
    os.close(fd)
    try:
        diff = _build(Path(tmp), before, after, key, normal)
        target = folder / (name or f"diff-{os.getpid()}-{id(diff)}.sqlite")
        os.replace(tmp, target)
        diff.db_path = target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if cache_dir is not None:
        trim(folder, cap_bytes("PIPELOOM_DIFF_CACHE_MB"), keep=target, what="diff")
    diff.reasons = reasons or {}
    return diff


def _build(path: Path, before: Side, after: Side, key: list[str] | None, normal: dict[str, list]) -> Diff:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-16000")  # 16 MB of page cache, whatever the size of the sides
        con.execute("PRAGMA temp_store=FILE")
        for t in ("a", "b"):
            con.execute(f"CREATE TABLE {t} (pos INTEGER PRIMARY KEY, k TEXT, h TEXT NOT NULL, rec TEXT NOT NULL, "
                        "f TEXT NOT NULL, c INTEGER)")
        con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        _load(con, "a", _records(before))
        _load(con, "b", _records(after))
        sides = {"a": before, "b": after}
        chosen, inferred, method, note = None, False, "content", ""
        if key:
            _set_key(con, key)
            problem = _key_problem(con, sides, key)
            if problem:
                raise DiffError(f"the declared key does not hold: {problem}")
            chosen, method = list(key), "key"
            note = f"records matched by their declared key `{', '.join(key)}`"
        else:
            tried = []
            for cand in _candidates(_sample(before), _sample(after)):
                _set_key(con, [cand])
                if _key_problem(con, sides, [cand]) is None:
                    chosen, inferred, method = [cand], True, "key"
                    note = (f"records matched by `{cand}`, a field present and unique on both sides "
                            f"(no key declared; declare one with `key: [{cand}]` on the port)")
                    break
                tried.append(cand)
            if chosen is None:
                _content_keys(con)
                note = ("no key declared and no field is present and unique on both sides"
                        + (f" (tried {', '.join(tried)})" if tried else "")
                        + ": records matched by their whole content, so a changed record counts as dropped and added")
        for t in ("a", "b"):
            con.execute(f"CREATE INDEX {t}_k ON {t} (k)")
        annotations = _annotations(con) if method == "key" else []
        _mark_changed(con, annotations, normal)
        flagged = {f: v for f, v in normal.items() if f in annotations}
        counts = {kind: con.execute(sql).fetchone()[0] for kind, sql in _COUNT_SQL.items()}
        marked = con.execute("SELECT count(*) FROM b WHERE c = 2").fetchone()[0]
        meta = {"key": chosen, "key_inferred": inferred, "method": method, "counts": counts, "note": note,
                "annotations": annotations, "normal": flagged, "marked": marked}
        con.execute("INSERT INTO meta VALUES ('diff', ?)", (json.dumps(meta),))
        con.commit()
    finally:
        con.close()
    return Diff(path, chosen, inferred, method, counts, note, annotations=annotations, normal=flagged, marked=marked)


def _open(path: Path) -> Diff | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (text,) = con.execute("SELECT value FROM meta WHERE name = 'diff'").fetchone()
        finally:
            con.close()
        m = json.loads(text)
        return Diff(path, m["key"], m["key_inferred"], m["method"], m["counts"], m["note"],
                    annotations=m["annotations"], normal=m["normal"], marked=m["marked"])
    except (sqlite3.Error, TypeError, ValueError, KeyError):
        return None  # unreadable or from an older version: computed again


# ------------------------------------------------------------ what the step said

_DROPPED_LINE = re.compile(r"^dropped (?P<field>[^\s=]+)=(?P<value>\S+?):\s+(?P<reason>.+)$")


def reasons_from_log(lines: Iterable[str], key: list[str] | None) -> dict[str, str]:
    """Reasons a step gave for the records it dropped, from its log lines `dropped FIELD=VALUE: reason`.

    Only lines naming the diff's (single-field) key count; the value is matched as text."""
    if not key or len(key) != 1:
        return {}
    out = {}
    for line in lines:
        m = _DROPPED_LINE.match(line.strip())
        if m and m["field"] == key[0]:
            out.setdefault(m["value"], m["reason"].strip())
    return out
