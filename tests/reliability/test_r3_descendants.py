"""R3: timeout and cancel stop every descendant of a node: grandchildren, nohup, setsid, double-fork
daemons and children that ignore SIGTERM. Target: 0 processes left 5 s later."""

from __future__ import annotations

import os

import pytest

from server.engine.model import load_pipeline
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.conftest import _procs_with_tag
from tests.engine.test_process import alive, escapees, kill_all, left_after, pids_in
from tests.engine.util import shell_node, write_pipeline

pytestmark = pytest.mark.reliability

NODES = 4  # per run, all at once
ROUNDS = 2  # runs per way of stopping
KINDS = 5  # processes each node writes down: itself and four that try to escape


def pipeline(ws, tmp, round_no: int, **extra):
    nodes, files, pidfiles = [], {}, []
    for i in range(NODES):
        pidfile = tmp / f"pids-{round_no}-{i}"
        pidfiles.append(pidfile)
        script = (f"echo $$ >> {pidfile}\n" + escapees(pidfile)
                  + "bash -c 'sleep 300 & wait' &\n"  # a plain grandchild, in the group
                  + "sleep 300\n")
        n, f = shell_node(f"n{i}", script, **extra)
        nodes.append(n)
        files.update(f)
    path = write_pipeline(ws, {"version": 1, "name": f"r3-{round_no}", "nodes": nodes}, files,
                          name=f"r3-{round_no}.pipeline.yaml")
    return path, pidfiles


def stop_and_count(workspace, tmp_path, how: str) -> tuple[int, int, int, list[str]]:
    """(processes written down, left 5 s after the stop, tagged processes left, node statuses)."""
    started = left = tagged = 0
    statuses: list[str] = []
    store = Store.open(workspace)
    for r in range(ROUNDS):
        extra = {"timeout": 1} if how == "timeout" else {}
        path, pidfiles = pipeline(workspace, tmp_path, r, **extra)
        runner = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace,
                        options=RunOptions(jobs=NODES, emit_logs=False))
        th = runner.start()
        pids = [p for f in pidfiles for p in pids_in(f, KINDS, timeout=30)]
        if how == "cancel":
            runner.cancel()
        th.join(60)
        assert not th.is_alive()
        statuses += [s.status for s in runner.result().nodes.values()]
        started += len(pids)
        still = left_after(pids, 5.0)
        left += len(still)
        tag = os.environ["PIPELOOM_TEST_TAG"]
        tagged += len(_procs_with_tag(tag))
        kill_all(still)
    store.close()
    return started, left, tagged, statuses


@pytest.mark.parametrize("how, status", [("timeout", "timed_out"), ("cancel", "cancelled")])
def test_r3_no_descendant_survives(workspace, tmp_path, figure, how, status):
    started, left, tagged, statuses = stop_and_count(workspace, tmp_path, how)
    figure("R3", f"processes left 5 s after {how}", left, target="0", ok=left == 0,
           detail=f"{started} written down over {ROUNDS} runs of {NODES} nodes: setsid, nohup, double-fork "
                  f"daemon, SIGTERM-ignoring and plain grandchildren")
    figure("R3", f"test-tagged processes left 5 s after {how}", tagged, target="0", ok=tagged == 0,
           detail="every process started during the test, found by its inherited tag")
    assert started == ROUNDS * NODES * KINDS
    assert statuses == [status] * (ROUNDS * NODES)
    assert left == 0 and tagged == 0


def test_r3_helpers_see_live_processes():
    """The counting above can fail: a live process is seen as alive, a dead one is not."""
    import subprocess

    p = subprocess.Popen(["sleep", "30"])
    try:
        assert alive(p.pid) and left_after([p.pid], 0.2) == [p.pid]
    finally:
        p.kill()
        p.wait()
    assert not alive(p.pid) and left_after([p.pid], 0.2) == []
