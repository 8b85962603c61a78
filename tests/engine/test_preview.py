"""Paged previews of real files, small and large."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from server.engine import preview as preview_mod
from server.engine.errors import NotFoundError, PipeloomError
from server.engine.preview import PreviewError, hex_dump, preview_file

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RECORD = ('{"id": %d, "sensor": "sensor-%d", "value": %d.5, "ok": %s, "tags": ["a", "b"], '
          '"meta": {"unit": "\\u00b0C", "zone": "Zo\\u00eb"}}')


def write_records(path: Path, fmt: str, n: int) -> Path:
    """n small records as a JSON array, ndjson or csv (ids 0..n-1)."""
    rows = (RECORD % (i, i % 7, i, "true" if i % 2 else "false") for i in range(n))
    if fmt == "json":
        path.write_text("[\n" + ",\n".join(rows) + "\n]\n", encoding="utf-8")
    elif fmt == "ndjson":
        path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "sensor", "value"])
            w.writerows([i, f"sensor-{i % 7}", f"{i}.5"] for i in range(n))
    return path


def strict_json(result: dict) -> dict:
    """Every preview must be valid strict JSON, as a browser parses it."""
    json.loads(json.dumps(result, allow_nan=False))
    return result


# ---------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize("offset,limit", [(-1, 50), (0, -1), (0, 1001), ("3", 50), (0, 2.5), (True, 50)])
def test_bad_offset_or_limit_raise_preview_error(tmp_path, offset, limit):
    path = write_records(tmp_path / "a.json", "json", 3)
    with pytest.raises(PreviewError) as info:
        preview_file(path, "json", offset, limit)
    assert isinstance(info.value, PipeloomError)
    assert ("offset" if offset != 0 else "limit") in str(info.value)


def test_unknown_format_and_missing_file(tmp_path):
    path = write_records(tmp_path / "a.json", "json", 3)
    with pytest.raises(PreviewError, match="cannot preview format `xml`; known formats: json, ndjson"):
        preview_file(path, "xml")
    with pytest.raises(NotFoundError, match="missing.json: no such file"):
        preview_file(tmp_path / "missing.json", "json")


def test_limit_of_a_thousand_is_allowed(tmp_path):
    path = write_records(tmp_path / "a.ndjson", "ndjson", 1500)
    r = preview_file(path, "ndjson", 0, 1000)
    assert len(r["items"]) == 1000 and r["truncated"] is True and r["total"] == 1500


# ---------------------------------------------------------------------------
# Tables


def test_json_array_pages(tmp_path):
    path = write_records(tmp_path / "a.json", "json", 120)
    first = strict_json(preview_file(path, "json", 0, 50))
    assert first["kind"] == "table" and first["format"] == "json"
    assert [r["id"] for r in first["items"]] == list(range(50))
    assert first["columns"] == ["id", "sensor", "value", "ok", "tags", "meta"]
    assert first["items"][1] == {"id": 1, "sensor": "sensor-1", "value": 1.5, "ok": True, "tags": ["a", "b"],
                                 "meta": {"unit": "°C", "zone": "Zoë"}}
    assert first["total"] == 120 and first["truncated"] is True
    assert first["size"] == path.stat().st_size
    assert "total_estimate" not in first
    last = preview_file(path, "json", 100, 50)
    assert [r["id"] for r in last["items"]] == list(range(100, 120))
    assert last["total"] == 120 and last["truncated"] is False
    exact = preview_file(path, "json", 70, 50)
    assert len(exact["items"]) == 50 and exact["truncated"] is False
    past = preview_file(path, "json", 500, 10)
    assert past["items"] == [] and past["total"] == 120 and past["truncated"] is False
    none = preview_file(path, "json", 0, 0)
    assert none["items"] == [] and none["truncated"] is True and none["total"] == 120


def test_json_array_of_scalars_and_mixed_items_become_value_rows(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[1, "two", null, [3], {"x": 4}]')
    r = strict_json(preview_file(path, "json"))
    assert r["kind"] == "table"
    assert r["items"] == [{"value": 1}, {"value": "two"}, {"value": None}, {"value": [3]}, {"x": 4}]
    assert r["columns"] == ["value", "x"]
    assert r["total"] == 5


def test_ndjson_pages_skip_blank_lines(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text('{"a": 1}\n\n{"a": 2, "b": "é"}\r\n   \n{"a": 3}\n7\n')
    r = strict_json(preview_file(path, "ndjson", 1, 2))
    assert r["items"] == [{"a": 2, "b": "é"}, {"a": 3}]
    assert r["columns"] == ["a", "b"]
    assert r["total"] == 4 and r["truncated"] is True
    assert preview_file(path, "ndjson", 3, 5)["items"] == [{"value": 7}]


def test_csv_pages_use_the_header_and_strings(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('\ufeffcity,temp,note\nOslo,-3,"two\nlines"\nRome,18\nLima,22,x\n', encoding="utf-8")
    r = strict_json(preview_file(path, "csv", 0, 2))
    assert r["kind"] == "table" and r["columns"] == ["city", "temp", "note"]
    assert r["items"] == [{"city": "Oslo", "temp": "-3", "note": "two\nlines"}, {"city": "Rome", "temp": "18", "note": ""}]
    assert r["total"] == 3 and r["truncated"] is True
    tail = preview_file(path, "csv", 2, 2)
    assert tail["items"] == [{"city": "Lima", "temp": "22", "note": "x"}] and tail["truncated"] is False


def test_parquet_pages_cross_row_groups(tmp_path):
    path = tmp_path / "a.parquet"
    table = pa.table({"n": list(range(2500)), "label": [f"row {i}" for i in range(2500)],
                      "when": pa.array([None] * 2499 + [1_700_000_000_000_000], type=pa.timestamp("us")),
                      "ratio": [float("nan")] + [0.5] * 2499})
    pq.write_table(table, path, row_group_size=1000)
    r = strict_json(preview_file(path, "parquet", 990, 25))
    assert r["kind"] == "table" and r["columns"] == ["n", "label", "when", "ratio"]
    assert [row["n"] for row in r["items"]] == list(range(990, 1015))
    assert r["total"] == 2500 and r["truncated"] is True
    assert preview_file(path, "parquet", 0, 1)["items"][0]["ratio"] == "NaN"
    last = preview_file(path, "parquet", 2499, 50)
    assert last["items"] == [{"n": 2499, "label": "row 2499", "when": "2023-11-14T22:13:20", "ratio": 0.5}]
    assert last["truncated"] is False


def test_damaged_parquet_reports_an_error(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 100)
    r = preview_file(path, "parquet")
    assert r["items"] == [] and "a.parquet" in r["error"]


def test_nan_in_ndjson_is_sent_as_text(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text('{"x": NaN, "y": -Infinity}\n')
    r = strict_json(preview_file(path, "ndjson"))
    assert r["items"] == [{"x": "NaN", "y": "-Infinity"}]


# ---------------------------------------------------------------------------
# Malformed files give what could be read plus an error


def test_malformed_json_array_keeps_the_good_records(tmp_path):
    path = tmp_path / "raw_events.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": ]')
    r = preview_file(path, "json", 0, 50)
    assert r["items"] == [{"a": 1}, {"a": 2}]
    assert r["error"].startswith("raw_events.json record 3: invalid JSON")
    assert r["total"] is None


def test_malformed_line_is_reported_by_the_page_that_holds_it(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text('{"a": 1}\n' * 16 + "{oops\n")
    r = preview_file(path, "ndjson", 0, 5)
    # Counting lines does not parse them: pages before the bad line are clean.
    assert len(r["items"]) == 5 and r["truncated"] is True and r["total"] == 17
    assert "error" not in r
    r = preview_file(path, "ndjson", 10, 50)
    assert len(r["items"]) == 6
    assert r["error"].startswith("events.ndjson line 17: invalid JSON")


def test_malformed_json_after_the_page_is_reported_by_the_count(tmp_path):
    path = tmp_path / "raw_events.json"
    path.write_text("[" + ", ".join('{"a": %d}' % i for i in range(30)) + ", {oops}]")
    r = preview_file(path, "json", 0, 5)
    assert [x["a"] for x in r["items"]] == [0, 1, 2, 3, 4] and r["truncated"] is True
    assert r["total"] is None and r["error"].startswith("raw_events.json record 31: invalid JSON")


def test_malformed_csv_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    r = preview_file(path, "csv")
    assert r["items"] == [{"a": "1", "b": "2"}]
    assert r["error"] == "rows.csv line 3: 3 fields, but the header has 2"


def test_empty_files(tmp_path):
    for name, fmt in [("e.json", "json"), ("e.ndjson", "ndjson"), ("e.csv", "csv"), ("e.txt", "text"),
                      ("e.bin", "binary")]:
        (tmp_path / name).write_bytes(b"")
        r = strict_json(preview_file(tmp_path / name, fmt))
        assert r["items"] == [] and r["size"] == 0 and r["truncated"] is False
        if fmt == "json":
            assert r["kind"] == "tree" and "empty file" in r["error"]
        elif fmt == "binary":
            assert r["hex"] == ""
        else:
            assert r["total"] == 0 and "error" not in r
    (tmp_path / "e2.json").write_text("[]")
    r = preview_file(tmp_path / "e2.json", "json")
    assert r["kind"] == "table" and r["items"] == [] and r["total"] == 0 and r["columns"] == []


# ---------------------------------------------------------------------------
# Trees


def test_small_json_document_is_one_tree(tmp_path):
    doc = {"threshold": 3.5, "sensors": ["alpha", "beta"], "nested": {"deep": [1, {"x": None}]}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc, indent=2))
    r = strict_json(preview_file(path, "json"))
    assert r["kind"] == "tree" and r["mode"] == "document"
    assert r["items"] == [doc] and r["total"] == 1 and r["truncated"] is False
    assert preview_file(path, "json", 1, 10)["items"] == []


def test_invalid_small_json_document_names_the_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "a": 1,\n  "b": tru\n}')
    r = preview_file(path, "json")
    assert r["kind"] == "tree" and r["items"] == []
    assert r["error"].startswith("config.json line 3 column")


def test_large_json_object_pages_its_entries_and_clips_huge_values(tmp_path):
    path = tmp_path / "big.json"
    filler = "x" * 1000
    with open(path, "w") as f:
        f.write('{"huge": [' + ",".join(str(i) for i in range(200_000)) + "],\n")
        f.write(",\n".join(f'"k{i}": {{"i": {i}, "s": "{filler}"}}' for i in range(3000)))
        f.write("}\n")
    assert path.stat().st_size > preview_mod.TREE_WHOLE_BYTES
    r = strict_json(preview_file(path, "json", 0, 3))
    assert r["kind"] == "tree" and r["mode"] == "entries"
    huge = r["items"][0]
    assert huge["key"] == "huge" and huge["clipped"] is True
    assert huge["value"] == list(range(preview_mod.VALUE_NODES))
    assert r["items"][1] == {"key": "k0", "value": {"i": 0, "s": filler}}
    assert r["total"] == 3001 and r["truncated"] is True
    r = preview_file(path, "json", 2999, 10)
    assert [e["key"] for e in r["items"]] == ["k2998", "k2999"] and r["truncated"] is False


# ---------------------------------------------------------------------------
# Text and binary


def test_text_pages_are_lines(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"first\r\nsecond\n\nfourth \xff bad byte\nlast line without newline")
    r = strict_json(preview_file(path, "text", 0, 3))
    assert r["kind"] == "text" and r["items"] == ["first", "second", ""]
    assert r["total"] == 5 and r["truncated"] is True
    r = preview_file(path, "text", 3, 3)
    assert r["items"] == ["fourth \ufffd bad byte", "last line without newline"] and r["truncated"] is False


def test_very_long_text_lines_are_clipped(tmp_path):
    path = tmp_path / "minified.txt"
    path.write_text("a" * 1_000_000 + "\nshort\n")
    tracemalloc.start()
    r = preview_file(path, "text")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r["items"] == ["a" * preview_mod.TEXT_LINE_BYTES + "…", "short"]
    assert r["clipped_lines"] == 1 and r["total"] == 2
    assert peak < 4 * 1024 * 1024


def test_hex_dump_layout():
    data = b"Hello, Pipeloom!\x00\x01\x02\xff\n~"
    assert hex_dump(data) == (
        "00000000  48 65 6c 6c 6f 2c 20 50  69 70 65 6c 6f 6f 6d 21  |Hello, Pipeloom!|\n"
        "00000010  00 01 02 ff 0a 7e                                 |.....~|"
    )
    assert hex_dump(b"abc", 0x200).startswith("00000200  61 62 63 ")


def test_binary_preview_matches_hexdump(tmp_path):
    if shutil.which("hexdump") is None:
        pytest.skip("the hexdump command is not installed")
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(2000)))
    r = strict_json(preview_file(path, "binary"))
    assert r["kind"] == "binary" and r["items"] == [] and r["size"] == 2000
    assert r["hex_bytes"] == 512 and r["truncated"] is True
    expected = subprocess.run(["hexdump", "-C", "-n", "512", str(path)], capture_output=True, text=True, check=True)
    # hexdump ends with a line holding only the final offset.
    assert r["hex"] == "\n".join(expected.stdout.splitlines()[:-1])
    r = preview_file(path, "binary", 1536, 50)
    expected = subprocess.run(["hexdump", "-C", "-s", "1536", str(path)], capture_output=True, text=True, check=True)
    assert r["hex"] == "\n".join(expected.stdout.splitlines()[:-1])
    assert r["hex_bytes"] == 464 and r["truncated"] is False


# ---------------------------------------------------------------------------
# Counting and estimates


def test_medium_file_is_counted_exactly_and_the_count_is_reused(tmp_path):
    path = write_records(tmp_path / "m.json", "json", 40_000)
    assert preview_mod.TREE_WHOLE_BYTES < path.stat().st_size < preview_mod.COUNT_FULL_BYTES
    r = preview_file(path, "json", 0, 10)
    assert r["total"] == 40_000 and "total_estimate" not in r
    assert r["bytes_read"] < path.stat().st_size // 10  # the page itself read little
    tracemalloc.start()
    again = preview_file(path, "json", 10, 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert again["total"] == 40_000 and [x["id"] for x in again["items"]] == list(range(10, 20))
    assert peak < 2 * 1024 * 1024
    # A new version of the file is counted afresh.
    write_records(path, "json", 40_001)
    assert preview_file(path, "json", 0, 10)["total"] == 40_001


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """A ~300 MB JSON array, plus ~100 MB ndjson and ~80 MB csv, written once for this module."""
    d = tmp_path_factory.mktemp("big")
    counts = {}
    for name, fmt, target in [("big.json", "json", 300_000_000), ("big.ndjson", "ndjson", 100_000_000),
                              ("big.csv", "csv", 80_000_000)]:
        path = d / name
        n = 0
        size = 0
        with open(path, "w", encoding="utf-8", newline="") as f:
            if fmt == "json":
                f.write("[\n")
            elif fmt == "csv":
                f.write("id,sensor,value,note\n")
            while size < target:
                if fmt == "csv":
                    chunk = "".join(f"{i:07d},sensor-{i % 7},{i}.5,\"reading, number {i:07d}\"\n"
                                    for i in range(n, n + 10_000))
                else:
                    rows = [RECORD % (i, i % 7, i, "true" if i % 2 else "false") for i in range(n, n + 10_000)]
                    chunk = (",\n" if fmt == "json" and n else "") + (",\n" if fmt == "json" else "\n").join(rows)
                    if fmt == "ndjson":
                        chunk += "\n"
                f.write(chunk)
                size += len(chunk)
                n += 10_000
            if fmt == "json":
                f.write("\n]\n")
        counts[fmt] = n
    yield d, counts
    for path in d.iterdir():  # pytest keeps recent temp dirs; do not keep half a gigabyte in them
        path.unlink()


def _measure(fn):
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.timeout(120)
def test_first_page_of_a_large_json_array_reads_little(big_files):
    d, counts = big_files
    path = d / "big.json"
    size = path.stat().st_size
    assert size > 290_000_000
    r, peak = _measure(lambda: preview_file(path, "json", 0, 50))
    strict_json(r)
    assert [x["id"] for x in r["items"]] == list(range(50))
    assert r["truncated"] is True and r["total"] is None
    assert r["bytes_read"] <= 512 * 1024
    assert peak < 4 * 1024 * 1024
    assert abs(r["total_estimate"] - counts["json"]) < counts["json"] * 0.15
    # A later page reads further, still in bounded memory.
    r, peak = _measure(lambda: preview_file(path, "json", 20_000, 100))
    assert [x["id"] for x in r["items"]] == list(range(20_000, 20_100))
    assert r["bytes_read"] < size // 20
    assert peak < 4 * 1024 * 1024
    assert abs(r["total_estimate"] - counts["json"]) < counts["json"] * 0.1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_first_page_of_large_line_files_reads_little(big_files, fmt):
    d, counts = big_files
    path = d / f"big.{fmt}"
    assert path.stat().st_size > preview_mod.COUNT_FULL_BYTES
    r, peak = _measure(lambda: preview_file(path, fmt, 0, 50))
    strict_json(r)
    ids = [int(x["id"]) for x in r["items"]]
    assert ids == list(range(50))
    assert r["truncated"] is True and r["total"] is None
    assert r["bytes_read"] <= 64 * 1024
    assert peak < 2 * 1024 * 1024
    assert abs(r["total_estimate"] - counts[fmt]) < counts[fmt] * 0.15
    if fmt == "csv":
        assert r["items"][3] == {"id": "0000003", "sensor": "sensor-3", "value": "3.5", "note": "reading, number 0000003"}


@pytest.mark.timeout(60)
def test_large_file_as_text_and_binary_reads_little(big_files):
    d, _ = big_files
    path = d / "big.json"
    r, peak = _measure(lambda: preview_file(path, "text", 0, 20))
    assert r["items"][0] == "[" and r["items"][1].startswith('{"id": 0,')
    assert r["bytes_read"] < 8 * 1024 and r["total"] is None and r["total_estimate"] > 1_000_000
    assert peak < 1024 * 1024
    r = preview_file(path, "binary")
    assert r["bytes_read"] == 512 and r["hex"].startswith("00000000  5b 0a 7b 22 69 64 22 3a")
