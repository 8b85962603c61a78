"""The format registry and the streaming conversions, on real files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.engine import formats
from server.engine.errors import NotFoundError, PipeloomError
from server.engine.formats import (
    PARQUET_HINT,
    ConversionError,
    FormatError,
    MalformedDataError,
    RecordWriter,
    can_convert,
    convert,
    count_records,
    iter_records,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

REPO = Path(__file__).resolve().parents[2]
RECORD_FORMATS = ["json", "ndjson", "csv", "parquet"]
ALL_FORMATS = ["json", "ndjson", "csv", "text", "binary", "parquet"]

DATA = [
    {"id": 1, "name": "Zoë ☃", "value": 24.5, "ok": True, "tags": ["a", "b"], "meta": {"unit": "°C", "n": 2},
     "note": None},
    {"id": 2, "name": "東京", "value": -3.25, "ok": False, "tags": [], "meta": {"unit": "K", "n": 3},
     "note": 'line1\nline2, "quoted"'},
]
# DATA as CSV cells: numbers as text, booleans as true/false, nested values JSON-encoded, null empty.
CSV_ROWS = [
    {"id": "1", "name": "Zoë ☃", "value": "24.5", "ok": "true", "tags": '["a","b"]', "meta": '{"unit":"°C","n":2}',
     "note": ""},
    {"id": "2", "name": "東京", "value": "-3.25", "ok": "false", "tags": "[]", "meta": '{"unit":"K","n":3}',
     "note": 'line1\nline2, "quoted"'},
]


# Writers and readers independent of the module under test.

def write_source(path: Path, fmt: str, rows: list[dict]) -> Path:
    if fmt == "json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    elif fmt == "ndjson":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            w.writerows(rows)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_back(path: Path, fmt: str) -> list[dict]:
    if fmt == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if fmt == "ndjson":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    return pq.read_table(path).to_pylist()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# ---------------------------------------------------------------------------
# Registry


def test_registry_lists_every_format_with_its_traits():
    assert list(formats.FORMATS) == ALL_FORMATS
    assert {n for n, f in formats.FORMATS.items() if f.is_records} == {"json", "ndjson", "csv", "parquet"}
    assert formats.FORMATS["text"].extension == "txt"
    assert formats.FORMATS["csv"].mime == "text/csv"
    assert formats.FORMATS["parquet"].requires == "pyarrow"
    assert all(f.available() for f in formats.FORMATS.values())
    assert formats.get_format("ndjson").extension == "ndjson"
    with pytest.raises(FormatError, match="unknown format `xml`; known formats: json, ndjson, csv, text, binary, parquet"):
        formats.get_format("xml")


def test_json_reading_uses_the_c_backend_when_present():
    try:
        import ijson.backends.yajl2_c  # noqa: F401
    except ImportError:
        pytest.skip("the ijson C backend (yajl2_c) is not built here")
    assert formats.JSON_BACKEND == "yajl2_c"


@pytest.mark.parametrize(
    "name,fmt",
    [("a.json", "json"), ("a.ndjson", "ndjson"), ("a.jsonl", "ndjson"), ("b.CSV", "csv"), ("c.txt", "text"),
     ("d.parquet", "parquet"), ("e.tar.gz", "binary"), ("noext", "binary")],
)
def test_guess_format_from_extension(name, fmt):
    assert formats.guess_format(name) == fmt


# ---------------------------------------------------------------------------
# can_convert


def expected_convertible(src: str, dst: str) -> bool:
    if src == dst or dst == "binary":
        return True
    if dst == "text":
        return src in ("json", "ndjson", "csv")
    return src in RECORD_FORMATS and dst in RECORD_FORMATS


@pytest.mark.parametrize("src", ALL_FORMATS)
@pytest.mark.parametrize("dst", ALL_FORMATS)
def test_can_convert_matrix(src, dst):
    ok, reason = can_convert(src, dst)
    assert ok is expected_convertible(src, dst)
    if ok:
        assert reason is None
    else:
        assert reason == f"no conversion from {src} to {dst}"


def test_can_convert_names_unknown_formats():
    ok, reason = can_convert("json", "yaml")
    assert not ok
    assert reason == "unknown format `yaml`; known formats: json, ndjson, csv, text, binary, parquet"
    ok, reason = can_convert("xls", "csv")
    assert not ok and "`xls`" in reason


def test_parquet_without_pyarrow_explains_how_to_install(tmp_path):
    # A real interpreter in which importing pyarrow fails.
    src = write_source(tmp_path / "in.json", "json", DATA)
    code = (
        "import sys, json\n"
        "sys.modules['pyarrow'] = None\n"
        "from server.engine import formats\n"
        "out = {'available': formats.FORMATS['parquet'].available(),\n"
        "       'to': formats.can_convert('json', 'parquet'), 'from': formats.can_convert('parquet', 'csv'),\n"
        "       'same': formats.can_convert('parquet', 'parquet')}\n"
        "try:\n"
        f"    formats.convert({str(src)!r}, 'json', {str(tmp_path / 'out.parquet')!r}, 'parquet')\n"
        "except formats.FormatError as exc:\n"
        "    out['error'] = str(exc)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["available"] is False
    assert out["to"] == [False, PARQUET_HINT]
    assert out["from"] == [False, PARQUET_HINT]
    assert out["same"] == [True, None]
    assert PARQUET_HINT in out["error"]
    assert "pip install 'pipeloom[parquet]'" in PARQUET_HINT
    assert not (tmp_path / "out.parquet").exists()


# ---------------------------------------------------------------------------
# Conversions between records formats


@pytest.mark.parametrize("src_fmt,dst_fmt", [(s, d) for s in RECORD_FORMATS for d in RECORD_FORMATS if s != d])
def test_every_records_pair_converts(tmp_path, src_fmt, dst_fmt):
    src = write_source(tmp_path / f"in.{src_fmt}", src_fmt, CSV_ROWS if src_fmt == "csv" else DATA)
    dst = tmp_path / f"out.{dst_fmt}"
    n = convert(src, src_fmt, dst, dst_fmt)
    assert n == 2
    # CSV has no types: whatever passes through it comes out as the CSV text of the values.
    expected = CSV_ROWS if "csv" in (src_fmt, dst_fmt) else DATA
    assert read_back(dst, dst_fmt) == expected
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_round_trip_through_a_format_keeps_values(tmp_path, fmt):
    src = write_source(tmp_path / "in.json", "json", DATA)
    mid = tmp_path / f"mid.{fmt}"
    back = tmp_path / "back.json"
    convert(src, "json", mid, fmt)
    convert(mid, fmt, back, "json")
    assert json.loads(back.read_text(encoding="utf-8")) == (CSV_ROWS if fmt == "csv" else DATA)


def test_union_of_columns_in_first_seen_order(tmp_path):
    rows = [{"a": 1, "b": 2}, {"b": 3, "c": {"x": [1, 2]}}, {"d": "late"}]
    src = write_source(tmp_path / "in.json", "json", rows)
    convert(src, "json", tmp_path / "out.csv", "csv")
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "a,b,c,d"
    assert read_back(tmp_path / "out.csv", "csv") == [
        {"a": "1", "b": "2", "c": "", "d": ""},
        {"a": "", "b": "3", "c": '{"x":[1,2]}', "d": ""},
        {"a": "", "b": "", "c": "", "d": "late"},
    ]
    convert(src, "json", tmp_path / "out.parquet", "parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["a", "b", "c", "d"]
    assert table.to_pylist() == [
        {"a": 1, "b": 2, "c": None, "d": None},
        {"a": None, "b": 3, "c": {"x": [1, 2]}, "d": None},
        {"a": None, "b": None, "c": None, "d": "late"},
    ]


def test_parquet_types_unify_across_batches_and_mixed_columns_become_json_text(tmp_path):
    # More than one batch, so types found in later batches must widen the column.
    rows = [{"n": i, "mixed": i, "later": None, "empty": {}} for i in range(formats.BATCH_ROWS)]
    rows.append({"n": 0.5, "mixed": "text", "later": {"k": [1.5]}, "empty": {}})
    rows.append({"n": 2, "mixed": [1, {"z": None}], "later": None, "empty": {}, "big": 2**70})
    src = write_source(tmp_path / "in.ndjson", "ndjson", rows)
    convert(src, "ndjson", tmp_path / "out.parquet", "parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    schema = table.schema
    assert schema.field("n").type == pa.float64()
    assert schema.field("mixed").type == pa.string()
    assert schema.field("later").type == pa.struct([pa.field("k", pa.list_(pa.float64()))])
    assert schema.field("empty").type == pa.string()  # parquet cannot store a struct with no fields
    assert schema.field("big").type == pa.string()  # beyond int64
    tail = table.slice(formats.BATCH_ROWS - 1).to_pylist()
    assert tail == [
        {"n": float(formats.BATCH_ROWS - 1), "mixed": str(formats.BATCH_ROWS - 1), "later": None, "empty": "{}",
         "big": None},
        {"n": 0.5, "mixed": "text", "later": {"k": [1.5]}, "empty": "{}", "big": None},
        {"n": 2.0, "mixed": '[1,{"z":null}]', "later": None, "empty": "{}", "big": "1180591620717411303424"},
    ]


def test_unicode_and_big_numbers_survive_json_and_ndjson(tmp_path):
    rows = [{"emoji": "🚀 naïve — ok", "big": 2**70, "neg": -0.0001, "esc": "tab\tquote\"back\\slash"}]
    src = write_source(tmp_path / "in.json", "json", rows)
    convert(src, "json", tmp_path / "out.ndjson", "ndjson")
    raw = (tmp_path / "out.ndjson").read_text(encoding="utf-8")
    assert "🚀" in raw  # written as UTF-8, not \u escapes
    assert read_back(tmp_path / "out.ndjson", "ndjson") == rows
    convert(tmp_path / "out.ndjson", "ndjson", tmp_path / "back.json", "json")
    assert read_back(tmp_path / "back.json", "json") == rows


def test_non_finite_numbers_become_null_in_json(tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_text('{"x": NaN, "y": [Infinity, 1.5]}\n')
    convert(src, "ndjson", tmp_path / "out.json", "json")
    assert json.loads((tmp_path / "out.json").read_text()) == [{"x": None, "y": [None, 1.5]}]
    pq.write_table(pa.table({"f": [float("nan"), 2.0]}), tmp_path / "in.parquet")
    convert(tmp_path / "in.parquet", "parquet", tmp_path / "out.ndjson", "ndjson")
    assert (tmp_path / "out.ndjson").read_text() == '{"f": null}\n{"f": 2.0}\n'


def test_csv_with_bom_short_rows_and_quoted_newlines(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes('\ufeffcity,temp,note\r\nOslo,-3,"two\r\nlines"\r\nRome,18\r\n\r\n'.encode("utf-8"))
    assert list(iter_records(src, "csv")) == [
        {"city": "Oslo", "temp": "-3", "note": "two\r\nlines"},
        {"city": "Rome", "temp": "18", "note": ""},
    ]
    assert count_records(src, "csv") == 2
    convert(src, "csv", tmp_path / "out.parquet", "parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert [f.type for f in table.schema] == [pa.string()] * 3
    assert table.column("temp").to_pylist() == ["-3", "18"]


def test_json_with_bom_and_whitespace_reads(tmp_path):
    src = tmp_path / "in.json"
    src.write_bytes(b"\xef\xbb\xbf \n\t[ {\"a\": 1.25} , {\"a\": 2} ]\n")
    assert list(iter_records(src, "json")) == [{"a": 1.25}, {"a": 2}]
    assert type(next(iter_records(src, "json"))["a"]) is float  # not Decimal


@pytest.mark.parametrize("dst_fmt", ["ndjson", "csv", "parquet", "json"])
def test_empty_array_converts_to_an_empty_file_of_each_format(tmp_path, dst_fmt):
    src = tmp_path / "in.json"
    src.write_text("[]")
    src_fmt = "json"
    if dst_fmt == "json":
        src = tmp_path / "in.ndjson"
        src.write_text("")
        src_fmt = "ndjson"
    dst = tmp_path / f"out.{dst_fmt}"
    assert convert(src, src_fmt, dst, dst_fmt) == 0
    assert dst.exists()
    assert read_back(dst, dst_fmt) == []
    back = tmp_path / "back.json"
    convert(dst, dst_fmt, back, "json")
    assert json.loads(back.read_text()) == []


def test_header_only_csv_gives_typed_empty_parquet(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n")
    convert(src, "csv", tmp_path / "out.parquet", "parquet")
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.num_rows == 0 and t.column_names == ["a", "b"]
    convert(tmp_path / "out.parquet", "parquet", tmp_path / "back.csv", "csv")
    assert (tmp_path / "back.csv").read_text() == "a,b\n"


# ---------------------------------------------------------------------------
# Raw copies and refusals


@pytest.mark.parametrize(
    "src_fmt,dst_fmt",
    [("json", "text"), ("ndjson", "text"), ("csv", "text"), ("json", "json"), ("text", "text")]
    + [(f, "binary") for f in ALL_FORMATS],
)
def test_raw_conversions_copy_bytes(tmp_path, src_fmt, dst_fmt):
    if src_fmt in RECORD_FORMATS:
        src = write_source(tmp_path / f"in.{src_fmt}", src_fmt, CSV_ROWS if src_fmt == "csv" else DATA)
    else:
        src = tmp_path / "in.bin"
        src.write_bytes(bytes(range(256)) * 10)
    dst = tmp_path / "out.data"
    assert convert(src, src_fmt, dst, dst_fmt) is None
    assert dst.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("src_fmt,dst_fmt", [("text", "csv"), ("binary", "json"), ("parquet", "text"), ("text", "ndjson")])
def test_convert_refuses_pairs_without_conversion(tmp_path, src_fmt, dst_fmt):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    dst = tmp_path / "out"
    with pytest.raises(ConversionError, match=f"in.txt -> out: no conversion from {src_fmt} to {dst_fmt}"):
        convert(src, src_fmt, dst, dst_fmt)
    assert not dst.exists()


def test_convert_of_a_missing_file(tmp_path):
    with pytest.raises(NotFoundError, match="nope.json: no such file"):
        convert(tmp_path / "nope.json", "json", tmp_path / "out.csv", "csv")


def test_output_permissions_follow_the_umask(tmp_path):
    src = write_source(tmp_path / "in.json", "json", DATA)
    old = os.umask(0o022)
    try:
        convert(src, "json", tmp_path / "out.ndjson", "ndjson")
        convert(src, "json", tmp_path / "out.txt", "text")
    finally:
        os.umask(old)
    assert (tmp_path / "out.ndjson").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------
# Malformed input


@pytest.mark.parametrize(
    "name,src_fmt,content,message",
    [
        ("raw_events.json", "json", '{"events": []}', "raw_events.json: expected a JSON array of objects, found an object"),
        ("raw_events.json", "json", '"just text"', "raw_events.json: expected a JSON array of objects, found a string"),
        ("raw_events.json", "json", "", "raw_events.json: expected a JSON array of objects, found an empty file"),
        ("bad.json", "json", '[{"a": 1}, {"a": 2}, {"a": ]', "bad.json record 3: invalid JSON"),
        ("bad.json", "json", '[{"a": 1}, {"a": 2}', "bad.json record 3: invalid JSON"),
        ("bad.json", "json", '[{"a": 1}] trailing', "bad.json record 2: invalid JSON"),
        ("nums.json", "json", '[{"a": 1}, 7]', "nums.json record 2: expected an object, found a number"),
        ("events.ndjson", "ndjson", '{"a": 1}\n' * 16 + '{"a": oops}\n', "events.ndjson line 17: invalid JSON"),
        ("events.ndjson", "ndjson", '{"a": 1}\n\n[1, 2]\n', "events.ndjson line 3: expected a JSON object, found an array"),
        ("rows.csv", "csv", "a,b,c\n1,2,3\n1,2,3,4\n", "rows.csv line 3: 4 fields, but the header has 3"),
        ("rows.csv", "csv", "a,b,a\n1,2,3\n", "rows.csv line 1: column `a` appears twice in the header"),
        ("table.parquet", "parquet", "PAR1 not really", "table.parquet: not a readable parquet file"),
    ],
)
@pytest.mark.parametrize("dst_fmt", ["ndjson", "csv", "json"])
def test_malformed_input_names_the_file_and_place(tmp_path, name, src_fmt, content, message, dst_fmt):
    if dst_fmt == src_fmt:
        dst_fmt = "parquet"
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    dst = tmp_path / f"out.{dst_fmt}"
    with pytest.raises(MalformedDataError) as info:
        convert(src, src_fmt, dst, dst_fmt)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, PipeloomError)
    assert not dst.exists()
    assert leftovers(tmp_path) == []


def test_invalid_utf8_in_csv_names_the_line(tmp_path):
    src = tmp_path / "latin.csv"
    src.write_bytes(b"name\nok\ncaf\xe9\n")
    with pytest.raises(MalformedDataError, match="latin.csv line .*not valid UTF-8"):
        list(iter_records(src, "csv"))


@pytest.mark.parametrize("src_fmt,dst_fmt", [("json", "ndjson"), ("ndjson", "json"), ("json", "parquet")])
def test_failure_mid_stream_leaves_no_output_and_keeps_the_old_one(tmp_path, src_fmt, dst_fmt):
    rows = [{"i": i, "pad": "x" * 40} for i in range(30_000)]
    src = write_source(tmp_path / f"in.{src_fmt}", src_fmt, rows)
    # Corrupt a record near the end, after many records have been written out.
    data = src.read_bytes()
    cut = data.index(b'"i": 29000')
    src.write_bytes(data[:cut] + b'"i": @@' + data[cut + 10:])
    dst = tmp_path / f"out.{dst_fmt}"
    dst.write_text("previous complete output")
    with pytest.raises(MalformedDataError) as info:
        convert(src, src_fmt, dst, dst_fmt)
    where = "record 29001" if src_fmt == "json" else "line 29001"
    assert f"in.{src_fmt} {where}: invalid JSON" in str(info.value)
    assert dst.read_text() == "previous complete output"
    assert leftovers(tmp_path) == []
    dst.unlink()
    with pytest.raises(MalformedDataError):
        convert(src, src_fmt, dst, dst_fmt)
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"in.{src_fmt}"]


# ---------------------------------------------------------------------------
# RecordWriter and iter_records


@pytest.mark.parametrize("fmt", RECORD_FORMATS)
def test_record_writer_publishes_only_on_success(tmp_path, fmt):
    dst = tmp_path / f"out.{fmt}"
    with pytest.raises(RuntimeError):
        with RecordWriter(dst, fmt) as w:
            w.write({"a": 1})
            raise RuntimeError("the producer failed")
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []
    with RecordWriter(dst, fmt) as w:
        w.write_many(({"a": i, "b": f"v{i}"} for i in range(3)))
        assert not dst.exists()  # nothing visible until the block ends
    assert w.count == 3
    expected = [{"a": i, "b": f"v{i}"} for i in range(3)]
    if fmt == "csv":
        expected = [{"a": str(i), "b": f"v{i}"} for i in range(3)]
    assert read_back(dst, fmt) == expected
    assert list(iter_records(dst, fmt)) == expected


def test_record_writer_csv_refuses_fields_outside_its_columns(tmp_path):
    dst = tmp_path / "out.csv"
    with pytest.raises(FormatError, match="record 2: field `c` is not among the CSV columns"):
        with RecordWriter(dst, "csv") as w:
            w.write({"a": 1, "b": 2})
            w.write({"a": 1, "c": 3})
    assert not dst.exists()
    with RecordWriter(dst, "csv", columns=["b", "a"]) as w:
        w.write({"a": 1})
        w.write({"b": True, "a": None})
    assert dst.read_text() == "b,a\n,1\ntrue,\n"


def test_record_writer_rejects_non_records_formats_and_values(tmp_path):
    with pytest.raises(FormatError, match="text is not a records format"):
        RecordWriter(tmp_path / "x.txt", "text")
    with pytest.raises(FormatError, match="record 1: expected a dict, got a number"):
        with RecordWriter(tmp_path / "x.json", "json") as w:
            w.write(5)
    assert not (tmp_path / "x.json").exists()


def test_iter_records_is_lazy_and_csv_values_are_strings(tmp_path):
    src = write_source(tmp_path / "in.csv", "csv", CSV_ROWS)
    it = iter_records(src, "csv")
    first = next(it)
    assert first == CSV_ROWS[0]
    assert all(isinstance(v, str) for v in first.values())
    it.close()
    with pytest.raises(FormatError, match="binary is not a records format"):
        iter_records(src, "binary")


# ---------------------------------------------------------------------------
# count_records


def test_count_records_for_each_format(tmp_path):
    assert count_records(write_source(tmp_path / "a.json", "json", DATA), "json") == 2
    nd = tmp_path / "a.ndjson"
    nd.write_text('{"a":1}\n\n  \n{"a":2}\n{"a":3}')
    assert count_records(nd, "ndjson") == 3
    assert count_records(write_source(tmp_path / "a.csv", "csv", CSV_ROWS), "csv") == 2  # a quoted newline inside
    pq.write_table(pa.table({"x": list(range(12345))}), tmp_path / "a.parquet", row_group_size=1000)
    assert count_records(tmp_path / "a.parquet", "parquet") == 12345
    assert count_records(tmp_path / "a.json", "text") is None
    assert count_records(tmp_path / "a.json", "binary") is None
    (tmp_path / "empty.json").write_text("[]")
    assert count_records(tmp_path / "empty.json", "json") == 0
    (tmp_path / "empty.csv").write_text("")
    assert count_records(tmp_path / "empty.csv", "csv") == 0


def test_count_records_gives_none_when_too_big_or_not_records(tmp_path):
    src = write_source(tmp_path / "a.json", "json", DATA)
    size = src.stat().st_size
    assert count_records(src, "json", max_bytes=size) == 2
    assert count_records(src, "json", max_bytes=size - 1) is None
    (tmp_path / "doc.json").write_text('{"a": [1, 2]}')
    assert count_records(tmp_path / "doc.json", "json") is None
    (tmp_path / "bad.ndjson").write_text('{"a":1}\n{oops\n')
    assert count_records(tmp_path / "bad.ndjson", "ndjson") == 2  # counting does not parse lines
    (tmp_path / "bad.json").write_text('[{"a":1}, {')
    assert count_records(tmp_path / "bad.json", "json") is None
    assert count_records(tmp_path / "missing.json", "json") is None


# ---------------------------------------------------------------------------
# Bounded memory on a large file


def generate_json_array(path: Path, target_bytes: int) -> int:
    """Write a JSON array of varied records of about `target_bytes`; return the record count."""
    tmpl = ('{"id": %d, "sensor": "sensor-%d", "kind": "temperature", "value": %d.%d, "ok": %s, '
            '"ts": "2024-05-01T12:%02d:00Z", "tags": ["a", "b"], "meta": {"unit": "\\u00b0C", "zone": "Zo\\u00eb"}}')
    n = size = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        while size < target_bytes:
            chunk = ",\n".join(
                tmpl % (i, i % 50, i % 40, i % 10, "true" if i % 3 else "false", i % 60) for i in range(n, n + 10_000)
            )
            f.write((",\n" if n else "") + chunk)
            size += len(chunk)
            n += 10_000
        f.write(',\n{"id": -1, "late": "only in the last record"}\n]\n')
    return n + 1


@pytest.fixture
def big_dir(tmp_path):
    yield tmp_path
    for path in tmp_path.iterdir():  # pytest keeps recent temp dirs; do not keep 600 MB in them
        path.unlink()


@pytest.mark.timeout(240)
def test_large_json_array_converts_in_bounded_memory(big_dir):
    src = big_dir / "big.json"
    n = generate_json_array(src, 200_000_000)
    assert src.stat().st_size > 190_000_000
    code = (
        "import json, resource, sys\n"
        "from server.engine import formats\n"
        "src, fmt = sys.argv[1], sys.argv[2]\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n = formats.convert(src, 'json', src + '.' + fmt, fmt)\n"
        "growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(json.dumps({'records': n, 'growth_kb': growth}))\n"
    )
    # One process per target format, side by side: each measures its own peak RSS.
    procs = {
        fmt: subprocess.Popen([sys.executable, "-c", code, str(src), fmt], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        for fmt in ("ndjson", "csv")
    }
    results = {}
    try:
        for fmt, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=220)
            assert proc.returncode == 0, stderr
            results[fmt] = json.loads(stdout)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for fmt, out in results.items():
        assert out["records"] == n
        assert out["growth_kb"] < 100 * 1024, f"{fmt}: peak RSS grew by {out['growth_kb'] // 1024} MB"
    with open(str(src) + ".ndjson", "rb") as f:
        assert sum(1 for _ in f) == n
    with open(str(src) + ".csv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["id", "sensor", "kind", "value", "ok", "ts", "tags", "meta", "late"]
        assert next(reader) == ["0", "sensor-0", "temperature", "0.0", "false", "2024-05-01T12:00:00Z", '["a","b"]',
                                '{"unit":"°C","zone":"Zoë"}', ""]
