"""What the studio's run views are built on: a run keeps the pipeline it ran, every step's latest
result and the run that made it, build time apart from a step's own time, and problems that say
which step, port or connection they concern."""

from __future__ import annotations

import json

import yaml

from server.engine.errors import Problem
from server.engine.paths import Layout
from server.engine.store.journal import node_record

from .conftest import shell_pipeline


def _add_step(workspace, client):
    """Save today's document with one more step (`late`), fed by `make`."""
    got = client.get("/api/pipelines/flow").json
    doc = got["document"]
    (workspace / "late.sh").write_text("cp in.json out.json\n")
    doc["nodes"].append({"id": "late", "runtime": "shell", "source": "late.sh",
                         "inputs": [{"name": "in", "format": "json"}], "outputs": [{"name": "out", "format": "json"}]})
    doc["edges"].append({"from": "make.out", "to": "late.in"})
    resp = client.put("/api/pipelines/flow", json={"document": doc, "version": got["version"]})
    assert resp.status_code == 200, resp.json


def test_a_run_keeps_the_document_it_ran(workspace, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    run = client.wait_run(first)
    ids = [n["id"] for n in run["document"]["nodes"]]
    assert ids == ["make", "copy"]
    assert run["document"]["edges"] == [{"from": "make.out", "to": "copy.in"}]
    journal = json.loads((Layout(workspace).run_dir(first) / "run.json").read_text())
    assert journal["document"] == run["document"]

    _add_step(workspace, client)
    second = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert [n["id"] for n in client.wait_run(second)["document"]["nodes"]] == ["make", "copy", "late"]
    # the first run still has the document it ran, not today's
    assert [n["id"] for n in client.get(f"/api/runs/{first}").json["document"]["nodes"]] == ["make", "copy"]


def test_a_run_recorded_before_runs_kept_their_document_says_so(workspace, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(first)
    path = Layout(workspace).run_dir(first) / "run.json"
    old = json.loads(path.read_text())
    old.pop("document")
    path.write_text(json.dumps(old))
    assert client.get(f"/api/runs/{first}").json["document"] is None


def test_latest_results_after_a_one_step_run(workspace, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(first)
    # `make` alone: `copy` keeps its result from the first run
    second = client.post("/api/pipelines/flow/runs", json={"only": "make"}).json["run_id"]
    assert set(client.wait_run(second)["nodes"]) == {"make"}
    latest = client.get("/api/pipelines/flow/latest").json
    assert latest["pipeline_id"] == "flow"
    make, copy = latest["nodes"]["make"], latest["nodes"]["copy"]
    assert (make["run_id"], make["result_run"], make["status"]) == (second, second, "succeeded")
    assert (copy["run_id"], copy["result_run"], copy["status"]) == (first, first, "succeeded")
    assert copy["artifacts"]["out"]["records"] == 2 and copy["run_started_at"]


def test_latest_results_point_a_reused_step_at_the_run_that_made_it(workspace, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(first)
    second = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert {n["status"] for n in client.wait_run(second)["nodes"].values()} == {"cached"}
    nodes = client.get("/api/pipelines/flow/latest").json["nodes"]
    for nid in ("make", "copy"):
        assert nodes[nid]["run_id"] == second and nodes[nid]["status"] == "cached"
        assert nodes[nid]["result_run"] == first  # its outputs, log and record changes are the first run's
        assert nodes[nid]["result"]["duration_s"] is not None


def test_latest_results_of_a_pipeline_never_run_and_of_none(workspace, client):
    shell_pipeline(workspace)
    assert client.get("/api/pipelines/flow/latest").json == {"pipeline_id": "flow", "nodes": {}}
    resp = client.get("/api/pipelines/nope/latest")
    assert resp.status_code == 404 and "nope" in resp.json["error"]


def test_build_time_is_kept_apart_from_the_step_time():
    row, _ = node_record("r", "n", status="succeeded", started_at=100.0, finished_at=193.1, exit_code=0,
                         cache_key=None, attempts=1, message=None, log_path=None, workdir=None, build_s=91.0)
    assert row["build_s"] == 91.0 and round(row["duration_s"], 3) == 2.1
    row, _ = node_record("r", "n", status="succeeded", started_at=100.0, finished_at=102.1, exit_code=0,
                         cache_key=None, attempts=1, message=None, log_path=None, workdir=None)
    assert "build_s" not in row and round(row["duration_s"], 3) == 2.1


def test_runs_say_build_time_and_the_snapshot_uses_the_same_fields(workspace, app, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    run = client.wait_run(first)
    assert all("build_s" in n and n["build_s"] is None for n in run["nodes"].values())  # a shell step builds nothing
    snap = app.extensions["pipeloom"].runs.snapshot(run_id=first)
    assert set(snap["nodes"]["make"]) >= {"status", "duration_s", "build_s", "message"}


def test_problems_say_which_step_port_or_connection(workspace, client):
    path = shell_pipeline(workspace)
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["inputs"].append({"name": "extra", "format": "json"})
    doc["edges"].append({"from": "make.out", "to": "copy.nope"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = client.get("/api/pipelines/flow").json["problems"]
    fed = next(p for p in problems if "fed by nothing" in p["message"])
    assert (fed["node"], fed["port"], fed["port_kind"]) == ("copy", "extra", "inputs")
    edge = next(p for p in problems if p["where"].startswith("edge"))
    assert edge["edge"] == "make.out->copy.nope" and "node" not in edge
    # the 422 of a refused save carries the same fields
    got = client.get("/api/pipelines/flow").json
    resp = client.put("/api/pipelines/flow", json={"document": doc, "version": got["version"]})
    assert resp.status_code == 422
    assert any(d.get("port") == "extra" and d.get("node") == "copy" for d in resp.json["details"])


def test_problem_subjects():
    assert Problem("node `a`", "m").subject() == {"node": "a"}
    assert Problem("node `a`, output `o`", "m").subject() == {"node": "a", "port": "o", "port_kind": "outputs"}
    assert Problem("edge `a.o -> b.i`", "m").subject() == {"edge": "a.o->b.i"}
    assert Problem("field `name`", "m").subject() == {} and Problem("", "m").subject() == {}


def test_the_story_of_a_past_run_draws_the_pipeline_it_ran(workspace, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(first)
    _add_step(workspace, client)
    old = client.get(f"/api/runs/{first}/story").get_data(as_text=True)
    assert "late" not in old  # the step added since is not in the page of the run before it
    second = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(second)
    assert "late" in client.get(f"/api/runs/{second}/story").get_data(as_text=True)
