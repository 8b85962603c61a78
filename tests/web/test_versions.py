"""Versions: a burst of saves from one studio tab is one version, a stale save still answers 409, and each version
says in plain words how it differs from the current one, or from the one before it."""

from __future__ import annotations

import copy

from tests.web.conftest import assert_json_error, shell_pipeline


def load(client):
    body = client.get("/api/pipelines/flow").json
    return copy.deepcopy(body["document"]), body["version"]


def save(client, doc, version, client_id=None, status=200):
    body = {"document": doc, "version": version}
    if client_id is not None:
        body["client"] = client_id
    r = client.put("/api/pipelines/flow", json=body)
    assert r.status_code == status, r.json
    return r.json


def test_a_burst_of_saves_from_one_tab_is_one_version(workspace, client):
    shell_pipeline(workspace)
    doc, v = load(client)
    for i in range(8):  # eight quick edits, each saved as the studio saves them
        doc["nodes"][0]["title"] = f"Make {i}"
        v = save(client, doc, v, "tab-a")["version"]
    versions = client.get("/api/pipelines/flow/versions").json
    assert [(x["version"], x["note"]) for x in versions] == [(v, "saved in the studio (8 edits)"), (1, "first seen")]
    assert v == 9  # every save moved the number on, so a tab still holding an older one is stale
    assert client.get(f"/api/pipelines/flow/versions/{v}").json["document"]["nodes"][0]["title"] == "Make 7"
    # nothing is lost to a stale save: another tab based on a number of the burst gets 409
    doc["nodes"][0]["title"] = "Other tab"
    r = save(client, doc, 2, "tab-b", status=409)
    assert r["current_version"] == v
    assert client.get("/api/pipelines/flow").json["document"]["nodes"][0]["title"] == "Make 7"


def test_another_tab_a_pause_or_a_run_starts_a_new_version(workspace, client, app):
    shell_pipeline(workspace)
    pipelines = app.extensions["pipeloom"].pipelines
    doc, v = load(client)
    doc["nodes"][0]["title"] = "A"
    v = save(client, doc, v, "tab-a")["version"]
    doc["nodes"][0]["title"] = "B"
    v = save(client, doc, v, "tab-b")["version"]  # another tab: its own version
    doc["nodes"][0]["title"] = "C"
    v = save(client, doc, v)["version"]  # a client that does not say who it is: never folded
    doc["nodes"][0]["title"] = "D"
    v = save(client, doc, v, "tab-b")["version"]
    pipelines.fold_gap_s = 0.0  # the tab paused longer than the gap
    doc["nodes"][0]["title"] = "E"
    v = save(client, doc, v, "tab-b")["version"]
    pipelines.fold_gap_s = 60.0
    doc["nodes"][0]["title"] = "F"
    v = save(client, doc, v, "tab-b")["version"]  # folds into E
    r = client.post("/api/pipelines/flow/runs", json={})  # a run stands on this version: the burst ends
    assert r.status_code == 202, r.json
    client.wait_run(r.json["run_id"])
    doc["nodes"][0]["title"] = "G"
    v = save(client, doc, v, "tab-b")["version"]
    titles = [client.get(f"/api/pipelines/flow/versions/{x['version']}").json["document"]["nodes"][0].get("title")
              for x in client.get("/api/pipelines/flow/versions").json]
    assert titles == ["G", "F", "D", "C", "B", "A", "Make"]
    r = client.put("/api/pipelines/flow", json={"document": doc, "version": v, "client": "no spaces please"})
    assert "`client`" in assert_json_error(r, 400)["error"]


def test_a_version_says_what_restoring_it_would_change_and_what_its_save_changed(workspace, client):
    shell_pipeline(workspace)
    doc, v = load(client)
    doc["nodes"][1]["params"] = {"window": 50}
    doc["nodes"][1]["position"] = {"x": 300, "y": 40}
    v2 = save(client, doc, v)["version"]
    doc["nodes"][1]["params"] = {"window": 20}
    doc["nodes"][1]["outputs"][0]["format"] = "csv"
    doc["nodes"].append({"id": "more", "runtime": "command", "command": ["true"],
                         "inputs": [{"name": "in", "format": "json"}]})
    doc["edges"].append({"from": "make.out", "to": "more.in"})
    doc["notes"] = [{"id": "hello", "text": "Read me first", "position": {"x": 0, "y": 0}}]
    v3 = save(client, doc, v2)["version"]

    r = client.get(f"/api/pipelines/flow/versions/{v2}/diff")  # against the current version (the default)
    assert r.status_code == 200, r.json
    d = r.json
    assert d["version"] == v2 and d["against"] == "current" and d["from"] == v3 and not d["same"]
    texts = [c["text"] for c in d["changes"]]
    assert "Step “copy”: param window 20 → 50; output out format csv → json" in texts, texts
    assert "Step “more” removed" in texts
    assert "Connection make.out → more.in removed" in texts
    assert "Note “hello” removed (Read me first)" in texts
    assert d["summary"] == "1 step removed, 1 step changed, 1 connection removed and 1 note removed"
    changed = next(c for c in d["changes"] if c["id"] == "copy")
    assert {"field": "params.window", "before": 20, "after": 50, "change": "changed"} in changed["fields"]

    d = client.get(f"/api/pipelines/flow/versions/{v2}/diff?against=previous").json
    assert d["from"] == 1
    (step,) = d["changes"]
    assert step["text"] == "Step “copy”: param window added (50); moved on the canvas"
    d = client.get(f"/api/pipelines/flow/versions/{v3}/diff").json
    assert d["same"] and d["summary"] == "no changes" and d["changes"] == []
    d = client.get("/api/pipelines/flow/versions/1/diff?against=previous").json
    assert d["from"] is None and [c["text"] for c in d["changes"] if c["what"] == "step"] == [
        "Step “Make” added (shell runtime)", "Step “copy” added (shell runtime)"]

    assert "`against`" in assert_json_error(client.get(f"/api/pipelines/flow/versions/{v2}/diff?against=x"), 400)["error"]
    assert_json_error(client.get("/api/pipelines/flow/versions/99/diff"), 404)
    assert_json_error(client.get("/api/pipelines/flow/versions/99/diff?against=previous"), 404)
    assert_json_error(client.get("/api/pipelines/nope/versions/1/diff"), 404)
    # restoring still works, and afterwards that version is the current one
    r = client.post(f"/api/pipelines/flow/versions/{v2}/restore", json={})
    assert r.status_code == 200
    assert client.get(f"/api/pipelines/flow/versions/{v2}/diff").json["same"]


def test_a_version_that_does_not_parse_says_so(workspace, client):
    path = shell_pipeline(workspace)
    client.get("/api/pipelines/flow")
    path.write_text("version: 1\nnodes: [oops\n")
    client.get("/api/pipelines/flow")  # recorded as a version that does not parse
    d = client.get("/api/pipelines/flow/versions/1/diff").json
    assert d["comparable"] is False and "does not parse" in d["summary"] and d["changes"] == []
