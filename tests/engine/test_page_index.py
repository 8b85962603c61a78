"""Page indexes: pages read from a checkpoint equal pages read from the start, totals are exact, and an
index that is stale or corrupt is ignored and rebuilt."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pytest

from server.engine.data import native, pageindex, scan
from server.engine.data.preview import preview_file

TRICKY = [
    {"id": 0, "s": "plain"},
    {"id": 1, "s": "brackets ] } [ { and commas , , inside", "n": [1, [2, [3, {"x": "]"}]]]},
    {"id": 2, "s": 'escaped \\" quote " and \\\\ backslash \\', "o": {"a": {"b": {"c": []}}}},
    {"id": 3, "s": "newline\nin a string, \u00e9\u4e2d\U0001f600", "e": {}, "l": []},
    {"id": 4, "s": "\\\\\\\"", "t": True, "f": None},
    {"id": 5, "s": "", "q": '""', "c": ",", "z": '"]'},
] + [{"id": i, "s": "x" * (i % 23), "v": i * 0.5, "k": [i, {"y": "}"}]} for i in range(6, 400)]


@pytest.fixture(params=["native", "python"])
def small_blocks(monkeypatch, request):
    """Tiny scan blocks, so a small file has a checkpoint every few records; by the compiled scanner (when
    cargo is there) and by the Python one."""
    monkeypatch.setattr(scan, "BLOCK", 97)
    monkeypatch.setattr(scan, "SEEK_LIMIT", 97)
    if request.param == "python":
        monkeypatch.setenv(native.ENV, "0")
    elif native.binary() is None:
        pytest.skip("the compiled scanner needs cargo")
    return request.param


def build(tmp_path: Path, path: Path, fmt: str) -> pageindex.PageIndex:
    store = pageindex.PageIndexes(tmp_path / "index")
    got = store.get(path, fmt, "k")
    idx = got.wait_for(10**12, 60) if isinstance(got, pageindex.Build) else got
    assert idx.complete
    store.close()
    return idx


def assert_pages_match(path: Path, fmt: str, idx: pageindex.PageIndex, reference: list, limit: int = 7):
    """Every page (at many offsets) read via the index equals the reference records."""
    assert idx.total == len(reference)
    assert len(idx.checkpoints) > 5 or len(reference) < 20
    for offset in list(range(0, len(reference) + 3, 5)) + [len(reference) - 1]:
        page = preview_file(path, fmt, offset, limit, index=idx)
        assert "error" not in page, (offset, page.get("error"))
        assert page["items"] == reference[offset : offset + limit], offset
        assert page["total"] == len(reference)
        assert page["truncated"] == (offset + limit < len(reference))


def test_json_array_pages_match_a_reference_reader(tmp_path, small_blocks):
    for sep, name in ((", ", "compact"), (",\n  ", "lines")):
        path = tmp_path / f"{name}.json"
        path.write_text("\ufeff [ " + sep.join(json.dumps(r, ensure_ascii=False) for r in TRICKY) + " ]\n",
                        encoding="utf-8")
        reference = json.loads(path.read_text(encoding="utf-8-sig"))
        assert_pages_match(path, "json", build(tmp_path, path, "json"), reference)
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(TRICKY, indent=2))
    assert_pages_match(pretty, "json", build(tmp_path, pretty, "json"), TRICKY)


def test_ndjson_pages_match_a_reference_reader(tmp_path, small_blocks):
    lines = [json.dumps(r) for r in TRICKY]
    body = ""
    for i, ln in enumerate(lines):
        body += ln + ("\r\n" if i % 3 == 0 else "\n")
        if i % 11 == 0:
            body += "\n   \n\t\n"  # blank lines are no records
    for name, text in (("bom.ndjson", "\ufeff" + body), ("no-final-newline.ndjson", body.rstrip("\n")),
                       ("scalars.ndjson", body + "1\n\"two\"\n[3]\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8", newline="")
        reference = [json.loads(ln) for ln in text.encode().decode("utf-8-sig").splitlines() if ln.strip()]
        reference = [r if isinstance(r, dict) else {"value": r} for r in reference]
        assert_pages_match(path, "ndjson", build(tmp_path, path, "ndjson"), reference)


def _csv_text(rows: list[list[str]], terminator: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=terminator).writerows(rows)
    return out.getvalue()


CSV_ROWS = [["id", "text", "note"]] + [
    [str(i), ["plain", 'a "quoted" word', "comma, inside", "two\nlines", "", "crlf\r\ninside", '""'][i % 7],
     "x" * (i % 13)] for i in range(300)]


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
@pytest.mark.parametrize("variant", ["plain", "bom", "no-final-newline", "empty-lines"])
def test_csv_pages_match_a_reference_reader(tmp_path, small_blocks, terminator, variant):
    text = _csv_text(CSV_ROWS, terminator)
    if variant == "bom":
        text = "\ufeff" + text
    elif variant == "no-final-newline":
        text = text[: -len(terminator)]
    elif variant == "empty-lines":
        text = text.replace(f"{terminator}5,", f"{terminator}{terminator}{terminator}5,")
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8", newline="")
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if r]
    reference = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert_pages_match(path, "csv", build(tmp_path, path, "csv"), reference)


def test_csv_with_a_quote_inside_an_unquoted_field_is_counted_by_the_csv_module(tmp_path, small_blocks):
    path = tmp_path / "inches.csv"
    text = "item,size\n" + "".join(f'screen {i},{i}"\n' for i in range(40))
    path.write_text(text)
    idx = build(tmp_path, path, "csv")
    reference = [{"item": f"screen {i}", "size": f'{i}"'} for i in range(40)]
    assert idx.total == 40
    for offset in range(0, 42, 3):
        assert preview_file(path, "csv", offset, 5, index=idx)["items"] == reference[offset : offset + 5]


def test_empty_and_tiny_files(tmp_path, small_blocks):
    cases = [("[]", "json", 0), ("[\n]\n", "json", 0), ("[1]", "json", 1), ("", "ndjson", 0), ("\n\n", "ndjson", 0),
             ('{"a": 1}', "ndjson", 1), ("", "csv", 0), ("a,b\n", "csv", 0), ("a,b", "csv", 0), ("a,b\n1,2", "csv", 1)]
    for i, (text, fmt, total) in enumerate(cases):
        path = tmp_path / f"f{i}.{fmt}"
        path.write_text(text)
        assert build(tmp_path, path, fmt).total == total, (text, fmt)


def test_structural_problems_leave_the_total_unknown_and_pages_keep_their_errors(tmp_path, small_blocks):
    path = tmp_path / "cut.json"
    path.write_text("[" + ", ".join(json.dumps(r) for r in TRICKY[:50]))  # no closing bracket
    idx = build(tmp_path, path, "json")
    assert idx.total is None and "ends inside" in idx.problem
    assert preview_file(path, "json", 10, 5, index=idx)["items"] == TRICKY[10:15]
    last = preview_file(path, "json", 48, 5, index=idx)
    assert last["items"] == TRICKY[48:50] and last["error"].startswith("cut.json record 51")
    bad = tmp_path / "bad.ndjson"
    bad.write_text("".join(json.dumps(r) + "\n" for r in TRICKY[:60]) + "{oops\n")
    idx = build(tmp_path, bad, "ndjson")
    assert idx.total == 61
    page = preview_file(bad, "ndjson", 58, 5, index=idx)
    assert page["items"] == TRICKY[58:60] and page["error"].startswith("bad.ndjson line 61: invalid JSON")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(50)) + "1,2,3\n")
    idx = build(tmp_path, rows, "csv")
    page = preview_file(rows, "csv", 48, 5, index=idx)
    assert page["items"] == [{"a": "48", "b": "48"}, {"a": "49", "b": "49"}]
    assert page["error"] == "rows.csv line 52: 3 fields, but the header has 2"


# ---------------------------------------------------------------------------- the index file


def write_json_array(path: Path, n: int) -> None:
    path.write_text("[" + ",\n".join(json.dumps({"id": i, "s": "y" * 50}) for i in range(n)) + "]\n")


def test_index_is_kept_on_disk_and_reused(tmp_path):
    path = tmp_path / "a.json"
    write_json_array(path, 20_000)
    store = pageindex.PageIndexes(tmp_path / "index")
    first = store.get(path, "json", "abc")
    assert isinstance(first, pageindex.Build)
    idx = first.wait_for(10**9, 60)
    store.close()
    target = tmp_path / "index" / "abc.json.idx"
    assert target.is_file()
    again = pageindex.PageIndexes(tmp_path / "index").get(path, "json", "abc")
    assert isinstance(again, pageindex.PageIndex) and again.total == 20_000
    assert again.checkpoints == idx.checkpoints


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other-bytes-same-size", "other-size", "old-version"])
def test_stale_or_corrupt_index_is_ignored_and_rebuilt(tmp_path, damage):
    path = tmp_path / "a.json"
    write_json_array(path, 20_000)
    root = tmp_path / "index"
    build_store = pageindex.PageIndexes(root)
    build_store.get(path, "json", "abc").wait_for(10**9, 60)
    build_store.close()
    target = root / "abc.json.idx"
    raw = target.read_bytes()
    expected = 20_000
    if damage == "truncated":
        target.write_bytes(raw[: len(raw) - 10])
    elif damage == "garbage":
        target.write_bytes(raw[:40] + b"\xff" * 30 + raw[70:])
    elif damage == "other-bytes-same-size":
        size = path.stat().st_size
        text = path.read_text().replace('{"id": 0, ', '[1, 2],  {"id": 0, ', 1)[: size - 12].rstrip(",\n ")
        # same size, other content: one more record at the start, a few fewer at the end
        text = text[: text.rfind("}") + 1] + "]"
        path.write_text(text + " " * (size - len(text)))
        assert path.stat().st_size == size
        expected = len(json.loads(path.read_text()))
    elif damage == "other-size":
        write_json_array(path, 20_001)
        expected = 20_001
    else:
        target.write_bytes(raw.replace(b'"version": 1', b'"version": 0'))
    store = pageindex.PageIndexes(root)
    got = store.get(path, "json", "abc")
    assert isinstance(got, pageindex.Build), "a damaged index must not be used"
    idx = got.wait_for(10**9, 60)
    store.close()
    assert idx.total == expected
    fresh = pageindex.read_index(target, path, "json")
    assert fresh is not None and fresh.total == expected
    assert preview_file(path, "json", expected - 1, 5, index=fresh)["items"][-1]["id"] in (19_999, 20_000,
                                                                                           expected - 2)


def test_many_concurrent_requests_build_one_index(tmp_path, monkeypatch):
    monkeypatch.setenv(native.ENV, "0")  # the Python scan, which this test holds at a gate
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps({"id": i, "pad": "z" * 100}) + "\n" for i in range(60_000)))
    scans = []
    real = scan.scan_file
    gate = threading.Event()

    def counting_scan(*args, **kw):
        scans.append(threading.current_thread().name)
        gate.wait(10)  # keep the build running while every request arrives
        return real(*args, **kw)

    monkeypatch.setattr(scan, "scan_file", counting_scan)
    store = pageindex.PageIndexes(tmp_path / "index")
    got: list = []
    called: list[int] = []
    barrier = threading.Barrier(16)

    def ask():
        barrier.wait()
        b = store.get(path, "ndjson", "same", when_built=lambda idx: called.append(idx.total))
        got.append(b)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert store.builds() == 1
    gate.set()
    builds = {id(b) for b in got}
    assert len(builds) == 1 and isinstance(got[0], pageindex.Build)
    got[0].wait_for(10**9, 60)
    got[0].thread.join(10)
    assert scans and len(scans) == 1
    assert called == [60_000] * 16
    store.close()


def test_a_far_page_waits_only_until_the_scan_has_passed_it(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(200_000)))
    store = pageindex.PageIndexes(tmp_path / "index")
    b = store.get(path, "ndjson", "k")
    partial = b.wait_for(150_000, 60)
    page = preview_file(path, "ndjson", 150_000, 3, index=partial)
    assert [r["id"] for r in page["items"]] == [150_000, 150_001, 150_002]
    if not partial.complete:
        assert page["counting"] is True and page["total"] is None
    done = b.wait_for(10**9, 60)
    assert preview_file(path, "ndjson", 150_000, 3, index=done)["total"] == 200_000
    store.close()


def test_index_key_follows_the_recorded_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[1]")
    st = path.stat()
    assert pageindex.index_key(path, "ab" * 32, st.st_size, st.st_mtime_ns) == "ab" * 32
    other = pageindex.index_key(path, "ab" * 32, st.st_size + 1, st.st_mtime_ns)
    assert other.startswith("file-") and other != "ab" * 32


def test_a_json_document_that_is_not_an_array_finishes_without_a_total(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"a": list(range(1000))}))
    store = pageindex.PageIndexes(tmp_path / "index")
    got = store.get(path, "json", "doc")
    idx = got.wait_for(10**9, 30) if isinstance(got, pageindex.Build) else got
    assert idx.complete and idx.total is None
    store.close()


def test_the_compiled_scanner_counts_as_the_python_scan_does(tmp_path, monkeypatch):
    """The files above are scanned by the compiled scanner itself (not left to Python), with the same totals."""
    if native.binary() is None:
        pytest.skip("the compiled scanner needs cargo")
    monkeypatch.setattr(scan, "BLOCK", 97)
    nd = "".join(json.dumps(r) + ("\r\n" if i % 3 else "\n") + ("\n  \n" if i % 11 == 0 else "")
                 for i, r in enumerate(TRICKY))
    files = [("a.json", "\ufeff [ " + ", ".join(json.dumps(r, ensure_ascii=False) for r in TRICKY) + " ]\n", "json"),
             ("b.json", json.dumps(TRICKY, indent=2), "json"), ("c.json", "[]", "json"),
             ("d.ndjson", nd, "ndjson"), ("e.ndjson", "\ufeff" + nd.rstrip("\n"), "ndjson"),
             ("f.csv", _csv_text(CSV_ROWS, "\r\n"), "csv"), ("g.csv", "\ufeff" + _csv_text(CSV_ROWS, "\n"), "csv")]
    for name, text, fmt in files:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8", newline="")
        cps: list = []
        got = pageindex.native_scan(path, fmt, cps.append, threading.Event())
        want = scan.scan_file(path, fmt)
        assert got is not None, name
        assert (got.total, got.header_end, got.header_lines) == (want.total, want.header_end, want.header_lines)
        assert len(cps) > 5 or want.total < 2, name
        assert cps == sorted(cps)


def test_a_bare_cr_inside_quotes_keeps_pages_right(tmp_path, small_blocks):
    from server.engine.data.fast import csv_text

    rows = [["id", "text"]] + [[str(i), ["one\rtwo", "plain", "x\r\ny", "\r"][i % 4]] for i in range(200)]
    text = csv_text(rows)  # quotes a field holding a CR
    assert '"one\rtwo"' in text
    path = tmp_path / "cr.csv"
    path.write_text(text, encoding="utf-8", newline="")
    idx = build(tmp_path, path, "csv")
    reference = [{"id": r[0], "text": r[1]} for r in rows[1:]]
    assert idx.total == len(reference)
    if small_blocks == "native":
        assert len(idx.checkpoints) > 5  # scanned by the compiled scanner, not counted by the csv module
    for offset in range(0, len(reference), 9):
        page = preview_file(path, "csv", offset, 7, index=idx)
        assert page["items"] == reference[offset:offset + 7], offset


def test_one_shared_set_of_indexes_per_folder_closed_by_its_last_holder(tmp_path):
    a = pageindex.shared(tmp_path / "index", hold=True)
    b = pageindex.shared(tmp_path / "index", hold=True)
    assert a is b and pageindex.shared(tmp_path / "index") is a
    pageindex.release(a)
    path = tmp_path / "a.ndjson"
    path.write_text('{"a": 1}\n' * 10)
    got = b.get(path, "ndjson", "k")  # the second holder still works
    assert (got.wait_for(10**9, 30) if isinstance(got, pageindex.Build) else got).total == 10
    pageindex.release(b)
    with pytest.raises(RuntimeError):
        b.get(path, "ndjson", "other")
    assert pageindex.shared(tmp_path / "index") is not b
