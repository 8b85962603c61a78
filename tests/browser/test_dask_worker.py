"""The studio says which Dask worker ran a step, live and after a reload."""

from __future__ import annotations

import re

import pytest

from tests.engine.util import shell_node, write_pipeline
from tests.run.conftest import cluster  # noqa: F401 (fixture)


@pytest.fixture
def on_dask(cluster, workspace, monkeypatch):  # noqa: F811
    """A pipeline whose nodes run on the test cluster (`executor: dask`, PIPELOOM_DASK_SCHEDULER)."""
    monkeypatch.setenv("PIPELOOM_DASK_SCHEDULER", cluster["address"])
    n, f = shell_node("hello", "echo 'hello from a worker'\necho '[1, 2]' > out.json\n", title="Say hello")
    write_pipeline(workspace, {"version": 1, "name": "far", "executor": "dask", "nodes": [n]}, f,
                   name="far.pipeline.yaml")
    return "far"


def test_the_inspector_names_the_worker_that_ran_a_step(on_dask, studio):
    page = studio.open(on_dask)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_selector('.card[data-node-id="hello"][data-status="succeeded"]', timeout=30_000)
    page.locator('.card[data-node-id="hello"] .card-title').click()
    ran_on = re.compile(r"Dask worker worker-[12]")
    page.get_by_text(ran_on).wait_for()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.locator('.card[data-node-id="hello"] .card-title').click()
    page.get_by_text(ran_on).wait_for()
