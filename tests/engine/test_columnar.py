"""csv to parquet through pyarrow, checked by the compiled scanner: the exact path's table, or a fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.engine import formats
from server.engine.data import columnar, native
from server.engine.formats import MalformedDataError, convert
from tests.conftest import require
from tests.engine.test_convert_exact import TRICKY, write_json

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module", autouse=True)
def exe():
    require(shutil.which("cargo") is not None, "the csv check needs the compiled scanner, built with cargo")
    assert native.binary()


def exact(src: Path, dst: Path):
    try:
        convert(src, "csv", dst, "parquet", exact=True)
    except MalformedDataError as exc:
        return ("error", str(exc))
    return pq.read_table(dst)


def test_tricky_csv_gives_the_exact_table(tmp_path):
    src = tmp_path / "in.csv"
    convert(write_json(tmp_path / "in.json", TRICKY * 50), "json", src, "csv", exact=True)
    assert columnar.csv_to_parquet(src, tmp_path / "c.parquet") == len(TRICKY) * 50
    got, want = pq.read_table(tmp_path / "c.parquet"), exact(src, tmp_path / "e.parquet")
    assert got.schema == want.schema and got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("content", [
    b'\xef\xbb\xbf\n\nid,text\r\n1,"a\r\nb"\r\n\r\n2,""\r\n3,"say ""hi"", ok"\r\n',
    b"id,text\n1,\n,\n",
    b"only\n\n\nx\n",
    b"a,b\n",
])
def test_csv_oddities_give_the_exact_table(tmp_path, content):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    columnar.csv_to_parquet(src, tmp_path / "c.parquet")
    got, want = pq.read_table(tmp_path / "c.parquet"), exact(src, tmp_path / "e.parquet")
    assert got.schema == want.schema and got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("content", [
    b"a,b\n1,\x002\n",          # NUL: pyarrow keeps it, the strict reader refuses it
    b'a,b\n"1"x,2\n',           # text after a closing quote
    b'a,b\n1,x"y"\n',           # a quote inside an unquoted field
    b"a,b\n1\n",                # a short row: padded by the strict reader
    b"a,b\n1,2,3\n",            # a long row
    b"a,b\n1,\xe9\n",           # not UTF-8
    b"a,a\n1,2\n",              # a column twice
    b'a,b\n1,"open\n',          # the file ends inside quotes
    b"a,b\r1,2\r",              # bare CR line ends
])
def test_what_the_strict_reader_decides_is_left_to_it(tmp_path, content):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    with pytest.raises(columnar.Fallback):
        columnar.csv_to_parquet(src, tmp_path / "c.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_convert_of_a_large_csv_goes_through_pyarrow_and_matches(tmp_path, monkeypatch):
    src = tmp_path / "in.csv"
    convert(write_json(tmp_path / "in.json", TRICKY * 5000), "json", src, "csv", exact=True)
    assert src.stat().st_size >= formats.NATIVE_MIN_BYTES
    calls = []
    real = columnar.csv_to_parquet
    monkeypatch.setattr(columnar, "csv_to_parquet", lambda *a: calls.append(a) or real(*a))
    n = convert(src, "csv", tmp_path / "c.parquet", "parquet")
    assert calls and n == len(TRICKY) * 5000
    want = exact(src, tmp_path / "e.parquet")
    assert pq.read_table(tmp_path / "c.parquet").to_pylist() == want.to_pylist()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(src.read_bytes() + b'1,"x"y\n')
    with pytest.raises(MalformedDataError, match=r"bad.csv line \d+: invalid CSV"):
        convert(bad, "csv", tmp_path / "b.parquet", "parquet")
