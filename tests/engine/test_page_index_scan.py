"""The compiled scanner, by each of its code paths (AVX2, SSE2 with and without POPCNT, plain SWAR), on files
that put every unusual case at every offset of its 64-byte steps: totals equal the Python scan's, and every
checkpoint is a true record boundary with the counts before it."""

from __future__ import annotations

import csv
import io
import json
import random
import threading
from pathlib import Path

import pytest

from tests.conftest import require
from server.engine.data import native, pageindex, scan

PATHS = ["avx2", "popcnt", "sse2", "plain"]  # PIPELOOM_SCAN_SIMD: the scanner takes the first its processor has
EVERY = [1, 64, 97, 4096]  # a checkpoint per stretch of this many bytes


@pytest.fixture(scope="module")
def scanner():
    require(native.binary() is not None, "the compiled scanner needs cargo")


def _pad(rnd: random.Random) -> str:
    return "x" * rnd.choice([0, 1, 7, 31, 62, 63, 64, 65, 127, 200])


def ndjson_files(rnd: random.Random) -> dict[str, bytes]:
    blanks = ["", " ", "\t", "\r", "  \t ", "\x0b", "\x0c", " \r"]
    lines = []
    for i in range(400):
        kind = rnd.random()
        if kind < 0.15:
            lines.append(rnd.choice(blanks))
        elif kind < 0.25:
            lines.append(rnd.choice([" ", "\t", "  "]) + json.dumps({"i": i, "lead": "space"}))
        else:
            lines.append(json.dumps({"i": i, "s": _pad(rnd) + "é中😀", "q": '"\\'}, ensure_ascii=rnd.random() < 0.5))
    ends = [rnd.choice(["\n", "\n", "\r\n"]) for _ in lines]
    body = "".join(ln + e for ln, e in zip(lines, ends))
    return {
        "mixed": body.encode(),
        "no-final-newline": body.rstrip("\r\n").encode(),
        "blank-last-line-without-newline": (body + "  \t").encode(),
        "bom": ("\ufeff" + body).encode(),
        "only-blank-lines": "".join(rnd.choice(blanks) + "\n" for _ in range(300)).encode(),
        "one-long-line": json.dumps({"s": "y" * 5000}).encode(),
        "empty": b"",
    }


def csv_files(rnd: random.Random) -> dict[str, bytes]:
    fields = ["plain", "", 'a "quoted" word', "comma, inside", "two\nlines", "crlf\r\ninside", '""', '"',
              "bare\rcr", "é中😀", "trailing space ", ",", "\n"]
    rows = [["id", "text", "note"]] + [[str(i), rnd.choice(fields), _pad(rnd)] for i in range(400)]

    def cell(f: str) -> str:  # quoted when it must be (a CR too, which the csv module leaves bare), or at random
        return '"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\r\n') or rnd.random() < 0.1 else f

    files = {}
    for term in ("\n", "\r\n"):
        text = "".join(",".join(cell(f) for f in row) + term for row in rows)
        name = "lf" if term == "\n" else "crlf"
        files[name] = text.encode()
        files[f"{name}-empty-lines"] = text.replace(f"{term}1", f"{term}{term}{term}1").encode()
        files[f"{name}-no-final-newline"] = text[: -len(term)].encode()
    files["bom"] = b"\xef\xbb\xbf" + files["lf"]
    files["header-only"] = b"a,b\n"
    files["empty"] = b""
    return files


def _string(rnd: random.Random) -> str:
    parts = ["plain", "] } [ {", ", , ,", '"', "\\", "\\\\", '\\"', "é中😀", "\n", _pad(rnd)]
    return "".join(rnd.choice(parts) for _ in range(rnd.randrange(0, 6)))


def _value(rnd: random.Random, depth: int = 0):
    r = rnd.random()
    if depth > 3 or r < 0.4:
        return rnd.choice([1, -2.5, True, None, _string(rnd), _string(rnd)])
    if r < 0.7:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))]
    return {_string(rnd): _value(rnd, depth + 1) for _ in range(rnd.randrange(0, 4))}


def json_files(rnd: random.Random) -> dict[str, bytes]:
    items = [{"i": i, "v": _value(rnd)} if i % 5 else _value(rnd) for i in range(300)]
    return {
        "compact": json.dumps(items, ensure_ascii=False).encode(),
        "spaced": json.dumps(items, separators=(" , ", " : ")).encode(),
        "pretty": json.dumps(items, indent=2, ensure_ascii=False).encode(),
        "bom-and-whitespace": b"\xef\xbb\xbf \n[ " + json.dumps(items)[1:-1].encode() + b" ]\n\n  ",
        "backslash-runs": json.dumps(["\\" * n + '"' + "x" * (n % 3) for n in range(200)]).encode(),
        "empty-array": b"[ \n ]\n",
        "one-item": b"[1]",
    }


