"""The REST API through Flask's test client: every route, and its error answers."""

from __future__ import annotations

import json
import time

import yaml

from tests.web.conftest import assert_json_error, python_pipeline, shell_pipeline, write


def _doc(client, pid="flow"):
    r = client.get(f"/api/pipelines/{pid}")
    assert r.status_code == 200, r.json
    return r.json


# ------------------------------------------------------------ pipelines

def test_list_and_get_pipeline(workspace, client):
    shell_pipeline(workspace)
    r = client.get("/api/pipelines")
    assert r.status_code == 200
    assert [(p["id"], p["name"], p["path"], p["nodes"]) for p in r.json] == [("flow", "flow", "flow.pipeline.yaml", 2)]
    body = _doc(client)
    assert body["id"] == "flow" and body["path"] == "flow.pipeline.yaml" and body["format"] == "yaml"
    assert body["version"] == 1 and len(body["sha256"]) == 64
    assert body["problems"] == [] and body["autorun"] is False
    assert [n["id"] for n in body["document"]["nodes"]] == ["make", "copy"]


def test_list_reports_unreadable_pipeline(workspace, client):
    write(workspace, "broken.pipeline.yaml", "nodes: [\n")
    (item,) = client.get("/api/pipelines").json
    assert item["id"] == "broken" and "invalid YAML" in item["error"]
    body = _doc(client, "broken")
    assert body["document"] is None
    assert body["problems"] and "invalid YAML" in body["problems"][0]["message"]


def test_get_pipeline_lists_validation_problems(workspace, client):
    shell_pipeline(workspace)
    (workspace / "copy.sh").unlink()
    problems = _doc(client)["problems"]
    assert any("copy" in p["where"] for p in problems), problems


def test_unknown_pipeline_is_404(client):
    assert_json_error(client.get("/api/pipelines/nope"), 404)
    assert_json_error(client.put("/api/pipelines/nope", json={"document": {}, "version": 1}), 404)
    assert_json_error(client.get("/api/pipelines/nope/versions"), 404)
    assert_json_error(client.post("/api/pipelines/nope/runs", json={}), 404)


def test_save_writes_file_with_stable_keys_and_new_version(workspace, client):
    path = shell_pipeline(workspace)
    body = _doc(client)
    doc = body["document"]
    doc["nodes"][1]["title"] = "Copy it"
    doc["nodes"][1]["position"] = {"x": 10, "y": 20}
    # keys in a scrambled order must come back canonical
    doc["nodes"][1] = dict(reversed(list(doc["nodes"][1].items())))
    r = client.put("/api/pipelines/flow", json={"document": doc, "version": body["version"]})
    assert r.status_code == 200, r.json
    assert r.json["version"] == 2
    text = path.read_text()
    on_disk = yaml.safe_load(text)
    assert on_disk["nodes"][1]["title"] == "Copy it"
    assert list(on_disk["nodes"][1])[:3] == ["id", "runtime", "title"]
    assert "position: {x: 10, y: 20}" in text
    versions = client.get("/api/pipelines/flow/versions").json
    assert [(v["version"], v["note"]) for v in versions] == [(2, "saved in the studio"), (1, "first seen")]
    # saving the same document again changes nothing
    r2 = client.put("/api/pipelines/flow", json={"document": r.json["document"], "version": 2})
    assert r2.status_code == 200 and r2.json["version"] == 2
    assert path.read_text() == text


def test_save_json_pipeline_stays_json(workspace, client):
    shell_pipeline(workspace)
    doc = yaml.safe_load((workspace / "flow.pipeline.yaml").read_text())
    (workspace / "flow.pipeline.yaml").unlink()
    (workspace / "flow.pipeline.json").write_text(json.dumps(doc))
    body = _doc(client)
    assert body["format"] == "json"
    body["document"]["description"] = "in JSON"
    r = client.put("/api/pipelines/flow", json={"document": body["document"], "version": body["version"]})
    assert r.status_code == 200, r.json
    assert json.loads((workspace / "flow.pipeline.json").read_text())["description"] == "in JSON"


