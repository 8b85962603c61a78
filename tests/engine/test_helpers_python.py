"""The Python adapter helper (`import pipeloom`), exercised by real programs in
child processes, the way a node runs: PIPELOOM_PORTS, PYTHONPATH, a work folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.engine.util import clean_env, no_temp_files, ok, port_env

REPO = Path(__file__).resolve().parents[2]
HELPER_DIR = REPO / "server" / "engine" / "helpers" / "python"

TRICKY = [
    {"id": "1", "note": "plain"},
    {"id": "2", "note": "has, comma"},
    {"id": "3", "note": 'has "quotes"'},
    {"id": "4", "note": "two\nlines"},
    {"id": "5", "note": "ünïcode ✓"},
    {"id": "6", "note": ""},
]


def run_node(workdir: Path, code: str, *, inputs=None, outputs=None, params=None, ports=True,
             extra_env=None) -> subprocess.CompletedProcess:
    """Run `code` as a node program in `workdir`, with ports given as {name: (file, format)}."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "program.py"
    script.write_text(textwrap.dedent(code))
    env = clean_env()
    if ports:
        env = port_env(workdir, inputs, outputs, base=env)
    if params is not None:
        env["PIPELOOM_PARAMS"] = json.dumps(params)
    env["PYTHONPATH"] = str(HELPER_DIR)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, str(script)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_records_stream_through_in_each_format(tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    if fmt == "json":
        src.write_text(json.dumps(TRICKY), encoding="utf-8")
    elif fmt == "ndjson":
        src.write_text("".join(json.dumps(r) + "\n" for r in TRICKY) + "\n", encoding="utf-8")
    else:
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["id", "note"], lineterminator="\r\n")
            w.writeheader()
            w.writerows(TRICKY)
    out = ok(run_node(tmp_path, """
        import pipeloom
        n = 0
        with pipeloom.writer("copy") as w:
            for rec in pipeloom.records("data"):
                w.write(rec)
                n += 1
        print(n, len(pipeloom.read("data")))
    """, inputs={"data": (src.name, fmt)}, outputs={"copy": (f"out.{fmt}", fmt)}))
    assert out.split() == ["6", "6"]
    dst = tmp_path / f"out.{fmt}"
    if fmt == "json":
        assert json.loads(dst.read_text(encoding="utf-8")) == TRICKY
    elif fmt == "ndjson":
        lines = dst.read_text(encoding="utf-8").splitlines()
        assert [json.loads(x) for x in lines] == TRICKY
    else:
        with open(dst, newline="", encoding="utf-8") as fh:
            assert list(csv.DictReader(fh)) == TRICKY
        assert dst.read_text(encoding="utf-8").startswith("id,note\n1,plain\n2,\"has, comma\"\n")
    no_temp_files(tmp_path)


def test_large_json_array_streams_exactly(tmp_path):
    """Items that straddle the 1 MiB read boundary, nested objects, strings holding
    `}, {` and numbers of every shape all come back exactly as json.load sees them."""
    items = []
    for i in range(70_000):
        kind = i % 5
        if kind == 0:
            items.append({"i": i, "text": "}, {" * (i % 3), "nested": {"a": [1, {"b": "x}, {y"}]}})
        elif kind == 1:
            items.append(i * 1.000001)
        elif kind == 2:
            items.append(f"string, with {{braces}} {i}")
        elif kind == 3:
            items.append([i, None, True, {"k": "v"}])
        else:
            items.append({"plain": i, "neg": -i, "exp": 1e-7 * i})
    src = tmp_path / "big.json"
    src.write_text(json.dumps(items, indent=1), encoding="utf-8")
    assert src.stat().st_size > 3 * (1 << 20)
    ok(run_node(tmp_path, """
        import json, pipeloom
        with pipeloom.writer("copy") as w:
            for item in pipeloom.records("big"):
                w.write(item)
    """, inputs={"big": ("big.json", "json")}, outputs={"copy": ("copy.json", "json")}))
    assert json.loads((tmp_path / "copy.json").read_text(encoding="utf-8")) == items


def test_written_json_has_one_record_per_line_even_when_values_hold_separators(tmp_path):
    recs = [{"n": i, "s": "a}, {b" if i == 3 else "ok"} for i in range(5000)]
    ok(run_node(tmp_path, f"""
        import pipeloom
        with pipeloom.writer("out") as w:
            for r in {recs!r}:
                w.write(r)
                r["n"] = -1  # changing a record after writing it must not change the file
    """, outputs={"out": ("out.json", "json")}))
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert json.loads(text) == recs
    assert len(text.splitlines()) == len(recs) + 2


def test_text_binary_and_whole_json_documents(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"first\r\nsecond\nbad \xff byte\n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    (tmp_path / "cfg.json").write_text('{"threshold": 3.5, "names": ["a", "b"]}', encoding="utf-8")
    ok(run_node(tmp_path, """
        import pipeloom
        lines = list(pipeloom.records("notes"))
        assert lines == ["first", "second", "bad \ufffd byte"], lines
        data = pipeloom.read("blob")
        assert isinstance(data, bytes) and len(data) == 256
        cfg = pipeloom.read("cfg")
        pipeloom.write("summary", {"lines": lines, "size": len(data), "threshold": cfg["threshold"]})
        pipeloom.write("reversed", data[::-1])
        pipeloom.write("shout", "\\n".join(l.upper() for l in lines) + "\\n")
    """, inputs={"notes": ("notes.txt", "text"), "blob": ("blob.bin", "binary"), "cfg": ("cfg.json", "json")},
        outputs={"summary": ("summary.json", "json"), "reversed": ("r.bin", "binary"),
                 "shout": ("shout.txt", "text")}))
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "lines": ["first", "second", "bad \ufffd byte"], "size": 256, "threshold": 3.5}
    assert (tmp_path / "r.bin").read_bytes() == bytes(range(255, -1, -1))
    assert (tmp_path / "shout.txt").read_text() == "FIRST\nSECOND\nBAD \ufffd BYTE\n"


