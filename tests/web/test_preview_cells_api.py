"""The preview route cuts long cells and answers deep documents; the cell route pages a cell's full text."""

from __future__ import annotations

import pytest
import yaml

from server.engine.preview import DEPTH_MARK, SHOW_DEPTH

from tests.web.conftest import assert_json_error, write

CELL = 200_000


def pipeline(ws, code: str, fmt: str) -> None:
    write(ws, "make.py", code)
    doc = {"version": 1, "name": "cells", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py",
         "outputs": [{"name": "out", "file": f"out.{fmt}", "format": fmt}]}], "edges": []}
    (ws / "cells.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def run(client) -> str:
    run_id = client.post("/api/pipelines/cells/runs", json={}).json["run_id"]
    assert client.wait_run(run_id)["status"] == "succeeded"
    return run_id


def test_long_cells_are_cut_and_fetched_by_pages(workspace, client):
    pipeline(workspace, "import csv\nw = csv.writer(open('out.csv', 'w', newline=''))\n"
                        f"w.writerow(['id', 'blob'])\nw.writerow(['1', 'ü' * {CELL}])\nw.writerow(['2', 'b'])\n", "csv")
    run_id = run(client)
    base = f"/api/runs/{run_id}/nodes/make/outputs/out"
    page = client.get(base).json
    assert len(page["items"][0]["blob"]) == page["cell_chars"] == 4096
    assert page["cut_cells"] == [{"record": 0, "column": "blob", "type": "string", "chars": CELL, "bytes": 2 * CELL}]
    text, offset = "", 0
    while offset is not None:
        part = client.get(f"{base}/cell?record=0&column=blob&offset={offset}&limit=65536")
        assert part.status_code == 200, part.json
        text += part.json["text"]
        offset = part.json["next"]
    assert text == "ü" * CELL
    assert client.get(f"{base}/cell?record=1&column=id").json["text"] == "2"
    assert client.get(f"{base}/cell?record=0&column=blob&limit=99999999").json["limit"] == 1024 * 1024


def test_the_cell_route_refuses_clearly(workspace, client):
    pipeline(workspace, "open('out.csv', 'w').write('a\\n1\\n')\n", "csv")
    run_id = run(client)
    base = f"/api/runs/{run_id}/nodes/make/outputs/out"
    assert "record" in assert_json_error(client.get(f"{base}/cell?column=a"), 400)["error"]
    assert "column" in assert_json_error(client.get(f"{base}/cell?record=0"), 400)["error"]
    assert_json_error(client.get(f"{base}/cell?record=x&column=a"), 400)
    assert_json_error(client.get(f"{base}/cell?record=0&column=a&limit=0"), 400)
    assert_json_error(client.get(f"{base}/cell?record=0&column=a&offset=5"), 400)
    assert_json_error(client.get(f"{base}/cell?record=3&column=a"), 404)
    assert_json_error(client.get(f"{base}/cell?record=0&column=zz"), 404)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/make/outputs/nope/cell?record=0&column=a"), 404)
    assert_json_error(client.get(f"/api/runs/nope/nodes/make/outputs/out/cell?record=0&column=a"), 404)
    refused = client.get(f"{base}/cell?record=0&column=a", auth=False)
    assert refused.status_code in (401, 403)


@pytest.mark.parametrize("depth", [500, 998])
def test_deep_documents_preview_over_http(workspace, client, depth):
    pipeline(workspace, f"open('out.json', 'w').write('{{\"a\": ' + '[' * {depth} + '1' + ']' * {depth} + '}}')\n",
             "json")
    run_id = run(client)
    page = client.get(f"/api/runs/{run_id}/nodes/make/outputs/out")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    value = page.json["items"][0]["a"]
    levels = 0
    while isinstance(value, list):
        (value,), levels = value, levels + 1
    if depth < SHOW_DEPTH:
        assert (levels, value) == (depth, 1)
    else:
        assert value == DEPTH_MARK and SHOW_DEPTH - 5 < levels < SHOW_DEPTH