def test_stale_save_is_409(workspace, client):
    shell_pipeline(workspace)
    doc = _doc(client)["document"]
    assert client.put("/api/pipelines/flow", json={"document": doc | {"description": "a"}, "version": 1}).status_code == 200
    body = assert_json_error(client.put("/api/pipelines/flow", json={"document": doc | {"description": "b"}, "version": 1}), 409)
    assert body["current_version"] == 2


def test_save_after_change_on_disk_is_409(workspace, client):
    path = shell_pipeline(workspace)
    doc = _doc(client)["document"]
    path.write_text(path.read_text().replace("name: flow", "name: edited elsewhere"))
    body = assert_json_error(client.put("/api/pipelines/flow", json={"document": doc, "version": 1}), 409)
    assert body["current_version"] == 2
    assert "edited elsewhere" in path.read_text()
    versions = client.get("/api/pipelines/flow/versions").json
    assert versions[0]["note"] == "changed on disk"


def test_invalid_save_is_422_and_leaves_file(workspace, client):
    path = shell_pipeline(workspace)
    before = path.read_text()
    doc = _doc(client)["document"]
    doc["edges"].append({"from": "copy.out", "to": "make.in"})
    doc["nodes"][0]["inputs"] = [{"name": "in"}]
    body = assert_json_error(client.put("/api/pipelines/flow", json={"document": doc, "version": 1}), 422)
    assert any("cycle" in d["message"] for d in body["details"]), body
    assert all(set(d) <= {"where", "message", "line"} for d in body["details"])
    doc2 = _doc(client)["document"]
    doc2["nodes"][0]["runtime"] = "cobol"
    body = assert_json_error(client.put("/api/pipelines/flow", json={"document": doc2, "version": 1}), 422)
    assert any("cobol" in d["message"] for d in body["details"])
    assert path.read_text() == before


def test_bad_bodies_are_400(workspace, client):
    shell_pipeline(workspace)
    doc = _doc(client)["document"]
    cases = [
        dict(data="{not json", content_type="application/json"),
        dict(data="[1, 2]", content_type="application/json"),
        dict(data=b"\xff\xfe", content_type="application/json"),
        dict(json={"version": 1}),
        dict(json={"document": doc}),
        dict(json={"document": doc, "version": "1"}),
        dict(json={"document": doc, "version": True}),
        dict(json={"document": "nodes: []", "version": 1}),
    ]
    for kw in cases:
        assert_json_error(client.put("/api/pipelines/flow", **kw), 400)
    assert_json_error(client.post("/api/pipelines/flow/validate", data="nope", content_type="application/json"), 400)


def test_validate_route(workspace, client):
    shell_pipeline(workspace)
    doc = _doc(client)["document"]
    r = client.post("/api/pipelines/flow/validate", json={"document": doc})
    assert r.status_code == 200 and r.json == {"ok": True}
    doc["edges"] = [{"from": "make.out", "to": "copy.nope"}]
    body = assert_json_error(client.post("/api/pipelines/flow/validate", json={"document": doc}), 422)
    assert any("no input `nope`" in d["message"] for d in body["details"])
    assert_json_error(client.post("/api/pipelines/flow/validate", json={}), 400)


def test_create_pipeline(workspace, client):
    r = client.post("/api/pipelines", json={"path": "etl/daily.pipeline.yaml", "name": "Daily"})
    assert r.status_code == 201, r.json
    assert r.json["id"] == "etl.daily" and r.json["version"] == 1 and r.json["document"]["name"] == "Daily"
    assert (workspace / "etl/daily.pipeline.yaml").is_file()
    assert_json_error(client.post("/api/pipelines", json={"path": "etl/daily.pipeline.yaml"}), 409)
    assert_json_error(client.post("/api/pipelines", json={"path": "daily.yaml"}), 400)
    assert_json_error(client.post("/api/pipelines", json={}), 400)
    assert_json_error(client.post("/api/pipelines", json={"path": ".hidden/x.pipeline.yaml"}), 400)
    bad = {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "nope"}], "edges": []}
    assert_json_error(client.post("/api/pipelines", json={"path": "x.pipeline.yaml", "document": bad}), 422)
    good = {"version": 1, "name": "J", "nodes": [], "edges": []}
    r = client.post("/api/pipelines", json={"path": "j.pipeline.json", "document": good})
    assert r.status_code == 201 and json.loads((workspace / "j.pipeline.json").read_text())["name"] == "J"
    assert {p["id"] for p in client.get("/api/pipelines").json} == {"etl.daily", "j"}


