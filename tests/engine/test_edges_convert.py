"""Where an edge joins two formats, the runner converts the file on the way."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from server.engine.model import load_pipeline
from server.engine.runner import Runner
from server.engine.store import Store
from tests.engine.util import write_pipeline

ROWS = [{"sensor": "alpha", "value": 1.5, "tags": ["a", "b"]}, {"sensor": "beta", "value": 2, "note": "é"}]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet", "text", "binary"])
def test_json_output_reaches_input_in_other_format(workspace, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow")
    files = {
        "make.py": f"import json\njson.dump({ROWS!r}, open('rows.json', 'w'))\n",
        "take.py": "import shutil, os\nshutil.copy(os.environ['PIPELOOM_INPUT_ROWS'], 'seen.bin')\n",
    }
    path = write_pipeline(workspace, {"version": 1, "name": "conv", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "outputs": [{"name": "rows", "file": "rows.json"}]},
        {"id": "take", "runtime": "python", "source": "take.py",
         "inputs": [{"name": "rows", "format": fmt}], "outputs": [{"name": "seen", "file": "seen.bin", "format": "binary"}]},
    ], "edges": [{"from": "make.rows", "to": "take.rows"}]}, files)
    res = Runner(load_pipeline(path, workspace=workspace), store=Store.open(workspace), workspace=workspace).run()
    assert res.ok, {n: s.message for n, s in res.nodes.items()}
    staged = Path(res.nodes["take"].artifacts["seen"]["path"])
    data = staged.read_bytes()
    if fmt == "csv":
        rows = list(csv.DictReader(data.decode().splitlines()))
        assert [r["sensor"] for r in rows] == ["alpha", "beta"]
        assert json.loads(rows[0]["tags"]) == ["a", "b"] and rows[1]["note"] == "é"
    elif fmt == "ndjson":
        rows = [json.loads(ln) for ln in data.decode().splitlines() if ln.strip()]
        assert rows[0]["tags"] == ["a", "b"] and rows[1]["value"] == 2
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(staged)
        assert table.column("sensor").to_pylist() == ["alpha", "beta"]
    else:
        assert json.loads(data) == ROWS


def test_csv_back_to_json(workspace):
    files = {"seed.csv": "a,b\n1,x\n2,y\n",
             "take.py": "import json\nrows = json.load(open('rows.json'))\njson.dump({'n': len(rows), 'first': rows[0]}, open('out.json','w'))\n"}
    path = write_pipeline(workspace, {"version": 1, "name": "conv2", "nodes": [
        {"id": "src", "runtime": "command", "command": ["cp", "seed.csv", "out.csv"],
         "inputs": [{"name": "seed", "file": "seed.csv", "format": "csv", "path": "seed.csv"}],
         "outputs": [{"name": "out", "file": "out.csv", "format": "csv"}]},
        {"id": "take", "runtime": "python", "source": "take.py",
         "inputs": [{"name": "rows", "file": "rows.json", "format": "json"}], "outputs": [{"name": "out"}]},
    ], "edges": [{"from": "src.out", "to": "take.rows"}]}, files)
    res = Runner(load_pipeline(path, workspace=workspace), store=Store.open(workspace), workspace=workspace).run()
    assert res.ok, {n: s.message for n, s in res.nodes.items()}
    got = json.loads(Path(res.nodes["take"].artifacts["out"]["path"]).read_text())
    assert got == {"n": 2, "first": {"a": "1", "b": "x"}}


def test_bad_upstream_json_fails_the_downstream_node_clearly(workspace):
    files = {"make.sh": "echo '{\"not\": \"an array\"}' > rows.json\n", "take.sh": "cat rows.csv\n"}
    path = write_pipeline(workspace, {"version": 1, "name": "conv3", "nodes": [
        {"id": "make", "runtime": "shell", "source": "make.sh", "outputs": [{"name": "rows"}]},
        {"id": "take", "runtime": "shell", "source": "take.sh", "inputs": [{"name": "rows", "format": "csv"}]},
    ], "edges": [{"from": "make.rows", "to": "take.rows"}]}, files)
    res = Runner(load_pipeline(path, workspace=workspace), store=Store.open(workspace), workspace=workspace).run()
    assert res.nodes["make"].status == "succeeded"
    assert res.nodes["take"].status == "failed"
    assert "rows.json" in res.nodes["take"].message or "array" in res.nodes["take"].message


def _two_step(workspace, make_code: str, dst_fmt: str):
    files = {"make.py": make_code,
             "take.py": "import shutil, os\nshutil.copy(os.environ['PIPELOOM_INPUT_ROWS'], 'seen.bin')\n"}
    path = write_pipeline(workspace, {"version": 1, "name": "conv", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "outputs": [{"name": "rows", "file": "rows.json"}]},
        {"id": "take", "runtime": "python", "source": "take.py",
         "inputs": [{"name": "rows", "format": dst_fmt}],
         "outputs": [{"name": "seen", "file": "seen.bin", "format": "binary"}]},
    ], "edges": [{"from": "make.rows", "to": "take.rows"}]}, files)
    return Runner(load_pipeline(path, workspace=workspace), store=Store.open(workspace), workspace=workspace).run()


def test_a_conversion_error_names_the_edge_ports_and_formats(workspace):
    res = _two_step(workspace, "open('rows.json', 'w').write('[1, 2]')\n", "csv")
    assert res.nodes["make"].status == "succeeded"
    assert res.nodes["take"].status == "failed"
    assert res.nodes["take"].message == (
        "edge make.rows → take.rows (json → csv): rows.json record 1: expected an object, found a number")


def test_a_too_deep_output_is_reported_by_its_producer_and_its_consumer(workspace):
    res = _two_step(workspace, "open('rows.json', 'w').write('[' * 20000 + ']' * 20000)\n", "ndjson")
    make, take = res.nodes["make"], res.nodes["take"]
    assert make.status == "succeeded" and make.artifacts["rows"]["records"] is None
    assert "output `rows` (rows.json) was written but cannot be read as json" in make.message
    assert "nested too deeply" in make.message and "1,000" in make.message
    assert take.status == "failed" and not take.message.startswith("internal error")
    assert take.message.startswith("edge make.rows → take.rows (json → ndjson): rows.json record 1: nested too deeply")