def expected_ndjson(data: bytes, cp: tuple[int, int, int]) -> tuple[int, int, int]:
    record, byte, line = cp
    before = data[:byte]
    assert byte == 0 or before.endswith(b"\n"), "a checkpoint at a line start"
    return sum(1 for ln in before.split(b"\n")[:-1] if ln.strip()), byte, before.count(b"\n")


def csv_rows(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8").removeprefix("\ufeff")
    return [r for r in csv.reader(io.StringIO(text, newline="")) if r]


def check_csv(data: bytes, cp: tuple[int, int, int], rows: list[list[str]]) -> None:
    record, byte, line = cp
    before = data[:byte]
    assert len(csv_rows(before)) == record + 1, "rows before the checkpoint, the header among them"
    assert csv_rows(data[byte:]) == rows[record + 1:], "the rows from the checkpoint on"
    assert line == before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")


def check_json(data: bytes, cp: tuple[int, int, int], items: list) -> None:
    record, byte, line = cp
    assert line == 0
    assert json.loads(b"[" + data[byte:]) == items[record:], "the items from the checkpoint on"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fmt", ["ndjson", "csv", "json"])
def test_every_path_counts_as_the_python_scan_and_checkpoints_at_record_boundaries(
        tmp_path, monkeypatch, scanner, fmt, path):
    monkeypatch.setenv("PIPELOOM_SCAN_SIMD", path)
    files = {"ndjson": ndjson_files, "csv": csv_files, "json": json_files}[fmt](random.Random(fmt))
    for name, data in files.items():
        file = tmp_path / f"{name}.{fmt}"
        file.write_bytes(data)
        want = scan.scan_file(file, fmt)
        for every in EVERY:
            monkeypatch.setattr(scan, "BLOCK", every)
            cps: list = []
            got = pageindex.native_scan(file, fmt, cps.append, threading.Event())
            assert got is not None, f"{name}: left to Python"
            assert got.total == want.total, name
            if want.header_end:  # the csv module's own count (a CR inside quotes) does not say where the header ends
                assert (got.header_end, got.header_lines) == (want.header_end, want.header_lines), name
            assert [b for _, b, _ in cps] == sorted({b for _, b, _ in cps}), name
            assert all(b // every != a // every for (_, a, _), (_, b, _) in zip(cps, cps[1:])), "one per stretch"
            if fmt == "ndjson":
                for cp in cps:
                    assert cp == expected_ndjson(data, cp), (name, every, cp)
                starts = [0] * bool(data) + [i + 1 for i, c in enumerate(data[:-1]) if c == 10]
                assert len(cps) == len({s // every for s in starts}), (name, every)
            elif fmt == "csv":
                rows = csv_rows(data)
                for cp in cps:
                    check_csv(data, cp, rows)
                if rows:
                    check_csv(data, (0, got.header_end, got.header_lines), rows)
            else:
                items = json.loads(data.decode("utf-8-sig"))
                for cp in cps[:: max(1, len(cps) // 40)]:
                    check_json(data, cp, items)
            if every == 97 and want.total and want.total > 20:
                assert len(cps) > 5, name


@pytest.mark.parametrize("path", PATHS)
def test_what_the_readers_decide_is_left_to_python_on_every_path(tmp_path, monkeypatch, scanner, path):
    """A quote inside an unquoted field, a bare CR line end, a NUL, an open quote at the end, text after a
    closing quote; a JSON document that is not an array, or with content after it: the compiled scanner
    leaves each to the Python scan, wherever in the file it comes."""
    monkeypatch.setenv("PIPELOOM_SCAN_SIMD", path)
    good = ("id,text\n" + "".join(f'{i},"row {i}, quoted"\n' for i in range(30))).encode()
    cases = [(b'screen 1,15"\n', "csv"), (b"a,b\r1,2\n", "csv"), (b"a,\x00b\n", "csv"), (b'a,"open\n', "csv"),
             (b'a,"closed"x\n', "csv"), (b'{"a": [1, 2]}', "json"), (b"[1, 2] 3", "json"), (b"[1, 2", "json")]
    for i, (bad, fmt) in enumerate(cases):
        for at in (0, 1, 63, 64, 65, 200):
            if fmt == "csv":
                data = good[: good.index(b"\n", at) + 1] + bad  # whole rows, then the bad one
            else:
                data = bad.replace(b"[", b"[" + b" " * at, 1)
            file = tmp_path / f"bad{i}-{at}.{fmt}"
            file.write_bytes(data)
            assert pageindex.native_scan(file, fmt, lambda cp: None, threading.Event()) is None, (bad, at)