def test_versions_get_and_restore(workspace, client):
    path = shell_pipeline(workspace)
    original = path.read_text()
    doc = _doc(client)["document"]
    client.put("/api/pipelines/flow", json={"document": doc | {"description": "second"}, "version": 1})
    v1 = client.get("/api/pipelines/flow/versions/1").json
    assert v1["version"] == 1 and v1["document"]["name"] == "flow" and "description" not in v1["document"]
    assert_json_error(client.get("/api/pipelines/flow/versions/9"), 404)
    assert_json_error(client.get("/api/pipelines/flow/versions/abc"), 404)
    r = client.post("/api/pipelines/flow/versions/1/restore", json={})
    assert r.status_code == 200 and r.json["version"] == 3
    assert path.read_text() == original
    assert client.get("/api/pipelines/flow/versions").json[0]["note"] == "restored version 1"
    assert_json_error(client.post("/api/pipelines/flow/versions/7/restore", json={}), 404)


def test_new_node_creates_starter_file(workspace, client):
    shell_pipeline(workspace)
    r = client.post("/api/pipelines/flow/nodes", json={"runtime": "python", "id": "clean", "title": "Clean up"})
    assert r.status_code == 201, r.json
    node, src = r.json["node"], r.json["source_path"]
    assert node["id"] == "clean" and node["runtime"] == "python" and node["title"] == "Clean up"
    assert src == "clean.py" and node["source"] == "clean.py"
    assert "import pipeloom" in (workspace / "clean.py").read_text()
    # the client adds it to the document and saves
    body = _doc(client)
    body["document"]["nodes"].append(node)
    r = client.put("/api/pipelines/flow", json={"document": body["document"], "version": body["version"]})
    assert r.status_code == 200, r.json
    assert_json_error(client.post("/api/pipelines/flow/nodes", json={"runtime": "python", "id": "clean"}), 409)
    assert_json_error(client.post("/api/pipelines/flow/nodes", json={"runtime": "shell", "id": "make"}), 409)
    assert_json_error(client.post("/api/pipelines/flow/nodes", json={"runtime": "cobol", "id": "x"}), 400)
    assert_json_error(client.post("/api/pipelines/flow/nodes", json={"runtime": "python", "id": "Bad Id"}), 400)
    assert_json_error(client.post("/api/pipelines/flow/nodes", json={"id": "x"}), 400)
    r = client.post("/api/pipelines/flow/nodes", json={"runtime": "command", "id": "pack"})
    assert r.status_code == 201 and r.json["source_path"] is None and r.json["node"]["command"]


def test_new_node_goes_in_the_pipeline_folder(workspace, client):
    shell_pipeline(workspace)
    (workspace / "flow").mkdir()
    r = client.post("/api/pipelines/flow/nodes", json={"runtime": "shell", "id": "tidy"})
    assert r.status_code == 201 and r.json["source_path"] == "flow/tidy.sh"
    assert (workspace / "flow/tidy.sh").is_file()


def test_autorun_toggle(workspace, client):
    shell_pipeline(workspace)
    r = client.put("/api/pipelines/flow/autorun", json={"enabled": True})
    assert r.status_code == 200 and r.json["enabled"] is True
    assert _doc(client)["autorun"] is True
    assert_json_error(client.put("/api/pipelines/flow/autorun", json={"enabled": "yes"}), 400)
    assert_json_error(client.put("/api/pipelines/nope/autorun", json={"enabled": True}), 404)


def test_runtimes(client):
    rts = {r["name"]: r for r in client.get("/api/runtimes").json}
    assert {"python", "node", "go", "rust", "shell", "command"} <= set(rts)
    assert rts["rust"]["color"] == "#dea584" and rts["go"]["label"] == "Go"
    assert rts["python"]["source_ext"] == ".py" and rts["command"]["needs_source"] is False


def test_source_route(workspace, client):
    shell_pipeline(workspace)
    r = client.get("/api/pipelines/flow/nodes/make/source")
    assert r.status_code == 200
    assert r.json["language"] == "bash" and r.json["path"] == "make.sh"
    assert "making records" in r.json["code"]
    assert 'class="highlight"' in r.json["html"] and "linenos" in r.json["html"]
    assert_json_error(client.get("/api/pipelines/flow/nodes/nope/source"), 404)
    (workspace / "copy.sh").unlink()
    assert_json_error(client.get("/api/pipelines/flow/nodes/copy/source"), 404)


