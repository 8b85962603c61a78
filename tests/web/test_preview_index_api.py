"""The preview route with page indexes: far pages of a large output, the exact total in the page, on disk
under .pipeloom/index/<sha256>, and sent to the studio as a second `output_ready`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from .conftest import python_pipeline

ROWS = 120_000  # about 7 MB of ndjson: past the runner's own count and the route's index threshold
CODE = ("import json\n"
        "with open('out.ndjson', 'w') as fh:\n"
        "    for i in range(%d):\n"
        "        fh.write(json.dumps({'id': i, 's': 'brackets ] and, commas', 'pad': 'x' * 20}) + '\\n')\n" % ROWS)


def big_output_pipeline(workspace, fmt="ndjson"):
    path = python_pipeline(workspace, CODE)
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][0]["outputs"] = [{"name": "out", "format": fmt, "file": "out.ndjson"}]
    path.write_text(yaml.safe_dump(doc))
    return path


def test_far_page_and_exact_total_through_the_route(workspace, client):
    big_output_pipeline(workspace)
    run = client.wait_run(client.post("/api/pipelines/py/runs", json={}).json["run_id"], timeout=60)
    art = run["nodes"]["talk"]["artifacts"]["out"]
    assert art["records"] in (None, ROWS) and art["size"] > 4 * 1024 * 1024  # counted in the background
    url = f"/api/runs/{run['run_id']}/nodes/talk/outputs/out"
    first = client.get(f"{url}?offset=0&limit=5").json
    assert [r["id"] for r in first["items"]] == list(range(5))
    assert first["total_known"] in (True, False) and first["truncated"] is True
    far = client.get(f"{url}?offset=100000&limit=3").json
    assert [r["id"] for r in far["items"]] == [100_000, 100_001, 100_002]
    deadline = time.monotonic() + 30
    page = far
    while not page["total_known"] and time.monotonic() < deadline:
        time.sleep(0.05)
        page = client.get(f"{url}?offset=100000&limit=3").json
    assert page["total"] == ROWS and page["records"] == ROWS and page["counting"] is False
    idx = workspace / ".pipeloom" / "index" / f"{art['sha256']}.ndjson.idx"
    assert idx.is_file()
    last = client.get(f"{url}?offset={ROWS - 2}&limit=50").json
    assert [r["id"] for r in last["items"]] == [ROWS - 2, ROWS - 1] and last["truncated"] is False
    # the total is remembered: the run now carries it, and a new app reads it from the index file
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.get(f"/api/runs/{run['run_id']}").json["nodes"]["talk"]["artifacts"]["out"]["records"] == ROWS:
            break
        time.sleep(0.05)
    assert client.get(f"/api/runs/{run['run_id']}").json["nodes"]["talk"]["artifacts"]["out"]["records"] == ROWS
    cell = client.get(f"{url}/cell?record=110000&column=s").json
    assert cell["text"] == "brackets ] and, commas"


def test_studio_hears_the_exact_total(workspace, server, live):
    big_output_pipeline(workspace)
    c = live(server)
    assert c.call("subscribe", {"pipeline_id": "py"})["ok"]
    status, _, body = server.request("POST", "/api/pipelines/py/runs", {}, headers={"Origin": server.origin})
    assert status == 202, body
    run_id = body["run_id"]
    first = c.wait_for("output_ready", lambda d: d["run_id"] == run_id, timeout=60)
    assert first["records"] is None
    counted = c.wait_for("output_ready", lambda d: d["run_id"] == run_id and d["records"] is not None, timeout=60)
    assert counted["records"] == ROWS and counted["port"] == "out" and counted["node_id"] == "talk"
    status, _, page = server.request("GET", f"/api/runs/{run_id}/nodes/talk/outputs/out?offset=119990&limit=5")
    assert status == 200 and page["total"] == ROWS and page["total_known"] is True
    assert [r["id"] for r in page["items"]] == list(range(119_990, 119_995))
    assert json.loads(json.dumps(page)) == page


def test_a_cli_run_indexes_its_large_outputs_so_the_first_far_page_finds_the_index(workspace, client):
    import os
    import subprocess
    import sys

    from server.engine.data import pageindex
    from tests.conftest import REPO

    big_output_pipeline(workspace)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "server.cli", "run", "py.pipeline.yaml", "--json"], cwd=workspace,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    art = client.get(f"/api/runs/{run_id}").json["nodes"]["talk"]["artifacts"]["out"]
    # the CLI finished the index before it exited: no build is needed
    idx = workspace / ".pipeloom" / "index" / f"{art['sha256']}.ndjson.idx"
    assert idx.is_file()
    assert pageindex.read_index(idx, Path(art["path"]), "ndjson").total == ROWS
    page = client.get(f"/api/runs/{run_id}/nodes/talk/outputs/out?offset=110000&limit=3").json
    assert [r["id"] for r in page["items"]] == [110_000, 110_001, 110_002]
    assert page["total"] == ROWS and page["total_known"] is True and page["counting"] is False
    assert _state_builds(client) == 0


def _state_builds(client) -> int:
    return client.app.extensions["pipeloom"].previews.builds()
