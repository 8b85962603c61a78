"""The batch path of a conversion writes the same bytes as the record-by-record path, or defers to it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import formats
from server.engine.data import fast
from server.engine.formats import MalformedDataError, convert

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RECORDS = ["json", "ndjson", "csv", "parquet"]

TRICKY = [
    {"id": 1, "s": "Zoë ☃ 東京 🚀", "f": 0.1, "tiny": 1e-7, "small": 1.5e-05, "big": 1e16, "neg": -0.0,
     "int": 2**53 + 1, "huge": 2**70, "nested": {"a": [1, 2.5, {"b": None}], "e": {}}, "empty": "", "null": None,
     "ok": True, "ctl": "tab\tnl\ncr\rquote\"back\\slash\x01\x7f\u2028"},
    {"id": 2, "nested": [1e-7, 1e22, "3e5", 0.00001], "only2": "late, key", "ok": False, "s": "a,b",
     "mixed": 1},
    {"id": 3, "mixed": "text", "s": " lead and trail ", "ok": None, "nested": []},
    {"id": 4},
    {},
    {"id": 6, "deep": [[[[{"x": [[]]}]]]], "uni": "\u00e9\u0301", "s": "line1\r\nline2"},
]


def write_json(path: Path, rows: list, indent=None) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def outputs(tmp_path: Path, src: Path, src_fmt: str, dst_fmt: str):
    """(fast result, exact result): each a (count, bytes) pair or the error message."""
    got = []
    for exact in (False, True):
        dst = tmp_path / f"out-{exact}.{dst_fmt}"
        try:
            n = convert(src, src_fmt, dst, dst_fmt, exact=exact)
        except (MalformedDataError, UnicodeEncodeError) as exc:
            got.append(("error", str(exc)))
            assert not dst.exists()
            continue
        data = dst.read_bytes() if dst_fmt != "parquet" else pq.read_table(dst)
        if dst_fmt == "parquet":
            got.append((n, data.schema, data.to_pylist()))
        else:
            got.append((n, data))
        dst.unlink()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    return got


def sources(tmp_path: Path, rows: list) -> dict[str, Path]:
    src = {"json": write_json(tmp_path / "in.json", rows, indent=2)}
    convert(src["json"], "json", tmp_path / "in.ndjson", "ndjson", exact=True)
    src["ndjson"] = tmp_path / "in.ndjson"
    convert(src["json"], "json", tmp_path / "in.csv", "csv", exact=True)
    src["csv"] = tmp_path / "in.csv"
    return src


@pytest.mark.parametrize(("src_fmt", "dst_fmt"),
                         [(a, b) for a in ("json", "ndjson", "csv") for b in RECORDS if a != b])  # same: a raw copy
def test_tricky_records_convert_to_the_same_bytes(tmp_path, src_fmt, dst_fmt):
    rows = TRICKY * 3
    src = sources(tmp_path, rows)[src_fmt]
    fast_out, exact_out = outputs(tmp_path, src, src_fmt, dst_fmt)
    assert fast_out == exact_out


def test_the_batch_path_itself_handles_the_tricky_records(tmp_path):
    # Outputs equal because the batch path produced them, not because it deferred.
    src = sources(tmp_path, TRICKY)
    for dst_fmt in ("ndjson", "csv"):
        n = fast.convert_fast(src["json"], "json", tmp_path / f"f.{dst_fmt}", dst_fmt)
        m = convert(src["json"], "json", tmp_path / f"e.{dst_fmt}", dst_fmt, exact=True)
        assert n == m == len(TRICKY)
        assert (tmp_path / f"f.{dst_fmt}").read_bytes() == (tmp_path / f"e.{dst_fmt}").read_bytes()


def test_a_late_column_pads_the_rows_written_before_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fast, "BLOCK", 256)  # many blocks, so the late key arrives after rows were written
    rows = [{"a": i, "b": f"x\r{i}"} for i in range(200)] + [{"c": "late"}] + [{"a": 1, "d": [1]}]
    src = write_json(tmp_path / "in.json", rows)
    assert fast.convert_fast(src, "json", tmp_path / "f.csv", "csv") == len(rows)
    convert(src, "json", tmp_path / "e.csv", "csv", exact=True)
    assert (tmp_path / "f.csv").read_bytes() == (tmp_path / "e.csv").read_bytes()
    assert (tmp_path / "f.csv").read_bytes().startswith(b"a,b,c,d\n0,\"x\r0\",,\n")


def test_a_carriage_return_in_a_value_survives_a_round_trip_through_csv(tmp_path):
    # The csv module quotes only its line terminator's characters: a bare CR split the row.
    rows = [{"a": "one\rtwo", "b": "x"}, {"a": "plain", "b": "y"}]
    src = write_json(tmp_path / "in.json", rows)
    for exact in (True, False):
        out = tmp_path / f"out-{exact}.csv"
        convert(src, "json", out, "csv", exact=exact)
        assert list(formats.iter_records(out, "csv")) == rows
        with open(out, newline="", encoding="utf-8") as f:
            assert list(csv.DictReader(f)) == rows


@pytest.mark.parametrize("content,where", [
    ('[{"a": 1}, {"a": 2}, {"a": ]', "record 3"),
    ('[{"a": 1}, 7, {"a": 3}]', "record 2"),
    ('[{"a": 1}] trailing', "record 2"),
    ('[{"a": 1}, {"a": 2}', "record 3"),
    ('[{"a": 1e400}]', "record 1"),
    ('[{"a": "\\ud800"}, {"a": "caf\xe9"}]', None),
])
def test_malformed_json_gets_the_exact_paths_message(tmp_path, content, where):
    src = tmp_path / "in.json"
    src.write_text(content, encoding="utf-8")
    for dst_fmt in ("ndjson", "csv"):
        fast_out, exact_out = outputs(tmp_path, src, "json", dst_fmt)
        assert fast_out == exact_out
        if where:
            assert fast_out[0] == "error" and f"in.json {where}" in fast_out[1]


def test_ndjson_oddities_match(tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_bytes(b'\xef\xbb\xbf{"a": NaN}\n\n{"a": Infinity, "b": 123456789012345678901234}\r\n  \n'
                    b'{"a": "\\ud800x"}\n{"a": 1}')
    for dst_fmt in ("json", "csv"):
        fast_out, exact_out = outputs(tmp_path, src, "ndjson", dst_fmt)
        assert fast_out == exact_out
    src.write_bytes(b'{"a": 1}\n{"a": [1\n2]}\n')
    fast_out, exact_out = outputs(tmp_path, src, "ndjson", "json")
    assert fast_out == exact_out
    assert fast_out[0] == "error" and "in.ndjson line 2" in fast_out[1]


def test_a_record_deeper_than_the_limit_is_refused_even_where_orjson_would_read_it(tmp_path):
    src = tmp_path / "in.json"
    src.write_text("[" + '{"a":' * 1005 + "1" + "}" * 1005 + "]")
    for dst_fmt in ("ndjson", "csv"):
        fast_out, exact_out = outputs(tmp_path, src, "json", dst_fmt)
        assert fast_out == exact_out and "nested too deeply" in fast_out[1]
    nd = tmp_path / "in.ndjson"
    nd.write_text('{"a": 1}\n' + '{"a":' * 1005 + "1" + "}" * 1005 + "\n")
    fast_out, exact_out = outputs(tmp_path, nd, "ndjson", "json")
    assert fast_out == exact_out and "in.ndjson line 2" in fast_out[1]


def test_parquet_widening_across_batches_matches(tmp_path):
    rows = [{"n": i, "later": None, "s": "x"} for i in range(formats.BATCH_ROWS)]
    rows += [{"n": 0.5, "later": {"k": [1.5]}, "s": 3}, {"n": 2, "extra": True}]
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast_out, exact_out = outputs(tmp_path, src, "ndjson", "parquet")
    assert fast_out == exact_out


def test_parquet_source_to_text_formats_matches(tmp_path):
    import datetime

    table = pa.table({"f": [float("nan"), 1e-7, None], "d": [datetime.date(2020, 1, 2), None, None],
                      "s": [{"x": 1.5}, None, {"x": float("inf")}], "b": [b"\x00\xff", None, b""]})
    pq.write_table(table, tmp_path / "in.parquet")
    for dst_fmt in ("json", "ndjson", "csv"):
        fast_out, exact_out = outputs(tmp_path, tmp_path / "in.parquet", "parquet", dst_fmt)
        assert fast_out == exact_out


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**80, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=8)
records = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d,e", "f\"", "é"]), json_values, max_size=4),
                   min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=records, indent=st.sampled_from([None, 1]))
def test_property_fast_equals_exact(tmp_path, rows, indent):
    src = tmp_path / "p.json"
    src.write_text(json.dumps(rows, ensure_ascii=False, indent=indent), encoding="utf-8")
    for dst_fmt in ("ndjson", "csv", "parquet"):
        fast_out, exact_out = outputs(tmp_path, src, "json", dst_fmt)
        assert fast_out == exact_out
    nd = tmp_path / "p.ndjson"
    nd.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    for dst_fmt in ("json", "csv"):
        fast_out, exact_out = outputs(tmp_path, nd, "ndjson", dst_fmt)
        assert fast_out == exact_out


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_nested_floats_print_as_python_prints_them(x):
    assert fast.csv_columns([{"v": [x]}, {"v": {"k": x}}], ["v"]) == [[formats.csv_cell([x]), formats.csv_cell({"k": x})]]


# ---------------------------------------------------------------------------
# Large conversions in a child process


def test_a_large_conversion_runs_in_a_child_and_gives_the_same_bytes(tmp_path):
    import os

    from server.engine.data import isolate

    src = write_json(tmp_path / "in.json", TRICKY * 50)
    report = isolate.run_child(src, "json", tmp_path / "child.csv", "csv")
    assert report["count"] == len(TRICKY) * 50 and report["pid"] != os.getpid()
    convert(src, "json", tmp_path / "here.csv", "csv", exact=True)
    assert (tmp_path / "child.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    assert isolate.convert_isolated(src, "json", tmp_path / "small.csv", "csv") == len(TRICKY) * 50


@pytest.mark.parametrize("content,src_fmt,message", [
    ('[{"a": 1}, 7]', "json", "in.json record 2: expected an object, found a number"),
    ('{"a": 1}\n{"a": oops}\n', "ndjson", "in.json line 2: invalid JSON"),
    ('{"a": "\\ud800"}\n', "ndjson", "in.json: holds text that cannot be written as UTF-8"),
])
def test_errors_from_the_child_are_the_errors_of_the_parent(tmp_path, content, src_fmt, message):
    from server.engine.data import isolate

    src = tmp_path / "in.json"
    src.write_text(content)
    dst = tmp_path / "out.csv"
    for threshold in (0, 1 << 30):  # in a child, then in this process
        with pytest.raises(MalformedDataError) as info:
            isolate.convert_isolated(src, src_fmt, dst, "csv", threshold=threshold)
        assert str(info.value).startswith(message)
        assert info.value.path == str(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]
    with pytest.raises(formats.NotFoundError, match="nope.json: no such file"):
        isolate.convert_isolated(tmp_path / "nope.json", "json", dst, "csv", threshold=0)


def test_an_edge_converted_in_a_child_names_the_edge_when_it_fails(workspace, monkeypatch):
    from server.engine.data import isolate
    from tests.engine.test_edges_convert import _two_step

    monkeypatch.setattr(isolate, "ISOLATE_BYTES", 0)
    res = _two_step(workspace, "open('rows.json', 'w').write('[{\"a\": 1}, 2]')\n", "csv")
    assert res.nodes["take"].status == "failed"
    assert res.nodes["take"].message == (
        "edge make.rows → take.rows (json → csv): rows.json record 2: expected an object, found a number")
    res = _two_step(workspace, "import json\njson.dump([{'a': i, 'b': [i]} for i in range(5)], open('rows.json', 'w'))\n",
                    "csv")
    assert res.ok
    seen = Path(res.nodes["take"].artifacts["seen"]["path"]).read_text()
    assert seen.splitlines()[:2] == ["a,b", "0,[0]"]


# ---------------------------------------------------------------------------
# The parallel path


@pytest.mark.parametrize(("src_fmt", "dst_fmt"),
                         [(a, b) for a in ("json", "ndjson") for b in ("json", "ndjson", "csv") if a != b])
def test_parallel_workers_write_the_same_bytes(tmp_path, monkeypatch, src_fmt, dst_fmt):
    monkeypatch.setattr(fast, "BLOCK", 300)  # many small blocks, several in flight at once
    monkeypatch.setattr(fast, "TAIL", 300)
    rows = TRICKY * 4 + [{"id": i, "late" if i == 30 else "x": i} for i in range(60)] + [{"zz": None}]
    src = sources(tmp_path, rows)[src_fmt]
    got = convert(src, src_fmt, tmp_path / "par.out", dst_fmt, workers=3)
    want = convert(src, src_fmt, tmp_path / "one.out", dst_fmt, exact=True)
    assert got == want == len(rows)
    assert (tmp_path / "par.out").read_bytes() == (tmp_path / "one.out").read_bytes()


@pytest.mark.parametrize("content,src_fmt,message", [
    ('[{"a": 1}, {"a": 2}, 7, {"a": 4}]', "json", "in.data record 3: expected an object, found a number"),
    ('{"a": 1}\n' * 40 + '{"a": oops}\n' + '{"a": 1}\n' * 40, "ndjson", "in.data line 41: invalid JSON"),
])
def test_parallel_workers_report_the_first_error_in_file_order(tmp_path, monkeypatch, content, src_fmt, message):
    monkeypatch.setattr(fast, "BLOCK", 64)
    monkeypatch.setattr(fast, "TAIL", 64)
    src = tmp_path / "in.data"
    src.write_text(content)
    with pytest.raises(MalformedDataError) as info:
        convert(src, src_fmt, tmp_path / "out.csv", "csv", workers=2)
    assert str(info.value).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.data"]


@pytest.mark.timeout(240)
def test_a_large_parallel_conversion_stays_in_bounded_memory(tmp_path, monkeypatch):
    from server.engine.data import isolate
    from tests.engine.test_formats import generate_json_array

    src = tmp_path / "big.json"
    n = generate_json_array(src, 60_000_000)  # its last record brings a new column
    monkeypatch.setenv("PIPELOOM_CONVERT_WORKERS", "2")
    try:
        for dst_fmt in ("csv", "ndjson"):
            report = isolate.run_child(src, "json", tmp_path / f"out.{dst_fmt}", dst_fmt)
            assert report["count"] == n
            growth_mb = (report["peak_rss_kb"] - report["start_rss_kb"]) / 1024
            assert growth_mb < 100, f"{dst_fmt}: peak RSS grew by {growth_mb:.0f} MB"
        with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == ["id", "sensor", "kind", "value", "ok", "ts", "tags", "meta", "late"]
            assert next(reader)[-1] == ""
    finally:
        for p in tmp_path.iterdir():
            p.unlink()
