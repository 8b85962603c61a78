"""Run requests: errors name the JSON field, and cached nodes say which run they come from."""

from __future__ import annotations

from server.web.api import name_field
from tests.web.conftest import assert_json_error, shell_pipeline


def test_unknown_node_errors_name_the_json_field(workspace, client):
    shell_pipeline(workspace)
    for field in ("only", "from"):
        body = assert_json_error(client.post("/api/pipelines/flow/runs", json={field: "nope"}), 400)
        assert body["error"].startswith(f'"{field}": '), body
        assert "no node called `nope`" in body["error"] and "make" in body["error"]
        assert "--" not in body["error"], "the API speaks of JSON fields, not command-line flags"


def test_name_field_leaves_a_message_that_names_it():
    assert name_field("`only` must be a node id", "only") == "`only` must be a node id"
    assert name_field("no node called `x` (nodes: a)", "from") == '"from": no node called `x` (nodes: a)'
    assert name_field("--from x: no node called `x` (nodes: a)", "from") == '"from": no node called `x` (nodes: a)'


def test_cached_nodes_carry_their_source_run(workspace, app, client):
    shell_pipeline(workspace)
    first = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert client.wait_run(first)["status"] == "succeeded"
    second = client.post("/api/pipelines/flow/runs", json={"only": "copy"}).json["run_id"]
    run = client.wait_run(second)
    assert run["nodes"]["make"]["status"] == "cached"
    assert "source_run" not in run["nodes"]["copy"]
    assert all("source_run" not in n for n in client.get(f"/api/runs/{first}").json["nodes"].values())

    st = app.extensions["pipeloom"]
    stored = st.store.get_run(second)["nodes"]["make"]
    snap = st.runs.snapshot(run_id=second)["nodes"]
    assert "source_run" not in snap["copy"]
    if stored.get("source_run"):
        assert stored["source_run"] == first
        assert run["nodes"]["make"]["source_run"] == first
        assert snap["make"]["source_run"] == first
    else:
        # a store without the field: the answer simply has none
        assert "source_run" not in run["nodes"]["make"] and "source_run" not in snap["make"]