def test_pygments_css(client):
    r = client.get("/api/pygments.css")
    assert r.status_code == 200 and r.mimetype == "text/css"
    css = r.get_data(as_text=True)
    assert ".highlight .k" in css and "prefers-color-scheme: dark" in css
    light = client.get("/api/pygments.css?theme=light").get_data(as_text=True)
    assert "prefers-color-scheme" not in light
    assert_json_error(client.get("/api/pygments.css?theme=neon"), 400)


def test_unknown_route_and_method_are_json(client):
    assert_json_error(client.get("/api/nothing-here"), 404)
    assert_json_error(client.delete("/api/pipelines"), 405)


# ------------------------------------------------------------ runs

def test_run_lifecycle_routes(workspace, client):
    shell_pipeline(workspace)
    r = client.post("/api/pipelines/flow/runs", json={})
    assert r.status_code == 202, r.json
    run_id = r.json["run_id"]
    run = client.wait_run(run_id)
    assert run["status"] == "succeeded" and run["pipeline_id"] == "flow" and run["active"] is False
    assert run["nodes"]["copy"]["status"] == "succeeded"
    assert run["nodes"]["copy"]["artifacts"]["out"]["records"] == 2
    assert run["started_at"] and run["finished_at"]
    runs = client.get("/api/runs?pipeline=flow").json
    assert [x["run_id"] for x in runs] == [run_id]
    assert client.get("/api/pipelines/flow/runs/latest").json["run_id"] == run_id
    assert client.get("/api/runs?pipeline=other").json == []
    assert_json_error(client.get("/api/runs?limit=x"), 400)

    logs = client.get(f"/api/runs/{run_id}/nodes/make/logs").json
    assert [ln["text"] for ln in logs["lines"]] == ["making records"]
    assert logs["lines"][0]["stream"] == "out" and logs["next"] == logs["size"]
    again = client.get(f"/api/runs/{run_id}/nodes/make/logs?offset={logs['next']}").json
    assert again["lines"] == [] and again["next"] == logs["next"]
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/make/logs?offset=-1"), 400)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/make/logs?offset=zz"), 400)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/make/logs?offset=99999"), 400)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/nope/logs"), 404)
    assert_json_error(client.get("/api/runs/nope/nodes/make/logs"), 404)
    assert_json_error(client.get("/api/runs/nope"), 404)

    raw = client.get(f"/api/runs/{run_id}/nodes/copy/outputs/out/raw")
    assert raw.status_code == 200 and "attachment" in raw.headers["Content-Disposition"]
    assert json.loads(raw.data) == [{"n": 1}, {"n": 2}]
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/copy/outputs/nope/raw"), 404)

    # a cancel after the end is a conflict; an unknown run is 404
    assert_json_error(client.post(f"/api/runs/{run_id}/cancel", json={}), 409)
    assert_json_error(client.post("/api/runs/nope/cancel", json={}), 404)


def test_output_preview_route(workspace, client):
    shell_pipeline(workspace)
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(run_id)
    page = client.get(f"/api/runs/{run_id}/nodes/copy/outputs/out?offset=0&limit=1")
    assert page.status_code == 200, page.json
    assert page.json["format"] == "json" and page.json["limit"] == 1
    assert page.json["items"] == [{"n": 1}] and page.json["total"] == 2
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/copy/outputs/out?limit=0"), 400)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/copy/outputs/out?offset=x"), 400)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/copy/outputs/nope"), 404)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/nope/outputs/out"), 404)


def test_run_options_and_bad_run_requests(workspace, client):
    shell_pipeline(workspace)
    for body in ({"only": "nope"}, {"from": "nope"}, {"only": 5}, {"force": "yes"}, {"jobs": 0},
                 {"only": "make", "from": "make"}):
        assert_json_error(client.post("/api/pipelines/flow/runs", json=body), 400)
    assert_json_error(client.post("/api/pipelines/flow/runs", data="{", content_type="application/json"), 400)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(first)
    second = client.post("/api/pipelines/flow/runs", json={"only": "copy"})
    assert second.status_code == 202
    run = client.wait_run(second.json["run_id"])
    assert run["status"] == "succeeded"
    assert run["nodes"]["make"]["status"] == "cached"
    forced = client.wait_run(client.post("/api/pipelines/flow/runs", json={"force": True}).json["run_id"])
    assert {n["status"] for n in forced["nodes"].values()} == {"succeeded"}


