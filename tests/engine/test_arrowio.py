"""Parquet to and from json, ndjson and csv at columnar speed: the exact path's bytes and schema, or a fallback."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine.data import arrowio, arrowpipe, native
from server.engine.formats import MalformedDataError, convert
from tests.conftest import pipeloom_cmd, require
from tests.engine.test_convert_exact import TRICKY
from tests.engine.util import write_pipeline

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

FLOATS = [1.0, 1e16, 0.1, -0.0, float("nan"), float("inf"), -float("inf"), 1e-5, 1.5e-4, 0.0001, 123456789.123,
          1e15, 9999999999999998.0, 2.5e-7, 1 / 3, 5e-324, 1.7976931348623157e308, 100.0, None, 0.0, -1.5,
          12345678901234567.0]


def varied_table():
    n = len(FLOATS)
    return pa.table({
        "i": [i if i % 5 else None for i in range(n)],
        "f": FLOATS,
        "f32": pa.array([1.1, None] + [0.1] * (n - 2), pa.float32()),
        "s": ["a,b", 'q"uote', "back\\slash", "tab\tnl\n", "cr\rx", "Zoë ☃ 東京 🚀", "\x01\x7f\u2028", None, "",
              " lead "] + ["x"] * (n - 10),
        "b": [True, False, None] * (n // 3) + [True] * (n % 3),
        "nest": [{"a": [1, 2.5, None], "e": "x"}, None, {"a": [], "e": None}]
                + [{"a": [float("nan")], "e": "\n\"é"}] * (n - 3),
        "l": [[1e-7, 1e22], None, []] + [[0.5]] * (n - 3),
        "ts": [datetime.datetime(2020, 1, 2, 3, 4, 5)] * n,
        "d": [datetime.date(2020, 1, 2), None] * (n // 2),
        "bin": [b"\x00\xff", None] * (n // 2),
        "nul": pa.nulls(n),
        "ls": [["a", 'b"c'], None] * (n // 2),
        "dict": pa.array(["u", "v"] * (n // 2)).dictionary_encode(),
        "u64": pa.array(list(range(n)), pa.uint64()),
        "ll": pa.array([[[1], [2, None]], None] * (n // 2), pa.large_list(pa.list_(pa.int64()))),
        "big": pa.array(["x", "y,z"] * (n // 2), pa.large_string()),
        "key \"odd\", é": [1] * n,
        "lse": [[], ["", "x,y"], None, ['q"\\']] * (n // 4) + [["é"]] * (n % 4),
        "lsn": [["a", None], []] * (n // 2),
    })


def same_as_exact(tmp_path: Path, table, fmt: str) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=5)
    fast, exact = tmp_path / f"fast.{fmt}", tmp_path / f"exact.{fmt}"
    assert arrowio.parquet_to_text(src, fast, fmt) == convert(src, "parquet", exact, fmt, exact=True)
    assert fast.read_bytes() == exact.read_bytes()


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_parquet_to_text_writes_the_exact_bytes(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(arrowio, "ROWS", 7)  # several batches, and a json array across them
    table = varied_table()
    same_as_exact(tmp_path, table, fmt)
    for name in ("s", "nul", "nest", "f"):  # one column: the csv module quotes a row's only empty cell
        same_as_exact(tmp_path, table.select([name]), fmt)
    same_as_exact(tmp_path, table.slice(0, 0), fmt)


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_floats_print_as_python_prints_them(tmp_path, fmt):
    rnd = random.Random(7)
    values = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30) for _ in range(20_000)]
    values += [float(rnd.randint(-10 ** 17, 10 ** 17)) / 10 ** rnd.randint(0, 20) for _ in range(20_000)]
    values += [round(rnd.uniform(-40, 120), 3) for _ in range(20_000)]
    table = pa.table({"v": values, "w": pa.array(values, pa.float32()), "l": [[v] for v in values]})
    same_as_exact(tmp_path, table, fmt)
    # mostly whole numbers, and a NaN among them
    whole = [float(i + 1) for i in range(100)] + [float("nan"), 0.5, None, float("inf")]
    same_as_exact(tmp_path, pa.table({"v": whole, "w": whole[:-1] + [7.0]}), fmt)
    # readings of a sensor: below 1e10, where pyarrow writes no exponent; a few whole numbers, zeros and NaN
    readings = [round(rnd.uniform(-40, 120), 3) for _ in range(20_000)] + [0.0, -0.0, float("nan"), 1e-4, 9999999999.5]
    same_as_exact(tmp_path, pa.table({"v": readings}), fmt)


def test_what_it_cannot_vouch_for_is_left_to_the_exact_path(tmp_path):
    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), dup)
    with pytest.raises(arrowio.Fallback):
        arrowio.parquet_to_text(dup, tmp_path / "out.ndjson", "ndjson")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(arrowio.Fallback):
        arrowio.parquet_to_text(bad, tmp_path / "out.ndjson", "ndjson")
    if shutil.which("cargo"):  # the same through the compiled converter
        for src in (dup, bad):
            with pytest.raises(arrowpipe.Fallback):
                arrowpipe.parquet_to_text(src, tmp_path / "out.ndjson", "ndjson")
    with pytest.raises(MalformedDataError, match="bad.parquet: not a readable parquet file"):
        convert(bad, "parquet", tmp_path / "out.ndjson", "ndjson")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "dup.parquet"]


def test_convert_from_parquet_takes_the_columnar_path(tmp_path, monkeypatch):
    src = tmp_path / "in.parquet"
    pq.write_table(varied_table(), src)
    calls = []
    real = arrowio.parquet_to_text
    monkeypatch.setattr(arrowio, "parquet_to_text", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setenv(native.ENV, "0")  # without the compiled converter: pyarrow.compute encodes
    for fmt in ("json", "ndjson", "csv"):
        convert(src, "parquet", tmp_path / f"out.{fmt}", fmt)
        convert(src, "parquet", tmp_path / f"exact.{fmt}", fmt, exact=True)
        assert (tmp_path / f"out.{fmt}").read_bytes() == (tmp_path / f"exact.{fmt}").read_bytes()
    assert [c[2] for c in calls] == ["json", "ndjson", "csv"]


# ---------------------------------------------------------------------------
# parquet to text through the compiled converter (arrowpipe.py, native/src/arrow_text.rs)


@pytest.fixture
def exe():
    require(shutil.which("cargo") is not None, "the compiled converter is built with cargo")
    path = native.binary()
    assert path
    return path


def piped_as_exact(tmp_path: Path, table, fmt: str, row_group_size: int = 5) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=row_group_size)
    piped, exact = tmp_path / f"piped.{fmt}", tmp_path / f"exact.{fmt}"
    assert arrowpipe.parquet_to_text(src, piped, fmt) == convert(src, "parquet", exact, fmt, exact=True)
    assert piped.read_bytes() == exact.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def converter_calls(monkeypatch) -> list:
    """The output formats the converter was started for, from here on."""
    calls: list = []
    real = arrowpipe.subprocess.Popen

    def popen(argv, *a, **kw):
        if argv[1:3] == ["-", "arrow"]:
            calls.append(argv[4])
        return real(argv, *a, **kw)

    monkeypatch.setattr(arrowpipe.subprocess, "Popen", popen)
    return calls


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_the_converter_writes_the_exact_bytes(tmp_path, monkeypatch, exe, fmt):
    monkeypatch.setattr(arrowpipe, "ROWS", 7)  # several batches, and a json array across them
    calls = converter_calls(monkeypatch)
    table = varied_table()
    piped_as_exact(tmp_path, table, fmt)
    for name in ("s", "nul", "nest", "f", "ts", "l"):  # one column: the csv module quotes a row's only empty cell
        piped_as_exact(tmp_path, table.select([name]), fmt)
    piped_as_exact(tmp_path, table.slice(0, 0), fmt)
    assert calls == [fmt] * 8


STRINGS = ["", "a", "a,b", 'q"uote', "back\\slash", "tab\tnl\ncr\rff\fbs\b", "cr\rx", "crlf\r\n",
           "Zoë ☃ 東京 🚀", "\x7f\u2028\u2029\ufeff", " lead ", "12345678", "1234567\"", "é\"é\"é\"",
           "\u00e9" * 40 + '"', "x" * 63 + ",", "y" * 64, "z" * 65 + "\n", "ü" * 100, "€€€€€€€€\\"]
STRINGS += ["".join(map(chr, range(0, 32)))] + [f"{chr(c)}" for c in range(0, 32)] + [f"ab{chr(c)}cdefgh" for c in range(32)]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_the_converter_escapes_and_quotes_strings_as_python(tmp_path, exe, fmt):
    n = len(STRINGS)
    table = pa.table({
        "s": STRINGS,
        "n": [None if i % 3 == 0 else s for i, s in enumerate(STRINGS)],
        "big": pa.array(STRINGS, pa.large_string()),
        "l": [STRINGS[i:i + 3] for i in range(n)],
        "m": [{"k": s, "t": [s, None]} for s in STRINGS],
    })
    piped_as_exact(tmp_path, table, fmt)
    for name in ("s", "n"):
        piped_as_exact(tmp_path, table.select([name]), fmt)


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_the_converter_prints_floats_as_python(tmp_path, exe, fmt):
    rnd = random.Random(11)
    values = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30) for _ in range(20_000)]
    values += [round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 12)) for _ in range(20_000)]
    values += [rnd.randint(-10 ** 15, 10 ** 15) / 10 ** rnd.randint(0, 22) for _ in range(20_000)]
    values += [float(rnd.randint(-2 ** 53, 2 ** 53)) for _ in range(2_000)]
    edges = [0.0, -0.0, 1e-4, 0.0001, 9.999999999999999e-05, 1e15, 999999999999999.9, 1e16, 9999999999999998.0,
             1125899906842624.0, 1125899906842623.5, 0.09999999999999999, 0.1, 0.3, 0.1 + 0.2, 9.999999999999998,
             99.99999999999999, 562949953421312.25, 2.0 ** -24, 5e-324, 2.2250738585072014e-308,
             1.7976931348623157e308, float("nan"), float("inf"), -float("inf"), 1 / 3, 2 / 3, 0.5, 1.5, 2.5]
    for k in range(-20, 20):  # every power of ten, and its neighbours
        p = 10.0 ** k
        edges += [p, math.nextafter(p, 0), math.nextafter(p, math.inf)]
    values += edges + [-v for v in edges]
    table = pa.table({"v": values, "w": pa.array(values, pa.float32()), "l": [[v, v] for v in values]})
    piped_as_exact(tmp_path, table, fmt, row_group_size=10_000)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_converter_writes_every_integer_width_and_nested_value(tmp_path, exe, fmt):
    ints = {}
    for bits in (8, 16, 32, 64):
        for signed in (True, False):
            t = getattr(pa, f"{'' if signed else 'u'}int{bits}")()
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
            vals = [lo, hi, 0, 1, None, 9, 10, 99, 100, lo + 1, hi - 1] + [10 ** k for k in range(20) if 10 ** k <= hi]
            vals += [10 ** k - 1 for k in range(1, 21) if 10 ** k - 1 <= hi]
            ints[f"{'i' if signed else 'u'}{bits}"] = pa.array((vals * 30)[:120], t)
    n = 120
    point = pa.struct([("x", pa.float64()), ("tags", pa.list_(pa.string())), ("in", pa.struct([("b", pa.bool_())]))])
    nested = {
        "struct": pa.array([{"x": i / 4, "tags": ["a", None] if i % 2 else [], "in": {"b": i % 3 == 0}} if i % 5
                            else None for i in range(n)], point),
        "list_of_structs": pa.array([[{"x": 1.5, "tags": None, "in": None}, None] if i % 4 else None
                                     for i in range(n)], pa.list_(point)),
        "list_of_lists": pa.array([[[i, None], [], None] if i % 3 else [] for i in range(n)],
                                  pa.large_list(pa.list_(pa.int16()))),
        "nulls_in_list": pa.array([[None, None] for _ in range(n)], pa.list_(pa.null())),
        "bools": pa.array([[True, False, None]] * n, pa.list_(pa.bool_())),
        "dict": pa.array([f"v{i % 4}" if i % 7 else None for i in range(n)]).dictionary_encode(),
        "f32": pa.array([i / 3 if i % 9 else float("nan") for i in range(n)], pa.float32()),
    }
    table = pa.table({**ints, **nested})
    piped_as_exact(tmp_path, table, fmt, row_group_size=17)
    piped_as_exact(tmp_path, table.select(["struct"]), fmt, row_group_size=17)


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_columns_of_other_types_are_encoded_before_they_are_sent(tmp_path, exe, fmt):
    n = 40
    table = pa.table({
        "id": list(range(n)),
        "ts": [datetime.datetime(2020, 1, 2, 3, 4, i) for i in range(n)],
        "d": [datetime.date(2020, 1, 2), None] * (n // 2),
        "dec": pa.array([decimal.Decimal("1.25"), None] * (n // 2), pa.decimal128(5, 2)),
        "bin": [b"\x00\xff,", None] * (n // 2),
        "map": pa.array([[("k", 1), ("j", None)], None] * (n // 2), pa.map_(pa.string(), pa.int64())),
        "half": pa.array([1.5, None] * (n // 2), pa.float16()),
        "lts": pa.array([[datetime.date(2021, 5, 6)]] * n, pa.list_(pa.date32())),
        "s": ["a,b", None] * (n // 2),
    })
    piped_as_exact(tmp_path, table, fmt, row_group_size=9)
    piped_as_exact(tmp_path, table.select(["ts"]), fmt)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_arrays_that_start_inside_their_buffers(tmp_path, exe, fmt):
    # pyarrow reads parquet into arrays of their own; sliced ones start at an offset inside their buffers
    table = varied_table().drop_columns(["ts", "d", "bin"])
    batches = [b for start in range(0, table.num_rows, 3) for b in table.slice(start, 3).to_batches()]
    assert any(b.column(0).offset for b in batches)
    whole = table.combine_chunks().to_batches()[0]
    batches[2:2] = [whole.slice(0, 0), whole.slice(5, 0)]  # batches without rows, one of them at an offset
    piped = tmp_path / f"piped.{fmt}"
    assert arrowpipe.batches_to_text(table.schema, iter(batches), piped, fmt, exe) == table.num_rows
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    convert(src, "parquet", tmp_path / f"exact.{fmt}", fmt, exact=True)
    assert piped.read_bytes() == (tmp_path / f"exact.{fmt}").read_bytes()


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_repeating_strings_are_read_as_dictionaries(tmp_path, monkeypatch, exe, fmt):
    words = ["", "a,b", 'q"uote', "tab\tnl\n", "Zoë ☃", "\x01", "plain"]
    n = 5_000
    table = pa.table({
        "w": [words[i % len(words)] if i % 11 else None for i in range(n)],
        "only": [words[i % 3] for i in range(n)],
        "u": [f"unique-{i}" for i in range(n)],
        "big": pa.array([words[i % 4] for i in range(n)], pa.large_string()),
    })
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=700)
    assert arrowpipe._repeating(pq.ParquetFile(src)) == ["w", "only", "big"]
    monkeypatch.setattr(arrowpipe, "SMALL_DICTIONARY", 1 << 30)
    assert arrowpipe._repeating(pq.ParquetFile(src)) == ["w", "only", "big"]  # "u": a dictionary as large as its values
    piped_as_exact(tmp_path, table, fmt, row_group_size=700)
    piped_as_exact(tmp_path, table.select(["only"]), fmt, row_group_size=700)  # an empty cell alone on its row


def test_many_row_groups_and_an_empty_file(tmp_path, monkeypatch, exe):
    monkeypatch.setattr(arrowpipe, "ROWS", 1000)
    rows = [{"id": i, "v": i / 8, "s": f"r{i}", "n": None if i % 3 else [i]} for i in range(30_000)]
    table = pa.Table.from_pylist(rows)
    for fmt in ("json", "ndjson", "csv"):
        piped_as_exact(tmp_path, table, fmt, row_group_size=777)
        piped_as_exact(tmp_path, table.slice(0, 0), fmt)


def test_text_that_is_not_utf8_is_left_to_the_exact_path(tmp_path, exe):
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(bytes([0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])),
                                                 pa.py_buffer(b"a\xff\xc3\xa9")])
    cut = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(bytes([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0])),
                                                 pa.py_buffer("é".encode())])  # each half of one character
    for arr in (bad, cut):
        src = tmp_path / "in.parquet"
        pq.write_table(pa.table({"id": [1, 2], "s": arr}), src)
        with pytest.raises(arrowpipe.Fallback, match="not UTF-8"):
            arrowpipe.parquet_to_text(src, tmp_path / "out.ndjson", "ndjson")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_converter_that_stops_leaves_no_output(tmp_path, monkeypatch, exe):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": list(range(50_000))}), src)
    monkeypatch.setattr(arrowpipe, "ROWS", 1000)
    real = arrowpipe._message
    sent = []

    def message(pa_, pc, batch, plan, fmt):  # the stream breaks off in the 10th batch: the converter refuses it
        msg = real(pa_, pc, batch, plan, fmt)
        sent.append(1)
        return msg[:1] + [b"\x00" * 8] if len(sent) == 10 else msg

    monkeypatch.setattr(arrowpipe, "_message", message)
    with pytest.raises(arrowpipe.Fallback):
        arrowpipe.parquet_to_text(src, tmp_path / "out.csv", "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]

    def broken(*a):  # pyarrow fails while reading: the converter, cut off, deletes what it wrote
        raise pa.ArrowInvalid("a broken page")

    monkeypatch.setattr(arrowpipe, "_message", lambda *a: real(*a) if len(sent.append(1) or sent) < 15 else broken())
    with pytest.raises(arrowpipe.Fallback, match="a broken page"):
        arrowpipe.parquet_to_text(src, tmp_path / "out.csv", "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_convert_from_parquet_goes_through_the_converter(tmp_path, monkeypatch, exe):
    src = tmp_path / "in.parquet"
    pq.write_table(varied_table(), src)
    calls = converter_calls(monkeypatch)
    for fmt in ("json", "ndjson", "csv"):
        convert(src, "parquet", tmp_path / f"out.{fmt}", fmt)
        convert(src, "parquet", tmp_path / f"exact.{fmt}", fmt, exact=True)
        assert (tmp_path / f"out.{fmt}").read_bytes() == (tmp_path / f"exact.{fmt}").read_bytes()
    assert calls == ["json", "ndjson", "csv"]


# ---------------------------------------------------------------------------
# json and ndjson to parquet


def write_source(path: Path, fmt: str, rows: list) -> Path:
    if fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def fast_and_exact(tmp_path: Path, src: Path, fmt: str):
    """(the columnar path's count, schema and rows, or "fallback"; the exact path's)."""
    try:
        n = arrowio.json_to_parquet(src, fmt, tmp_path / "fast.parquet")
        t = pq.read_table(tmp_path / "fast.parquet")
        fast = (n, t.schema, t.to_pylist())
    except arrowio.Fallback:
        fast = "fallback"
    n = convert(src, fmt, tmp_path / "exact.parquet", "parquet", exact=True)
    t = pq.read_table(tmp_path / "exact.parquet")
    return fast, (n, t.schema, t.to_pylist())


WIDE = 3000  # records past the first batch, with BATCH made small
CASES = {
    "plain": [{"a": i, "b": str(i), "c": i / 3, "d": [i, i + 1], "e": {"x": i, "y": None}, "f": None, "g": i % 2 == 0,
               "ts": "2024-05-01", "s": "q\"\\\n\u00e9\u2028\x01 🚀"} for i in range(WIDE)],
    "a key first seen later": [{"a": 1}] * WIDE + [{"a": 2, "b": 3}],
    "a float in a column of integers": [{"a": 1}] * WIDE + [{"a": 2.5}],
    "an integer in a column of floats": [{"a": 1.5}] * WIDE + [{"a": 2}],
    "a column null at first": [{"a": None}] * WIDE + [{"a": "x"}],
    "objects with other keys": [{"m": {"a": 1}}] * WIDE + [{"m": {"b": 2}}] * WIDE,
    "lists empty at first": [{"l": []}] * WIDE + [{"l": ["x"]}],
    "lists of objects": [{"l": [{"a": 1}, {"b": [1.5, None]}]}] * 10 + [{"l": [{"c": True}]}] * WIDE,
    "keys in their first-seen order": [{"b": 1, "a": 2}, {"c": 1, "a": 3}, {"é": 1, "a,b": 2, 'q"': 3}],
    "dates stay text": [{"d": "x"}] * WIDE + [{"d": "2024-01-01"}],
    "large floats": [{"v": random.Random(i).uniform(-1, 1) * 10 ** random.Random(i).randint(-300, 300)}
                     for i in range(WIDE)],
    "the limits of 64 bits": [{"a": 2 ** 63 - 1, "b": -2 ** 63}],
    "keys missing here and there": [{"a": i, "b": {"x": i, "y": [i]}} if i % 3 else {"b": {"y": None}}
                                    for i in range(WIDE)] + [{"c": 1, "a": None}],
    "nulls inside and instead of nested values": [{"l": [None, 1.5, None], "m": None, "n": [None]},
                                                  {"l": None, "m": {"a": None, "b": [None, {"c": "x"}]}, "n": []}]
                                                 * WIDE,
    "booleans": [{"b": i % 3 == 0, "l": [True, None, False]} for i in range(WIDE)],
    "widening twice, late": [{"a": 1, "m": {"x": 1}}] * WIDE + [{"a": 1.5, "m": {"x": 2, "y": "s"}}]
                            + [{"a": 2, "m": {"x": 2.5}, "z": [1]}],
    "objects without keys among others": [{"o": {"p": [{}]}}] * WIDE + [{"o": {"p": [{"q": 1}]}}],
    "lists of lists": [{"l": [[1, 2], [], None, [3]]}] * 10 + [{"l": [[0.5]]}] * WIDE,
    "an integer of 2**53 among floats": [{"a": 0.5}, {"a": 2 ** 53}, {"a": -2 ** 53}],
    # the exact path keeps these as JSON text or needs its own reading: the columnar path steps aside
    "a number and a string": [{"a": 1}] * WIDE + [{"a": "x"}],
    "an integer beyond 64 bits": [{"a": 1.5}] * WIDE + [{"a": 2 ** 64}],
    "an integer of 2**63": [{"a": 1}] * WIDE + [{"a": 2 ** 63}],
    "an integer beyond 2**53 among floats": [{"a": 1}] * WIDE + [{"a": 0.5}, {"a": 2 ** 53 + 1}],
    "an object without keys deep down": [{"o": {"p": [{}]}}] * WIDE + [{"o": {"p": []}}],
    "an object without keys": [{"o": {}}],
    "a boolean and a number": [{"a": True}, {"a": 1}],
    "tricky": TRICKY,
}
MUST_FALL_BACK = {"a number and a string", "an integer beyond 64 bits", "an object without keys",
                  "a boolean and a number", "tricky", "an integer of 2**63", "an integer beyond 2**53 among floats",
                  "an object without keys deep down"}


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
@pytest.mark.parametrize("case", list(CASES))
def test_json_to_parquet_gives_the_exact_table_or_falls_back(tmp_path, monkeypatch, exe, fmt, case):
    monkeypatch.setattr(arrowio, "BATCH", 100)  # many batches, and types that widen after the first
    src = write_source(tmp_path / f"in.{fmt}", fmt, CASES[case])
    fast, exact = fast_and_exact(tmp_path, src, fmt)
    if case in MUST_FALL_BACK:
        assert fast == "fallback"
    else:
        assert fast == exact
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("content", [
    '{"a": 1, "a": 2}\n',            # a key twice
    '{"a": "\\ud800"}\n',            # a lone surrogate
    '{"a": NaN}\n',                  # not JSON
    '{"a": 1}\n[1]\n',               # not an object
    '',                              # no records
])
def test_what_the_exact_path_decides_is_left_to_it(tmp_path, exe, content):
    src = tmp_path / "in.ndjson"
    src.write_text(content)
    with pytest.raises(arrowio.Fallback):
        arrowio.json_to_parquet(src, "ndjson", tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson"]


def converter_modes(monkeypatch) -> list:
    """The arguments after the output path (the mode and what follows) of every compiled converter started
    from now on."""
    import subprocess

    modes = []
    real = subprocess.Popen

    def spy(args, *a, **kw):
        modes.append(args[4:])
        return real(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)
    return modes


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_the_converter_sends_the_columns_and_starts_again_once_for_wider_types(tmp_path, monkeypatch, exe, fmt):
    monkeypatch.setattr(arrowio, "BATCH", 100)
    rows = CASES["plain"] + [{"a": 0.5, "new": {"k": [1]}}] + CASES["plain"][:500] + [{"e": {"z": True}}]
    src = write_source(tmp_path / f"in.{fmt}", fmt, rows)
    modes = converter_modes(monkeypatch)
    fast, exact = fast_and_exact(tmp_path, src, fmt)
    assert fast == exact
    assert [m[0] for m in modes] == ["arrow", "arrow"]  # the second with the whole file's types
    assert modes[0][1] == "100" and len(modes[0]) == 2 and len(modes[1]) == 3
    schema = exact[1]
    assert schema.names[-1] == "new" and schema.field("a").type == pa.float64()
    assert schema.field("e").type.names == ["x", "y", "z"]


NUMBERS_AND_TEXT = (
    '{"i": -0, "f": -0.0, "e": 1E5, "g": 1.5e-7, "h": 0.1234567890123456789, "t": 1e-300, "u": 123456789012345678,'
    ' "v": 9007199254740993.0, "w": 2.5E+3, "x": 0.1, "s": "\\u00e9\\n\\"\\\\ \\ud83d\\ude80 \\u2028 \\t",'
    ' "\\u00e9t\\u00e9": "\\/", "k": "é"}\n'
    '  {"i": 7, "f": 2, "e": 100, "g": -1, "h": 3, "t": 0, "u": -9223372036854775808,'
    ' "v": 1.7976931348623157e308, "w": 5e-324, "x": -1E-2, "s": "", "été": "\\u0000", "k": null}  \r\n'
    '\n'
    '\t{"k": "last", "x": 1}'
)


def test_number_forms_escapes_and_blank_lines_read_as_the_exact_path_reads_them(tmp_path, monkeypatch, exe):
    monkeypatch.setattr(arrowio, "BATCH", 1)
    src = tmp_path / "in.ndjson"
    src.write_text(NUMBERS_AND_TEXT, encoding="utf-8")
    fast, exact = fast_and_exact(tmp_path, src, "ndjson")
    assert fast == exact
    assert exact[2][0]["s"] == 'é\n"\\ 🚀 \u2028 \t' and exact[2][1]["été"] == "\x00"


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_records_across_the_converters_read_buffers_and_longer_than_one(tmp_path, monkeypatch, exe, fmt):
    # the converter reads 8 MB at a time: records cut at a buffer's end are parsed again once more is read,
    # and one longer than a buffer makes it grow
    monkeypatch.setattr(arrowio, "BATCH", 700)
    rnd = random.Random(5)
    rows = [{"i": i, "s": "é" * rnd.randint(0, 3000), "l": [[k, None, k / 4] for k in range(rnd.randint(0, 40))],
             "m": {"t": "x" * rnd.randint(0, 900), "n": [{"k": str(k)} for k in range(rnd.randint(0, 9))] or None}}
            for i in range(5000)]
    rows.insert(2500, {"i": -1, "s": "long " * (2 << 20), "l": [], "m": {"t": "", "n": [{"k": "q"}] * 50_000}})
    src = write_source(tmp_path / f"in.{fmt}", fmt, rows)
    assert src.stat().st_size > 24 << 20
    fast, exact = fast_and_exact(tmp_path, src, fmt)
    assert fast == exact


floats = st.floats(allow_nan=False, allow_infinity=False)
typed_records = st.lists(st.fixed_dictionaries({}, optional={
    "i": st.none() | st.integers(-2 ** 63, 2 ** 63 - 1),
    "f": st.none() | floats | st.integers(-2 ** 53, 2 ** 53),
    "s": st.none() | st.text(max_size=6),
    "b": st.none() | st.booleans(),
    "l": st.none() | st.lists(st.none() | st.integers(-10 ** 6, 10 ** 6) | floats, max_size=3),
    "o": st.none() | st.fixed_dictionaries({}, optional={"x": st.none() | st.text(max_size=3),
                                                       "y": st.lists(st.booleans(), max_size=2)}),
}), min_size=1, max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=typed_records, batch=st.integers(1, 7), fmt=st.sampled_from(["json", "ndjson"]))
def test_property_json_to_parquet_equals_exact(tmp_path_factory, monkeypatch, exe, rows, batch, fmt):
    monkeypatch.setattr(arrowio, "BATCH", batch)
    tmp_path = tmp_path_factory.mktemp("p")
    src = write_source(tmp_path / f"in.{fmt}", fmt, rows)
    fast, exact = fast_and_exact(tmp_path, src, fmt)
    if fast == "fallback":  # only where the exact path keeps objects without keys as text, or has no column
        schema = exact[1]
        assert not schema.names or ("o" in schema.names and schema.field("o").type == pa.string())
    else:
        assert fast == exact
    shutil.rmtree(tmp_path)


def test_only_columns_whose_values_repeat_get_a_dictionary(tmp_path, exe):
    rows = [{"id": i, "kind": "ab"[i % 2], "m": {"u": "°C", "n": i / 7}, "tags": ["x"] if i % 3 else []}
            for i in range(30_000)]
    src = write_source(tmp_path / "in.ndjson", "ndjson", rows)
    fast, exact = fast_and_exact(tmp_path, src, "ndjson")
    assert fast == exact
    group = pq.ParquetFile(tmp_path / "fast.parquet").metadata.row_group(0)
    dictionary = {group.column(i).path_in_schema for i in range(group.num_columns)
                  if "RLE_DICTIONARY" in group.column(i).encodings}
    assert dictionary == {"kind", "m.u", "tags.list.element"}


@pytest.mark.parametrize("bad", [
    "null\n" * 100_000,                  # not objects
    '{"a": 1} {"a": 2}\n',               # two objects on a line
    '{"a":\n 1}\n',                      # one object over two lines
    '{"a": NaN}\n',                      # not JSON
    "[1]\n",                              # not an object
])
def test_ndjson_the_exact_path_refuses_falls_back(tmp_path, monkeypatch, exe, bad):
    monkeypatch.setattr(arrowio, "BATCH", 100)
    src = tmp_path / "in.ndjson"
    src.write_text('{"a": 1}\n' * 3000 + bad + '{"a": 2}\n' * 3000)
    with pytest.raises(arrowio.Fallback):
        arrowio.json_to_parquet(src, "ndjson", tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson"]


def test_convert_of_a_large_json_goes_through_the_columns_and_errors_stay_exact(tmp_path, monkeypatch, exe):
    rows = [{"id": i, "v": i / 7, "tags": ["a"] if i % 2 else [], "m": {"k": str(i)}} for i in range(30_000)]
    src = write_source(tmp_path / "in.json", "json", rows)
    calls = []
    real = arrowio.json_to_parquet
    monkeypatch.setattr(arrowio, "json_to_parquet", lambda *a: calls.append(a) or real(*a))
    assert convert(src, "json", tmp_path / "out.parquet", "parquet") == len(rows)
    assert calls
    convert(src, "json", tmp_path / "exact.parquet", "parquet", exact=True)
    got, want = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "exact.parquet")
    assert got.schema == want.schema and got.to_pylist() == want.to_pylist()
    bad = tmp_path / "bad.json"
    bad.write_text(src.read_text().rstrip()[:-1] + ", 7]")
    with pytest.raises(MalformedDataError, match="bad.json record 30001: expected an object, found a number"):
        convert(bad, "json", tmp_path / "b.parquet", "parquet")
    assert not (tmp_path / "b.parquet").exists()


# ---------------------------------------------------------------------------
# Across an edge, through the command line


def edge(ws: Path, seed: str, src_fmt: str, dst_fmt: str) -> Path:
    return write_pipeline(ws, {"version": 1, "name": "pq", "nodes": [
        {"id": "make", "runtime": "command", "command": ["cp", seed, f"rows.{src_fmt}"],
         "inputs": [{"name": "seed", "file": seed, "format": src_fmt, "path": seed}],
         "outputs": [{"name": "rows", "file": f"rows.{src_fmt}", "format": src_fmt}]},
        {"id": "take", "runtime": "command", "command": ["cp", f"rows.{dst_fmt}", f"seen.{dst_fmt}"],
         "inputs": [{"name": "rows", "file": f"rows.{dst_fmt}", "format": dst_fmt}],
         "outputs": [{"name": "seen", "file": f"seen.{dst_fmt}", "format": dst_fmt}]},
    ], "edges": [{"from": "make.rows", "to": "take.rows"}]})


def test_parquet_across_an_edge_through_the_cli(workspace, exe):
    pq.write_table(varied_table(), workspace / "seed.parquet")
    r = pipeloom_cmd("run", edge(workspace, "seed.parquet", "parquet", "csv").name, "--json", cwd=workspace)
    assert r.returncode == 0, r.stderr
    seen = Path(json.loads(r.stdout)["nodes"]["take"]["outputs"]["seen"])
    convert(workspace / "seed.parquet", "parquet", workspace / "want.csv", "csv", exact=True)
    assert seen.read_bytes() == (workspace / "want.csv").read_bytes()

    rows = [{"id": i, "v": i / 7, "m": {"k": str(i)}} for i in range(30_000)]
    write_source(workspace / "seed.ndjson", "ndjson", rows)
    r = pipeloom_cmd("run", edge(workspace, "seed.ndjson", "ndjson", "parquet").name, "--json", cwd=workspace)
    assert r.returncode == 0, r.stderr
    seen = Path(json.loads(r.stdout)["nodes"]["take"]["outputs"]["seen"])
    assert pq.read_table(seen).to_pylist() == rows

    with open(workspace / "seed.ndjson", "a") as f:
        f.write('{"id": 1, "id": 2}\n{"id": oops}\n')
    r = pipeloom_cmd("run", edge(workspace, "seed.ndjson", "ndjson", "parquet").name, "--json", cwd=workspace)
    assert r.returncode == 1
    take = json.loads(r.stdout)["nodes"]["take"]
    assert take["status"] == "failed"
    assert take["message"].startswith("edge make.rows → take.rows (ndjson → parquet): rows.ndjson line 30002")
