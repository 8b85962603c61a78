"""The `pipeloom` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, pipeloom_cmd
from tests.engine.util import shell_node, write_pipeline


def two_nodes(ws: Path, fail: bool = False) -> Path:
    a, fa = shell_node("make", "echo '[{\"k\": 1}, {\"k\": 2}]' > out.json\necho made\n")
    b, fb = shell_node("check", ("echo 'checked 2 rows' \necho 'row 2: value is not a number' >&2\nexit 4\n"
                                 if fail else "cp in.json out.json\n"), inputs=("in",))
    return write_pipeline(ws, {"version": 1, "name": "cli", "nodes": [a, b],
                               "edges": [{"from": "make.out", "to": "check.in"}]}, {**fa, **fb})


def test_run_json_prints_exactly_one_object(workspace):
    path = two_nodes(workspace)
    r = pipeloom_cmd("run", path.name, "--json", cwd=workspace)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded" and doc["run_id"]
    node = doc["nodes"]["check"]
    assert node["status"] == "succeeded" and node["exit_code"] == 0 and isinstance(node["duration_s"], float)
    out = Path(node["outputs"]["out"])
    assert out.is_absolute() and json.loads(out.read_text()) == [{"k": 1}, {"k": 2}]
    again = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert {n["status"] for n in again["nodes"].values()} == {"cached"}


def test_failed_run_exits_1_and_says_how_to_resume(workspace):
    path = two_nodes(workspace, fail=True)
    r = pipeloom_cmd("run", path.name, cwd=workspace)
    assert r.returncode == 1
    assert "check" in r.stderr and "exited with code 4" in r.stderr
    assert "│ row 2: value is not a number" in r.stderr, "the node's last error line is shown"
    assert f"pipeloom run {path.name} --from check" in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_errors_exit_2(workspace):
    path = two_nodes(workspace)
    for args, needle in [
        (["run", path.name, "--only", "ghost"], "no node called `ghost`"),
        (["run", path.name, "--only", "check", "--from", "make"], "either --only or --from"),
        (["run", path.name, "--only", "check"], "never run successfully"),
        (["run", path.name, "--jobs", "0"], "--jobs"),
        (["show", "no-such-run"], "no run `no-such-run`"),
        (["run", "/etc/hostname.pipeline.yaml"], "no such file"),
    ]:
        r = pipeloom_cmd(*args, cwd=workspace)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_pipeline_outside_workspace_is_refused(workspace, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    path = two_nodes(other)
    r = pipeloom_cmd("run", str(path), cwd=workspace)
    assert r.returncode == 2 and "outside the workspace" in r.stderr
    r = pipeloom_cmd("run", str(path), "--workspace", str(other), "--json", cwd=workspace)
    assert r.returncode == 0, r.stderr
    assert str(other) in json.loads(r.stdout)["nodes"]["check"]["outputs"]["out"]


def test_runs_show_and_logs(workspace):
    path = two_nodes(workspace)
    run_id = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)["run_id"]
    r = pipeloom_cmd("runs", cwd=workspace)
    assert r.returncode == 0 and run_id in r.stdout and "succeeded" in r.stdout
    r = pipeloom_cmd("show", run_id, cwd=workspace)
    assert r.returncode == 0 and "make" in r.stdout and "check" in r.stdout and "out.json" in r.stdout
    r = pipeloom_cmd("logs", run_id, "make", cwd=workspace)
    assert r.returncode == 0 and r.stdout.strip() == "made"
    r = pipeloom_cmd("logs", run_id, "ghost", cwd=workspace)
    assert r.returncode == 2
    cached_run = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)["run_id"]
    r = pipeloom_cmd("logs", cached_run, "make", cwd=workspace)
    assert r.returncode == 0 and r.stdout == ""
    assert "was cached" in r.stderr and f"pipeloom logs {run_id} make" in r.stderr


def test_ctrl_c_cancels_running_nodes(workspace, tmp_path):
    marker = tmp_path / "started"
    n, f = shell_node("wait", f"touch {marker}\nsleep 300\n")
    path = write_pipeline(workspace, {"version": 1, "name": "int", "nodes": [n]}, f)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "run", path.name, "--json"], cwd=workspace,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if marker.exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    doc = json.loads(out)
    assert doc["status"] == "cancelled" and doc["nodes"]["wait"]["status"] == "cancelled"


def test_validate_counts_read_naturally(workspace):
    n, f = shell_node("only", "true\n")
    path = write_pipeline(workspace, {"version": 1, "name": "one", "nodes": [n]}, f)
    r = pipeloom_cmd("validate", path.name, cwd=workspace)
    assert r.returncode == 0 and "1 node, 0 edges" in r.stdout


def test_a_field_given_twice_is_refused_naming_the_step_field_and_both_lines(workspace):
    (workspace / "a.sh").write_text("true\n")
    (workspace / "twice.pipeline.yaml").write_text(
        "version: 1\n"
        "name: twice\n"
        "nodes:\n"
        "  - id: only\n"
        "    runtime: gopher\n"
        "    runtime: shell\n"
        "    source: a.sh\n"
        "edges: []\n")
    r = pipeloom_cmd("validate", "twice.pipeline.yaml", cwd=workspace)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "node `only`, field `runtime` (line 6): given twice (lines 5 and 6)" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_human_output_lists_nodes_and_outputs(workspace):
    path = two_nodes(workspace)
    r = pipeloom_cmd("run", path.name, cwd=workspace)
    assert r.returncode == 0
    assert "make" in r.stderr and "check" in r.stderr and "succeeded" in r.stderr
    assert "output check.out" in r.stderr and "2 records" in r.stderr
    assert r.stdout == ""