def test_running_an_invalid_pipeline_is_422(workspace, client):
    shell_pipeline(workspace)
    (workspace / "make.sh").unlink()
    assert_json_error(client.post("/api/pipelines/flow/runs", json={}), 422)


def test_second_run_conflicts_and_cancel(workspace, client):
    shell_pipeline(workspace, scripts={"make": "echo start\nsleep 30\necho '[]' > out.json\n"})
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    body = assert_json_error(client.post("/api/pipelines/flow/runs", json={}), 409)
    assert body["run_id"] == run_id
    deadline = time.monotonic() + 10
    while client.get(f"/api/runs/{run_id}").json["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    # while running: the live node's log is readable
    live_nodes = client.get(f"/api/runs/{run_id}").json
    assert live_nodes["active"] is True
    r = client.post(f"/api/runs/{run_id}/cancel", json={})
    assert r.status_code == 202 and r.json["status"] == "cancelling"
    run = client.wait_run(run_id, timeout=15)
    assert run["status"] == "cancelled"
    assert run["nodes"]["make"]["status"] == "cancelled"


def test_large_output_gets_counted_in_the_background(workspace, client):
    # bigger than the runner's own counting limit (32 MB): counted by the web layer after the run
    code = ("import json\nrow = json.dumps({'id': 0, 'pad': 'x' * 90})\n"
            "with open('out.ndjson', 'w') as fh:\n    fh.write((row + '\\n') * 360000)\n")
    path = python_pipeline(workspace, code)
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][0]["outputs"] = [{"name": "out", "format": "ndjson"}]
    path.write_text(yaml.safe_dump(doc))
    run = client.wait_run(client.post("/api/pipelines/py/runs", json={}).json["run_id"], timeout=60)
    assert run["nodes"]["talk"]["artifacts"]["out"]["size"] > 32 * 1024 * 1024
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        art = client.get(f"/api/runs/{run['run_id']}").json["nodes"]["talk"]["artifacts"]["out"]
        if art["records"] is not None:
            break
        time.sleep(0.1)
    assert art["records"] == 360000


# ------------------------------------------------------------ demo

def test_demo_route(workspace, client):
    from server.engine.demo import demo_root

    assert (demo_root() / "sensor-alerts.pipeline.yaml").is_file(), "the demo pipeline is missing from nodes/"
    r = client.post("/api/demo", json={})
    assert r.status_code == 201, r.json
    assert r.json == {"id": "sensor-alerts", "path": "sensor-alerts.pipeline.yaml"}
    assert (workspace / "sensor-alerts").is_dir()
    body = _doc(client, "sensor-alerts")
    assert body["version"] == 1 and len(body["document"]["nodes"]) >= 3
    structural = [p for p in body["problems"] if "not found on PATH" not in p["message"]
                  and "needs the `" not in p["message"]]
    assert structural == []
    assert_json_error(client.post("/api/demo", json={}), 409)


def test_versions_are_recorded_on_first_sight(workspace, client):
    shell_pipeline(workspace)
    v1 = client.get("/api/pipelines/flow/versions/1")
    assert v1.status_code == 200 and v1.json["note"] == "first seen"
    assert v1.json["text"] == (workspace / "flow.pipeline.yaml").read_text()


def test_the_list_follows_each_change_on_disk(workspace, client):
    path = shell_pipeline(workspace)
    first = {p["id"]: p for p in client.get("/api/pipelines").json}["flow"]
    assert first["nodes"] == 2 and not first["broken"]
    path.write_text(path.read_text().replace("name: flow", "name: renamed flow"))
    assert {p["id"]: p for p in client.get("/api/pipelines").json}["flow"]["name"] == "renamed flow"
    path.write_text("nodes: [")
    assert {p["id"]: p for p in client.get("/api/pipelines").json}["flow"]["broken"] is True
    path.unlink()
    assert client.get("/api/pipelines").json == []
