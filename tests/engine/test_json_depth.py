"""JSON reading has one depth limit and one encoding rule, in bounded memory, wherever the engine reads JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.engine import formats, preview
from server.engine.formats import MalformedDataError

REPO = Path(__file__).resolve().parents[2]
LIMIT = 1000


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def run_limited(code: str, mem_mb: int = 600) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter whose address space is capped, so a blow-up fails fast."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({mem_mb} << 20, {mem_mb} << 20))
        sys.path.insert(0, {str(REPO)!r})
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("call", [
    "list(formats.iter_records(p, 'json'))",
    "formats.convert(p, 'json', p.with_suffix('.csv'), 'csv')",
    "print('ERROR', formats.check_records(p, 'json')[1])",
    "print('ERROR', preview.preview_file(p, 'json').get('error'))",
])
def test_twenty_thousand_levels_fail_clearly_in_bounded_memory(tmp_path, call):
    deep = tmp_path / "deep.json"
    deep.write_text(nested(20_000))
    proc = run_limited(f"""
        from pathlib import Path
        from server.engine import formats, preview
        p = Path({str(deep)!r})
        try:
            {call}
        except formats.MalformedDataError as exc:
            print("ERROR", exc)
        # VmHWM: this process's own peak (ru_maxrss would include the parent's size at fork)
        hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM"))
        print("RSS", int(hwm.split()[1]) // 1024)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(ln.split(" ", 1) for ln in proc.stdout.splitlines())
    assert "deep.json" in lines["ERROR"] and "nested too deeply" in lines["ERROR"] and "1,000" in lines["ERROR"]
    assert int(lines["RSS"]) < 150


def test_the_limit_is_exactly_a_thousand_levels(tmp_path):
    ok = tmp_path / "ok.json"
    ok.write_text("[" + nested(LIMIT - 2, '{"a": 1}') + "]")  # the array, 998 arrays, the object
    (value,) = list(formats.iter_json_values(open(ok, "rb"), ok))
    depth = 2
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert value == {"a": 1} and depth == LIMIT
    bad = tmp_path / "bad.json"
    bad.write_text("[" + nested(LIMIT - 1, '{"a": 1}') + "]")
    with pytest.raises(MalformedDataError, match=r"bad\.json record 1: nested too deeply: .*1,000"):
        list(formats.iter_json_values(open(bad, "rb"), bad))


def test_brackets_inside_strings_do_not_count(tmp_path):
    p = tmp_path / "s.json"
    text = "[" * 3000 + '\\"\\\\'
    p.write_text(json.dumps([{"s": text}, {"s": "]" * 5000}]))
    assert [r["s"] for r in formats.iter_records(p, "json")] == [text, "]" * 5000]


def leaf_of(value):
    """(depth, leaf) of a value of nested single-item lists, walked without recursion."""
    depth = 0
    while isinstance(value, list):
        (value,), depth = value, depth + 1
    return depth, value


def test_a_deep_record_converts_to_csv_and_ndjson(tmp_path):
    src = tmp_path / "in.json"
    src.write_text('[{"v": ' + nested(LIMIT - 3) + "}]")
    assert formats.convert(src, "json", tmp_path / "out.csv", "csv") == 1
    assert formats.convert(src, "json", tmp_path / "out.ndjson", "ndjson") == 1
    back = next(formats.iter_records(tmp_path / "out.ndjson", "ndjson"))
    assert leaf_of(back["v"]) == (LIMIT - 3, 1)
    cell = next(formats.iter_records(tmp_path / "out.csv", "csv"))["v"]
    assert cell == nested(LIMIT - 3)


def test_ndjson_lines_have_the_same_limit(tmp_path):
    p = tmp_path / "x.ndjson"
    p.write_text('{"a": 1}\n{"a": ' + nested(LIMIT) + "}\n")
    with pytest.raises(MalformedDataError, match=r"x\.ndjson line 2: nested too deeply"):
        list(formats.iter_records(p, "ndjson"))
    page = preview.preview_file(p, "ndjson")
    assert page["items"] == [{"a": 1}] and "nested too deeply" in page["error"]
    ok = tmp_path / "ok.ndjson"
    ok.write_text('{"a": ' + nested(LIMIT - 2) + "}\n")
    assert leaf_of(next(formats.iter_records(ok, "ndjson"))["a"]) == (LIMIT - 2, 1)


def test_a_document_five_hundred_levels_deep_previews(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text('{"top": ' + nested(500, '"leaf"') + "}")
    page = preview.preview_file(p, "json")
    assert "error" not in page, page.get("error")
    value = page["items"][0]["top"]
    for _ in range(500):
        value = value[0]
    assert value == "leaf"
    json.dumps(page)  # the web layer serialises it


def test_preview_of_a_too_deep_document_says_so(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text('{"top": ' + nested(5000) + "}")
    page = preview.preview_file(p, "json")
    assert "doc.json" in page["error"] and "nested too deeply" in page["error"]


def test_safe_value_is_not_recursive_and_cuts_very_deep_values():
    value: list = []
    for _ in range(5000):
        value = [value, float("nan")]
    out = preview.safe_value(value)
    for _ in range(preview.SHOW_DEPTH - 1):
        assert out[1] == "NaN"
        out = out[0]
    assert out[0] == preview.DEPTH_MARK


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_json_must_be_utf8_in_previews_and_conversions_alike(tmp_path, encoding):
    arr = tmp_path / "arr.json"
    arr.write_bytes(json.dumps([{"a": "é"}]).encode(encoding))
    with pytest.raises(MalformedDataError, match=r"arr\.json: not UTF-8"):
        list(formats.iter_records(arr, "json"))
    assert "not UTF-8" in preview.preview_file(arr, "json")["error"]
    doc = tmp_path / "doc.json"
    doc.write_bytes(json.dumps({"a": "é"}).encode(encoding))
    page = preview.preview_file(doc, "json")
    assert "doc.json" in page["error"] and "not UTF-8" in page["error"] and page["items"] == []
    nd = tmp_path / "x.ndjson"
    nd.write_bytes(('{"a": 1}\n').encode(encoding))
    with pytest.raises(MalformedDataError, match=r"x\.ndjson.*not UTF-8"):
        list(formats.iter_records(nd, "ndjson"))


def test_a_utf8_bom_is_tolerated_everywhere(tmp_path):
    bom = b"\xef\xbb\xbf"
    doc = tmp_path / "doc.json"
    doc.write_bytes(bom + b'{"a": 1}')
    assert preview.preview_file(doc, "json")["items"] == [{"a": 1}]
    nd = tmp_path / "x.ndjson"
    nd.write_bytes(bom + b'{"a": 1}\n')
    assert list(formats.iter_records(nd, "ndjson")) == [{"a": 1}]


def test_invalid_utf8_in_a_small_document_names_the_file(tmp_path):
    doc = tmp_path / "doc.json"
    doc.write_bytes(b'{"a": "\xff"}')
    assert "doc.json" in preview.preview_file(doc, "json")["error"]
    assert "UTF-8" in preview.preview_file(doc, "json")["error"]


def _max_depth(value) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _random_value(rng, depth: int):
    if depth <= 0 or rng.random() < 0.3:
        return "".join(rng.choice('ab[]{}"\\\\,:') for _ in range(rng.randrange(6)))
    if rng.random() < 0.5:
        return [_random_value(rng, depth - 1) for _ in range(rng.randrange(1, 3))]
    return {_random_value(rng, 0): _random_value(rng, depth - 1) for _ in range(rng.randrange(1, 3))}


def test_the_depth_scanner_agrees_with_a_parser_at_any_chunking():
    import random

    from server.engine.jsonread import DepthScanner, TooDeep

    rng = random.Random(7)
    for _ in range(300):
        value = _random_value(rng, rng.randrange(1, 9))
        data = json.dumps(value).encode()
        limit = rng.randrange(1, 9)
        scanner = DepthScanner(limit)
        try:
            pos = 0
            while pos < len(data):
                step = rng.randrange(1, 9)
                scanner.feed(data[pos:pos + step])
                pos += step
        except TooDeep:
            assert _max_depth(value) > limit, data
        else:
            assert _max_depth(value) <= limit and scanner.depth == 0 and not scanner.in_string, data
