"""A pipeline file that does not parse is shown as broken and never overwritten by a save
(unless the client asks to replace it); a file that parses but is invalid still opens."""

from __future__ import annotations

import json

import yaml

from tests.web.conftest import assert_json_error, shell_pipeline, write

BROKEN = ("the file on disk has errors; fix it in your editor first "
          "(the studio reloads it when it changes)")


def _get(client, pid="flow"):
    r = client.get(f"/api/pipelines/{pid}")
    assert r.status_code == 200, r.json
    return r.json


def _assert_problems(problems):
    assert problems, "a broken file must say what is wrong"
    for p in problems:
        assert set(p) == {"where", "message", "line"}, p
        assert isinstance(p["message"], str) and p["message"]


def test_half_edited_yaml_is_broken_and_not_overwritten(workspace, client):
    path = shell_pipeline(workspace)
    good = _get(client)
    assert good["broken"] is False and good["document"] is not None
    # the user is half-way through an edit in their editor
    half = path.read_text().replace("- id: copy", "- id: copy\n   runtime: [shell")
    path.write_text(half)

    body = _get(client)
    assert body["document"] is None and body["broken"] is True
    assert body["version"] == good["version"] + 1
    _assert_problems(body["problems"])
    assert "invalid YAML" in body["problems"][0]["message"]
    assert isinstance(body["problems"][0]["line"], int)

    put = client.put("/api/pipelines/flow", json={"document": good["document"], "version": body["version"]})
    err = assert_json_error(put, 409)
    assert err["error"] == BROKEN and err["broken"] is True
    _assert_problems(err["details"])
    assert path.read_text() == half

    (item,) = client.get("/api/pipelines").json
    assert item["id"] == "flow" and item["broken"] is True
    assert "invalid YAML" in item["error"]
    assert item["problem"]["message"] == body["problems"][0]["message"]
    assert item["problem"]["line"] == body["problems"][0]["line"]


def test_replace_broken_overwrites_with_the_current_version_only(workspace, client):
    path = shell_pipeline(workspace)
    good = _get(client)
    path.write_text("nodes: [\n")
    broken = _get(client)
    stale = client.put("/api/pipelines/flow",
                       json={"document": good["document"], "version": good["version"], "replace_broken": True})
    assert assert_json_error(stale, 409)["current_version"] == broken["version"]
    assert path.read_text() == "nodes: [\n"
    assert_json_error(client.put("/api/pipelines/flow", json={"document": good["document"],
                                                              "version": broken["version"],
                                                              "replace_broken": "yes"}), 400)

    r = client.put("/api/pipelines/flow",
                   json={"document": good["document"], "version": broken["version"], "replace_broken": True})
    assert r.status_code == 200, r.json
    assert r.json["broken"] is False and r.json["version"] == broken["version"] + 1
    assert [n["id"] for n in yaml.safe_load(path.read_text())["nodes"]] == ["make", "copy"]
    (item,) = client.get("/api/pipelines").json
    assert item["broken"] is False and item["error"] is None and item["problem"] is None


def test_bad_json_and_non_mapping_files_are_broken(workspace, client):
    shell_pipeline(workspace)
    doc = _get(client)["document"]
    write(workspace, "bad.pipeline.json", '{"version": 1, "nodes": [}\n')
    write(workspace, "list.pipeline.yaml", "- one\n- two\n")
    listed = {p["id"]: p for p in client.get("/api/pipelines").json}
    assert listed["bad"]["broken"] and "invalid JSON" in listed["bad"]["error"]
    assert listed["list"]["broken"] and "mapping" in listed["list"]["problem"]["message"]
    assert listed["flow"]["broken"] is False
    for pid, name in (("bad", "bad.pipeline.json"), ("list", "list.pipeline.yaml")):
        body = _get(client, pid)
        assert body["broken"] is True and body["document"] is None
        _assert_problems(body["problems"])
        before = (workspace / name).read_text()
        err = assert_json_error(client.put(f"/api/pipelines/{pid}",
                                           json={"document": doc, "version": body["version"]}), 409)
        assert err["broken"] is True and err["error"] == BROKEN
        assert (workspace / name).read_text() == before
    assert _get(client, "bad")["problems"][0]["line"] == 1


def test_non_utf8_file_is_broken(workspace, client):
    shell_pipeline(workspace)
    doc = _get(client)["document"]
    raw = b"version: 1\nname: caf\xe9\nnodes: []\nedges: []\n"
    (workspace / "latin.pipeline.yaml").write_bytes(raw)
    (item,) = [p for p in client.get("/api/pipelines").json if p["id"] == "latin"]
    assert item["broken"] is True and "UTF-8" in item["error"]
    body = _get(client, "latin")
    assert body["broken"] is True and body["document"] is None
    assert "UTF-8" in body["problems"][0]["message"]
    err = assert_json_error(client.put("/api/pipelines/latin", json={"document": doc, "version": 1}), 409)
    assert err["broken"] is True
    assert (workspace / "latin.pipeline.yaml").read_bytes() == raw


def test_invalid_but_parsable_file_is_not_broken(workspace, client):
    path = shell_pipeline(workspace)
    on_disk = yaml.safe_load(path.read_text())
    on_disk["nodes"][1]["runtime"] = "cobol"
    path.write_text(yaml.safe_dump(on_disk, sort_keys=False))
    body = _get(client)
    assert body["broken"] is False and body["document"]["nodes"][1]["runtime"] == "cobol"
    assert any("cobol" in p["message"] for p in body["problems"]), body["problems"]
    (item,) = client.get("/api/pipelines").json
    assert item["broken"] is False and item["error"] is None
    fixed = body["document"]
    fixed["nodes"][1]["runtime"] = "shell"
    r = client.put("/api/pipelines/flow", json={"document": fixed, "version": body["version"]})
    assert r.status_code == 200, r.json
    assert r.json["problems"] == [] and yaml.safe_load(path.read_text())["nodes"][1]["runtime"] == "shell"


def test_json_error_body_of_a_broken_save_is_plain_json(workspace, client):
    write(workspace, "flow.pipeline.json", "{")
    r = client.put("/api/pipelines/flow", json={"document": {"nodes": [], "edges": []}, "version": 1})
    body = assert_json_error(r, 409)
    assert json.loads(r.get_data(as_text=True)) == body
    assert set(body) == {"error", "broken", "details"}
