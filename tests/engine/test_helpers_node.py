"""The Node.js adapter helper (`require('pipeloom')`), exercised by real node
programs in child processes, the way a node runs: PIPELOOM_PORTS, NODE_PATH."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.engine.util import clean_env, no_temp_files, ok, port_env

REPO = Path(__file__).resolve().parents[2]
HELPER_DIR = REPO / "server" / "engine" / "helpers" / "node"

TRICKY = [
    {"id": "1", "note": "plain"},
    {"id": "2", "note": "has, comma"},
    {"id": "3", "note": 'has "quotes"'},
    {"id": "4", "note": "two\nlines"},
    {"id": "5", "note": "ünïcode ✓"},
    {"id": "6", "note": ""},
]


@pytest.fixture
def node(require_tool):
    return require_tool("node", "`node` (Node.js) is not installed on this machine")


def run_js(node: str, workdir: Path, code: str, *, inputs=None, outputs=None, params=None, ports=True,
           extra_env=None) -> subprocess.CompletedProcess:
    """Run `code` as a node program in `workdir`, with ports given as {name: (file, format)}."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "program.js"
    script.write_text("const pipeloom = require('pipeloom');\n" + textwrap.dedent(code))
    env = clean_env()
    if ports:
        env = port_env(workdir, inputs, outputs, base=env)
    if params is not None:
        env["PIPELOOM_PARAMS"] = json.dumps(params)
    env["NODE_PATH"] = str(HELPER_DIR)
    env.update(extra_env or {})
    return subprocess.run([node, str(script)], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_records_stream_through_in_each_format(node, tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    if fmt == "json":
        src.write_text(json.dumps(TRICKY, indent=2), encoding="utf-8")
    elif fmt == "ndjson":
        src.write_text("".join(json.dumps(r) + "\r\n" for r in TRICKY) + "\n", encoding="utf-8")
    else:
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["id", "note"], lineterminator="\r\n")
            w.writeheader()
            w.writerows(TRICKY)
    out = ok(run_js(node, tmp_path, """
        const w = pipeloom.writer('copy');
        let n = 0;
        for (const rec of pipeloom.records('data')) { w.write(rec); n += 1; }
        w.close();
        console.log(n, pipeloom.read('data').length);
    """, inputs={"data": (src.name, fmt)}, outputs={"copy": (f"out.{fmt}", fmt)}))
    assert out.split() == ["6", "6"]
    dst = tmp_path / f"out.{fmt}"
    if fmt == "json":
        assert json.loads(dst.read_text(encoding="utf-8")) == TRICKY
    elif fmt == "ndjson":
        assert [json.loads(x) for x in dst.read_text(encoding="utf-8").splitlines()] == TRICKY
    else:
        with open(dst, newline="", encoding="utf-8") as fh:
            assert list(csv.DictReader(fh)) == TRICKY
    no_temp_files(tmp_path)


def test_large_json_array_and_csv_stream_exactly(node, tmp_path):
    """Files of several MiB: items and quoted csv fields straddle the read boundaries."""
    items = []
    for i in range(60_000):
        kind = i % 5
        if kind == 0:
            items.append({"i": i, "text": 'quote " and \\ and ] and }', "nested": {"a": [1, {"b": "x}, {y"}]}})
        elif kind == 1:
            items.append(i * 1.000001)
        elif kind == 2:
            items.append(f"string, with {{braces}} [{i}]")
        elif kind == 3:
            items.append([i, None, True, False, {"k": "v"}])
        else:
            items.append({"plain": i, "neg": -i, "exp": 1e-7 * i, "emoji": "🌡"})
    (tmp_path / "big.json").write_text(json.dumps(items, indent=1, ensure_ascii=False), encoding="utf-8")
    rows = [{"id": str(i), "note": f'line one\r\nline "two", {i}' if i % 3 == 0 else f"v{i}", "empty": ""}
            for i in range(100_000)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["id", "note", "empty"], lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    (tmp_path / "big.csv").write_text("\ufeff" + buf.getvalue(), encoding="utf-8", newline="")
    assert (tmp_path / "big.json").stat().st_size > 3 * (1 << 20)
    assert (tmp_path / "big.csv").stat().st_size > 2 * (1 << 20)
    ok(run_js(node, tmp_path, """
        for (const [src, dst] of [['big', 'copy'], ['table', 'table_copy']]) {
          const w = pipeloom.writer(dst);
          for (const item of pipeloom.records(src)) w.write(item);
          w.close();
        }
    """, inputs={"big": ("big.json", "json"), "table": ("big.csv", "csv")},
        outputs={"copy": ("copy.json", "json"), "table_copy": ("table.ndjson", "ndjson")}))
    assert json.loads((tmp_path / "copy.json").read_text(encoding="utf-8")) == items
    lines = (tmp_path / "table.ndjson").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == rows


def test_text_binary_and_whole_json_documents(node, tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"first\r\nsecond\nbad \xff byte\n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    (tmp_path / "cfg.json").write_text('{"threshold": 3.5}', encoding="utf-8")
    ok(run_js(node, tmp_path, """
        const lines = Array.from(pipeloom.records('notes'));
        const data = pipeloom.read('blob');
        const cfg = pipeloom.read('cfg');
        pipeloom.write('summary', { lines, size: data.length, isBuffer: Buffer.isBuffer(data), threshold: cfg.threshold });
        pipeloom.write('reversed', Buffer.from(data).reverse());
        pipeloom.write('shout', lines.map((l) => l.toUpperCase()).join('\\n') + '\\n');
    """, inputs={"notes": ("notes.txt", "text"), "blob": ("blob.bin", "binary"), "cfg": ("cfg.json", "json")},
        outputs={"summary": ("summary.json", "json"), "reversed": ("r.bin", "binary"),
                 "shout": ("shout.txt", "text")}))
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "lines": ["first", "second", "bad \ufffd byte"], "size": 256, "isBuffer": True, "threshold": 3.5}
    assert (tmp_path / "r.bin").read_bytes() == bytes(range(255, -1, -1))
    assert (tmp_path / "shout.txt").read_text() == "FIRST\nSECOND\nBAD \ufffd BYTE\n"


def test_unclosed_writer_and_abort_publish_nothing(node, tmp_path):
    proc = run_js(node, tmp_path, """
        const w = pipeloom.writer('out');
        for (let i = 0; i < 10000; i += 1) w.write({ i });
        const other = pipeloom.writer('other');
        other.write({ a: 1 });
        other.abort();
        throw new Error('stopped half way');
    """, outputs={"out": ("out.ndjson", "ndjson"), "other": ("other.json", "json")})
    assert proc.returncode != 0 and "stopped half way" in proc.stderr
    assert not (tmp_path / "out.ndjson").exists() and not (tmp_path / "other.json").exists()


def test_params_and_by_hand_fallbacks(node, tmp_path):
    code = "console.log(JSON.stringify(pipeloom.params()));"
    assert json.loads(ok(run_js(node, tmp_path, code, params={"max_alerts": 5}))) == {"max_alerts": 5}
    (tmp_path / "params.json").write_text('{"max_alerts": 7}')
    assert json.loads(ok(run_js(node, tmp_path, code))) == {"max_alerts": 7}
    (tmp_path / "params.json").unlink()

    (tmp_path / "readings.csv").write_text("sensor,value\nalpha,1.5\n")
    out = ok(run_js(node, tmp_path, """
        console.log(pipeloom.input('readings').format, JSON.stringify(pipeloom.read('readings')));
        pipeloom.write('summary', { n: 1 });
        pipeloom.write('special', [{ a: 1 }]);
        console.log(JSON.stringify(pipeloom.params()));
    """, ports=False, extra_env={"PIPELOOM_OUTPUT_SPECIAL": str(tmp_path / "special.ndjson")}))
    assert out.splitlines() == ['csv [{"sensor":"alpha","value":"1.5"}]', "{}"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"n": 1}
    assert (tmp_path / "special.ndjson").read_text() == '{"a":1}\n'


def test_errors_name_the_port_and_file(node, tmp_path):
    proc = run_js(node, tmp_path, "pipeloom.read('nothing');", ports=False)
    assert proc.returncode != 0 and "input `nothing` not found" in proc.stderr

    (tmp_path / "obj.json").write_text('{"not": "an array"}')
    proc = run_js(node, tmp_path, "Array.from(pipeloom.records('events'));", inputs={"events": ("obj.json", "json")})
    assert "input `events`" in proc.stderr and "obj.json" in proc.stderr and "expected a JSON array" in proc.stderr

    (tmp_path / "cut.json").write_text('[{"a": 1}, {"a": 2}')
    proc = run_js(node, tmp_path, "Array.from(pipeloom.records('events'));", inputs={"events": ("cut.json", "json")})
    assert "input `events`" in proc.stderr and "not closed" in proc.stderr

    (tmp_path / "open.csv").write_text('a,b\n1,"never closed\n')
    proc = run_js(node, tmp_path, "Array.from(pipeloom.records('t'));", inputs={"t": ("open.csv", "csv")})
    assert "input `t`" in proc.stderr and "invalid csv" in proc.stderr

    proc = run_js(node, tmp_path, """
        const w = pipeloom.writer('out');
        w.write({ a: 1 });
        w.write({ a: 2, b: 3 });
    """, outputs={"out": ("out.csv", "csv")})
    assert "output `out`" in proc.stderr and "`b`" in proc.stderr
    assert not (tmp_path / "out.csv").exists()

    proc = run_js(node, tmp_path, "pipeloom.read('p');", inputs={"p": ("x.parquet", "parquet")})
    assert "input `p`" in proc.stderr and "from Python only" in proc.stderr


def test_csv_values_that_are_not_text(node, tmp_path):
    ok(run_js(node, tmp_path, """
        pipeloom.write('out', [{ n: 1, ok: true, none: null, tags: ['a', 'b'], x: 1.5 }]);
    """, outputs={"out": ("out.csv", "csv")}))
    assert (tmp_path / "out.csv").read_text() == 'n,ok,none,tags,x\n1,true,,"[""a"",""b""]",1.5\n'


def test_helper_needs_no_install(tmp_path):
    """The helper is one CommonJS file with only built-in requires."""
    text = (HELPER_DIR / "pipeloom.js").read_text()
    required = set(re.findall(r"^const .*= require\('([^']+)'\);$", text, re.M))
    assert "fs" in required
    assert required <= {"fs", "path", "string_decoder"}, required
