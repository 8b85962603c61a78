"""A node's processes never outlive it: timeout, cancel, a clean exit and the death of Pipeloom itself
stop every descendant, including those that left the process group (setsid, nohup, daemons)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.engine.model import load_pipeline
from server.engine.process import TOKEN_VAR, find_marked
from server.engine.runner import Runner
from server.engine.store import Store
from tests.conftest import REPO
from tests.engine.util import shell_node, write_pipeline


def escapees(pidfile: Path) -> str:
    """Shell lines that start descendants the process-group kill misses, each writing its pid."""
    return (
        f"setsid sh -c 'echo $$ >> {pidfile}; exec sleep 300' &\n"
        f"nohup sh -c 'echo $$ >> {pidfile}; exec sleep 300' >/dev/null 2>&1 &\n"
        # a double-fork daemon in its own session, stdio closed, deaf to SIGTERM
        f"(setsid sh -c 'echo $$ >> {pidfile}; trap \"\" TERM; exec sleep 300' </dev/null >/dev/null 2>&1 &)\n"
        f"sh -c 'echo $$ >> {pidfile}; trap \"\" TERM; while :; do sleep 1; done' &\n"
    )


def pids_in(pidfile: Path, want: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pidfile.read_text().split() if pidfile.exists() else []
        if len(pids) >= want:
            return [int(p) for p in pids]
        time.sleep(0.05)
    raise AssertionError(f"only {pidfile.read_text() if pidfile.exists() else 'no'} pids written")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def left_after(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def kill_all(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def test_timeout_stops_descendants_outside_the_group(workspace, tmp_path):
    pidfile = tmp_path / "pids"
    n, f = shell_node("slow", escapees(pidfile) + "sleep 300\n", timeout=1)
    path = write_pipeline(workspace, {"version": 1, "name": "t", "nodes": [n]}, f)
    store = Store.open(workspace)
    res = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace).run()
    pids = pids_in(pidfile, 4)
    left = left_after(pids)
    kill_all(left)
    assert res.nodes["slow"].status == "timed_out"
    assert left == [], f"{len(left)} descendants survived the timeout"


def test_cancel_stops_descendants_outside_the_group(workspace, tmp_path):
    pidfile = tmp_path / "pids"
    n, f = shell_node("long", escapees(pidfile) + "sleep 300\n")
    path = write_pipeline(workspace, {"version": 1, "name": "c", "nodes": [n]}, f)
    store = Store.open(workspace)
    runner = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace)
    th = runner.start()
    pids = pids_in(pidfile, 4)
    runner.cancel()
    th.join(20)
    left = left_after(pids)
    kill_all(left)
    assert runner.result().nodes["long"].status == "cancelled"
    assert left == [], f"{len(left)} descendants survived the cancel"


def test_daemon_left_by_a_node_that_exits_is_stopped(workspace, tmp_path):
    pidfile = tmp_path / "pids"
    script = (f"(setsid sh -c 'echo $$ >> {pidfile}; exec sleep 300' </dev/null >/dev/null 2>&1 &)\n"
              f"while [ ! -s {pidfile} ]; do sleep 0.01; done\necho '[]' > out.json\n")
    n, f = shell_node("quick", script)
    path = write_pipeline(workspace, {"version": 1, "name": "d", "nodes": [n]}, f)
    store = Store.open(workspace)
    res = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace).run()
    pids = pids_in(pidfile, 1)
    left = left_after(pids)
    kill_all(left)
    assert res.ok
    assert left == [], "the daemon outlived its node"


def test_every_descendant_carries_the_node_marker(workspace, tmp_path):
    out = tmp_path / "tokens"
    n, f = shell_node("mark", f"echo \"${TOKEN_VAR}\" >> {out}\n"
                              f"setsid sh -c 'echo \"${TOKEN_VAR}\" >> {out}'\necho '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "m", "nodes": [n]}, f)
    store = Store.open(workspace)
    res = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace).run()
    assert res.ok
    tokens = out.read_text().split()
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    run_id, node_id, rand = tokens[0].split("/")
    assert (run_id, node_id) == (res.run_id, "mark") and rand


def test_find_marked_matches_whole_tokens_only(tmp_path):
    env = {**os.environ, TOKEN_VAR: "run-x/node/abc"}
    procs = [subprocess.Popen(["sleep", "30"], env=env),
             subprocess.Popen(["sleep", "30"], env={**os.environ, TOKEN_VAR: "run-x/node/abcd"})]
    try:
        assert find_marked("run-x/node/abc") == [procs[0].pid]
        assert sorted(find_marked("run-x/", prefix=True)) == sorted(p.pid for p in procs)
        assert find_marked("run-y/", prefix=True) == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_nodes_die_with_pipeloom_even_on_kill_9(workspace, tmp_path):
    """No later command opens the workspace: the node's processes must stop on their own."""
    pidfile = tmp_path / "pids"
    n, f = shell_node("long", f"echo $$ >> {pidfile}\n" + escapees(pidfile) + "sleep 300\n")
    write_pipeline(workspace, {"version": 1, "name": "k", "nodes": [n]}, f)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = subprocess.Popen([sys.executable, "-m", "server.cli", "run", "test.pipeline.yaml"], cwd=workspace,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = pids_in(pidfile, 5, timeout=30)
    finally:
        cli.kill()
        cli.wait()
    left = left_after(pids)
    kill_all(left)
    assert left == [], f"{len(left)} of {len(pids)} node processes outlived `pipeloom run` (kill -9)"


def test_recovery_of_a_dead_run_stops_its_marked_processes(workspace):
    """What a dead run left in another session is found by the run id in its marker."""
    from server.engine.paths import Layout
    from server.engine.process import stop_orphans

    groups = Layout(workspace).run_dir("20260101-000000-dead") / "_groups"
    groups.mkdir(parents=True)
    mine = subprocess.Popen(["sleep", "300"], start_new_session=True,
                            env={**os.environ, TOKEN_VAR: "20260101-000000-dead/n/1234"})
    other = subprocess.Popen(["sleep", "300"], env={**os.environ, TOKEN_VAR: "20260101-000000-live/n/1234"})
    try:
        assert stop_orphans(groups) >= 1
        assert mine.wait(5) == -signal.SIGKILL
        assert other.poll() is None, "a process of another run is left alone"
    finally:
        for p in (mine, other):
            p.kill()
            p.wait()
