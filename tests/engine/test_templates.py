"""The starter source the studio writes for a new node really runs, in every runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.engine.model import load_pipeline
from server.engine.runner import Runner
from server.engine.runtimes import RUNTIMES
from server.engine.store import Store
from tests.engine.util import write_pipeline

TOOLS = {"node": "node", "go": "go", "rust": "cargo", "shell": "bash"}


@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if RUNTIMES[r].needs_source])
def test_template_runs_and_writes_its_output(workspace, require_tool, runtime):
    if runtime in TOOLS:
        require_tool(TOOLS[runtime])
    rt = RUNTIMES[runtime]
    source = f"starter{rt.source_ext}"
    path = write_pipeline(workspace, {"version": 1, "name": "tpl", "nodes": [
        {"id": "starter", "runtime": runtime, "source": source, "params": {"greeting": "hi"},
         "outputs": [{"name": "out"}]}]}, {source: rt.template("starter")})
    res = Runner(load_pipeline(path, workspace=workspace), store=Store.open(workspace), workspace=workspace).run()
    assert res.ok, (res.nodes["starter"].message,
                    Path(workspace / ".pipeloom/runs" / res.run_id / "_logs/starter.log").read_text())
    data = json.loads(Path(res.nodes["starter"].artifacts["out"]["path"]).read_text())
    assert data, "the starter writes something a newcomer can see in the preview"
