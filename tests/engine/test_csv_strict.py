"""CSV reading names the true physical line of a problem and refuses what it used to accept silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.engine import formats, preview
from server.engine.formats import MalformedDataError


def write_rows(path: Path, n: int, bad_line: int | None = None, bad: bytes = b"\xff") -> Path:
    lines = [b"id,name,note\n"]
    for i in range(2, n + 2):
        cell = b"caf\xc3\xa9 " + bad if i == bad_line else "café".encode()
        lines.append(b"%d,sensor-%d,%s\n" % (i, i, cell))
    path.write_bytes(b"".join(lines))
    return path


def read_all(path: Path) -> list[dict]:
    return list(formats.iter_records(path, "csv"))


def test_a_bad_byte_is_reported_on_its_own_line(tmp_path):
    p = write_rows(tmp_path / "rows.csv", 9000, bad_line=5001)
    with pytest.raises(MalformedDataError, match=r"rows\.csv line 5001: not valid UTF-8"):
        read_all(p)
    with pytest.raises(MalformedDataError, match=r"rows\.csv line 5001: not valid UTF-8"):
        formats.convert(p, "csv", tmp_path / "rows.json", "json")
    assert formats.check_records(p, "csv")[1].startswith("rows.csv line 5001:")
    page = preview.preview_file(p, "csv", offset=4990, limit=50)
    assert "line 5001" in page["error"] and len(page["items"]) == 5001 - 2 - 4990


def test_lines_count_physical_lines_across_quoted_newlines(tmp_path):
    p = tmp_path / "multi.csv"
    p.write_bytes(b'a,b\n1,"one\ntwo\nthree"\n2,x\n3,\xfe\n')
    with pytest.raises(MalformedDataError, match=r"multi\.csv line 6:"):
        read_all(p)


def test_a_quote_left_open_at_the_end_is_refused(tmp_path):
    p = tmp_path / "open.csv"
    p.write_text('a,b\n1,x\n2,"never closed\n3,y\n4,z\n')
    with pytest.raises(MalformedDataError, match=r"open\.csv line 3: a quoted field starts here and is never closed"):
        read_all(p)
    assert "line 3" in preview.preview_file(p, "csv")["error"]


def test_a_nul_byte_is_refused(tmp_path):
    p = tmp_path / "nul.csv"
    p.write_bytes(b"a,b\n1,x\n2,y\x00z\n")
    with pytest.raises(MalformedDataError, match=r"nul\.csv line 3: a NUL byte"):
        read_all(p)
    with pytest.raises(MalformedDataError, match=r"line 3"):
        formats.convert(p, "csv", tmp_path / "nul.ndjson", "ndjson")


def test_old_mac_line_ends_and_crlf_still_read(tmp_path):
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"a,b\r1,x\r2,y\r")
    assert read_all(mac) == [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b'\xef\xbb\xbfa,b\r\n1,"x\r\ny"\r\n2,z\r\n')
    assert read_all(crlf) == [{"a": "1", "b": "x\r\ny"}, {"a": "2", "b": "z"}]
    with pytest.raises(MalformedDataError, match=r"mac2\.csv line 3"):
        (tmp_path / "mac2.csv").write_bytes(b"a,b\r1,x\r2,\xff\r")
        read_all(tmp_path / "mac2.csv")


@pytest.mark.parametrize("carry_max", [None, 64])
def test_rows_match_the_csv_module_whatever_the_blocks(tmp_path, monkeypatch, carry_max):
    import csv
    import io
    import random

    from server.engine import csvread

    monkeypatch.setattr(csvread, "FIRST_BLOCK", 7)
    monkeypatch.setattr(csvread, "BLOCK", 61)
    if carry_max:  # a stray quote in an unquoted field upsets the quote count: the line-by-line reader takes over
        monkeypatch.setattr(csvread, "BLOCK_CARRY_MAX", carry_max)
    rng = random.Random(3)
    out = io.StringIO()
    w = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
    w.writerow(["a", "b", "c"])
    for i in range(400):
        w.writerow([str(i), "".join(rng.choice('xy,"\n é') for _ in range(rng.randrange(8))), "end"])
    text = out.getvalue() + 'stray,x"y,z\n' + "".join(f"{i},p,q\n" for i in range(50))
    p = tmp_path / "mix.csv"
    p.write_bytes(text.encode())
    expected = list(csv.DictReader(io.StringIO(text, newline="")))
    assert read_all(p) == expected
    p.write_bytes(text.encode() + b"7,\xff,z\n")
    bad_line = len(io.StringIO(text, newline="").readlines()) + 1
    with pytest.raises(MalformedDataError, match=rf"mix\.csv line {bad_line}:"):
        read_all(p)