def test_failed_block_publishes_nothing(tmp_path):
    proc = run_node(tmp_path, """
        import pipeloom
        with pipeloom.writer("out") as w:
            for i in range(10_000):
                w.write({"i": i})
            raise RuntimeError("stopped half way")
    """, outputs={"out": ("out.ndjson", "ndjson")})
    assert proc.returncode != 0 and "stopped half way" in proc.stderr
    assert not (tmp_path / "out.ndjson").exists()
    no_temp_files(tmp_path)


def test_params_from_environment_or_params_json(tmp_path):
    code = """
        import json, pipeloom
        print(json.dumps(pipeloom.params()))
    """
    assert json.loads(ok(run_node(tmp_path, code, params={"window": 50}))) == {"window": 50}
    (tmp_path / "params.json").write_text('{"window": 7}')
    assert json.loads(ok(run_node(tmp_path, code))) == {"window": 7}
    (tmp_path / "params.json").unlink()
    assert json.loads(ok(run_node(tmp_path, code, ports=False))) == {}


def test_by_hand_fallbacks_without_pipeloom_ports(tmp_path):
    (tmp_path / "readings.csv").write_text("sensor,value\nalpha,1.5\n")
    (tmp_path / "elsewhere").mkdir()
    out = ok(run_node(tmp_path, """
        import pipeloom
        print(pipeloom.input("readings").format, pipeloom.read("readings"))
        pipeloom.write("summary", {"n": 1})
        pipeloom.write("report", "plain text")
        pipeloom.write("special", [{"a": 1}])
        print(pipeloom.output_path("summary").name, pipeloom.output_path("report").name)
    """, ports=False, extra_env={"PIPELOOM_OUTPUT_SPECIAL": str(tmp_path / "elsewhere" / "special.ndjson")}))
    assert out.splitlines() == ["csv [{'sensor': 'alpha', 'value': '1.5'}]", "summary.json report.txt"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"n": 1}
    assert (tmp_path / "report.txt").read_text() == "plain text"
    assert (tmp_path / "elsewhere" / "special.ndjson").read_text() == '{"a": 1}\n'


def test_errors_name_the_port_and_file(tmp_path):
    proc = run_node(tmp_path, "import pipeloom\npipeloom.read('nothing')\n", ports=False)
    assert proc.returncode != 0
    assert "input `nothing` not found" in proc.stderr and "nothing.json" in proc.stderr

    (tmp_path / "obj.json").write_text('{"not": "an array"}')
    proc = run_node(tmp_path, "import pipeloom\nlist(pipeloom.records('events'))\n",
                    inputs={"events": ("obj.json", "json")})
    assert "input `events`" in proc.stderr and "obj.json" in proc.stderr and "expected a JSON array" in proc.stderr

    (tmp_path / "bad.ndjson").write_text('{"a": 1}\n{"a": \n')
    proc = run_node(tmp_path, "import pipeloom\nlist(pipeloom.records('events'))\n",
                    inputs={"events": ("bad.ndjson", "ndjson")})
    assert "input `events`" in proc.stderr and "line 2" in proc.stderr

    proc = run_node(tmp_path, """
        import pipeloom
        with pipeloom.writer("out") as w:
            w.write({"a": 1})
            w.write({"a": 2, "b": 3})
    """, outputs={"out": ("out.csv", "csv")})
    assert "output `out`" in proc.stderr and "['b']" in proc.stderr
    assert not (tmp_path / "out.csv").exists()


def test_csv_values_that_are_not_text(tmp_path):
    ok(run_node(tmp_path, """
        import pipeloom
        pipeloom.write("out", [{"n": 1, "ok": True, "none": None, "tags": ["a", "b"], "x": 1.5}])
    """, outputs={"out": ("out.csv", "csv")}))
    assert (tmp_path / "out.csv").read_text() == 'n,ok,none,tags,x\n1,true,,"[""a"", ""b""]",1.5\n'


def test_parquet_round_trip_or_clear_error(tmp_path):
    code_write = """
        import sys
        if {block}:
            sys.modules["pyarrow"] = None  # as if pyarrow were not installed
        import pipeloom
        with pipeloom.writer("out") as w:
            for i in range(25_000):
                w.write({{"i": i, "sensor": "alpha" if i % 2 else "bravo", "value": i / 4}})
    """
    proc = run_node(tmp_path, code_write.format(block=True), outputs={"out": ("out.parquet", "parquet")})
    assert proc.returncode != 0
    assert "output `out`" in proc.stderr and "needs pyarrow" in proc.stderr
    assert not (tmp_path / "out.parquet").exists()

    pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'pipeloom[parquet]')")
    ok(run_node(tmp_path, code_write.format(block=False), outputs={"out": ("out.parquet", "parquet")}))
    import pyarrow.parquet as pq
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 25_000 and table.column_names == ["i", "sensor", "value"]
    out = ok(run_node(tmp_path, """
        import pipeloom
        rows = list(pipeloom.records("data"))
        print(len(rows), rows[3], len(pipeloom.read("data")))
    """, inputs={"data": ("out.parquet", "parquet")}))
    assert out.strip() == "25000 {'i': 3, 'sensor': 'alpha', 'value': 0.75} 25000"
