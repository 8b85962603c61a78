"""The dask executor against a real cluster on 127.0.0.1: same outputs as a local run, live logs, cancel,
timeouts, a worker killed mid-node, resources no worker has, a 600 MB artifact, and a client that dies."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import REPO, pipeloom_cmd, require
from tests.engine.util import shell_node, write_pipeline
from tests.run.conftest import have_dask, node_processes, wait_until
from tests.web.conftest import live, start_server  # noqa: F401 (fixtures)


def _runner(path: Path, ws: Path, address: str | None = None, **kw):
    from server.engine.model import load_pipeline
    from server.engine.run.executors import ExecutorChoice
    from server.engine.runner import RunOptions, Runner

    events = []
    choice = ExecutorChoice("dask", address, inline_limit=kw.pop("inline_limit", None)) if address else None
    runner = Runner(load_pipeline(path, workspace=ws), workspace=ws, listener=events.append,
                    options=RunOptions(executor=choice, **kw))
    return runner, events


def _run(path: Path, ws: Path, address: str | None = None, **kw):
    runner, events = _runner(path, ws, address, **kw)
    return runner.run(), events


def _digests(result) -> dict[tuple[str, str], str]:
    out = {}
    for nid, st in result.nodes.items():
        for port, art in st.artifacts.items():
            out[(nid, port)] = hashlib.sha256(Path(art["path"]).read_bytes()).hexdigest()
    return out


def _text(name: str) -> dict:
    return {"name": name, "file": f"{name}.txt", "format": "text"}


def _fanout(ws: Path, width: int = 12) -> Path:
    nodes, files, edges = [], {}, []
    n, f = shell_node("numbers", "seq 1 60000 > numbers.txt\n", outputs=[_text("numbers")])
    nodes.append(n)
    files.update(f)
    for i in range(width):
        n, f = shell_node(f"times-{i}", f"awk '{{print $1 * {i + 2}}}' numbers.txt > scaled.txt\n"
                                        "wc -l < scaled.txt > count.txt\n",
                          inputs=[_text("numbers")], outputs=[_text("scaled"), _text("count")])
        nodes.append(n)
        files.update(f)
        edges.append({"from": "numbers.numbers", "to": f"times-{i}.numbers"})
    ins = [{"name": f"in{i}", "file": f"in{i}.txt", "format": "text"} for i in range(width)]
    n, f = shell_node("join", "cat " + " ".join(f"in{i}.txt" for i in range(width)) + " | sort -n | uniq -c"
                              " | sha256sum > total.txt\n", inputs=ins, outputs=[_text("total")])
    nodes.append(n)
    files.update(f)
    edges += [{"from": f"times-{i}.scaled", "to": f"join.in{i}"} for i in range(width)]
    return write_pipeline(ws, {"version": 1, "name": "fan", "nodes": nodes, "edges": edges}, files)


def test_a_wide_fan_out_gives_the_same_bytes_as_a_local_run(workspace, cluster):
    path = _fanout(workspace)
    local, _ = _run(path, workspace)
    # a low inline limit sends the larger outputs through the shared folder, the counts as bytes
    remote, events = _run(path, workspace, cluster["address"], force=True, inline_limit=64 * 1024)
    assert local.ok and remote.ok, remote.to_dict()
    assert _digests(remote) == _digests(local)
    workers = {st.worker for st in remote.nodes.values()}
    assert workers <= {"worker-1", "worker-2"} and None not in workers
    running = [e for e in events if e.kind == "node_status" and e.status == "running"]
    assert running and all(e.worker in ("worker-1", "worker-2") for e in running)
    from server.engine.store.journal import Journals

    shown = Journals(workspace).get_run(remote.run_id)
    assert shown["nodes"]["join"]["worker"] == remote.nodes["join"].worker
    assert shown["options"]["executor"] == {"kind": "dask", "scheduler": cluster["address"]}


def test_the_demo_gives_the_same_results_under_dask_as_locally(workspace, cluster, require_tool):
    for tool in ("cargo", "go", "node"):
        require_tool(tool)
    import json
    import shutil

    shutil.copytree(REPO / "nodes", workspace / "nodes")
    rel = "nodes/sensor-alerts.pipeline.yaml"
    local = json.loads(pipeloom_cmd("run", rel, "--json", cwd=workspace, timeout=900).stdout)
    r = pipeloom_cmd("run", rel, "--json", "--force", "--executor", "dask", "--scheduler", cluster["address"],
                     cwd=workspace, timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    remote = json.loads(r.stdout)
    assert local["status"] == remote["status"] == "succeeded"
    assert {n["worker"] for n in remote["nodes"].values()} <= {"worker-1", "worker-2"}
    for nid, node in local["nodes"].items():
        for port, p in node["outputs"].items():
            q = remote["nodes"][nid]["outputs"][port]
            if p.endswith(".tar.gz"):  # an archive stamps its members' times: compare what it holds
                with tarfile.open(p) as a, tarfile.open(q) as b:
                    assert ({m.name: a.extractfile(m).read() for m in a.getmembers()}
                            == {m.name: b.extractfile(m).read() for m in b.getmembers()})
            else:
                assert Path(p).read_bytes() == Path(q).read_bytes(), f"{nid}.{port} differs"


def test_worker_logs_reach_the_cli_and_a_socketio_client_while_the_node_runs(workspace, cluster, start_server,
                                                                              live, monkeypatch, tmp_path):
    release = tmp_path / "release"
    n, f = shell_node("talk", "echo 'hello from a worker'\necho 'a warning' >&2\n"
                              "for i in $(seq 1 600); do [ -e \"$RELEASE\" ] && break; sleep 0.05; done\n"
                              "echo '[]' > out.json\n", env={"RELEASE": str(release)})
    write_pipeline(workspace, {"version": 1, "name": "talk", "executor": "dask", "nodes": [n]}, f,
                   name="talk.pipeline.yaml")
    monkeypatch.setenv("PIPELOOM_DASK_SCHEDULER", cluster["address"])
    srv = start_server()
    c = live(srv)
    assert c.call("subscribe", {"pipeline_id": "talk"})["ok"]
    status, _, resp = srv.request("POST", "/api/pipelines/talk/runs", {})
    assert status == 202, resp
    run_id = resp["run_id"]
    ours = lambda d: isinstance(d, dict) and d.get("run_id") == run_id  # noqa: E731
    got = c.wait_for("log", lambda d: ours(d) and any(ln["text"] == "hello from a worker" for ln in d["lines"]),
                     timeout=30)
    assert got["node_id"] == "talk"
    running = c.wait_for("node_status", lambda d: ours(d) and d["status"] == "running")
    assert running["worker"] in ("worker-1", "worker-2")
    cli = pipeloom_cmd("logs", run_id, "talk", cwd=workspace)
    assert "hello from a worker" in cli.stdout and "a warning" in cli.stderr
    assert not release.exists()  # all of the above while the node was still running
    release.touch()
    done = c.wait_for("run_status", lambda d: ours(d) and d["status"] in ("succeeded", "failed"), timeout=30)
    assert done["status"] == "succeeded"
    status, _, run = srv.request("GET", f"/api/runs/{run_id}")
    assert status == 200 and run["nodes"]["talk"]["worker"] == running["worker"]


def test_cancel_and_timeout_leave_no_process_on_any_worker(workspace, cluster, tmp_path):
    mark = tmp_path / "started"
    n, f = shell_node("wait", "touch \"$MARK\"\nsleep 300 &\nwait\n", env={"MARK": str(mark)})
    t, g = shell_node("slow", "sleep 300 &\nwait\n", timeout=1)
    path = write_pipeline(workspace, {"version": 1, "name": "stop", "nodes": [n, t]}, {**f, **g})
    runner, _ = _runner(path, workspace, cluster["address"])
    runner.start()
    assert wait_until(mark.exists, 30)
    assert node_processes(runner.run_id)
    runner.cancel()
    runner.join(30)
    result = runner.result()
    assert result.status == "cancelled"
    assert result.nodes["wait"].status == "cancelled"
    assert wait_until(lambda: not node_processes(runner.run_id), 10), node_processes(runner.run_id)

    timed, _ = _run(write_pipeline(workspace, {"version": 1, "name": "slow", "nodes": [t]}, g, name="slow.pipeline.yaml"),
                    workspace, cluster["address"])
    assert timed.nodes["slow"].status == "timed_out" and "timed out after 1s" in timed.nodes["slow"].message
    assert wait_until(lambda: not node_processes(timed.run_id), 10), node_processes(timed.run_id)


def test_a_node_needing_what_no_worker_offers_fails_clearly(workspace, cluster):
    a, f = shell_node("needy", "echo '[]' > out.json\n", resources={"gpu": 1, "cpu": 1})
    b, g = shell_node("picky", "echo '[]' > out.json\n", tags=["three"])
    ok, h = shell_node("easy", "echo '[]' > out.json\n", tags=["two"])
    path = write_pipeline(workspace, {"version": 1, "name": "res", "nodes": [a, b, ok]}, {**f, **g, **h})
    result, _ = _run(path, workspace, cluster["address"])
    assert result.nodes["needy"].status == "failed"
    msg = result.nodes["needy"].message
    assert "`needy`" in msg and "gpu=1" in msg and "no worker" in msg and cluster["address"] in msg
    assert "tag `three`" in result.nodes["picky"].message
    assert result.nodes["easy"].status == "succeeded" and result.nodes["easy"].worker == "worker-2"


def test_a_600_mb_artifact_moves_between_workers_with_its_sha256_checked(workspace, cluster):
    size = 600 * 1024 * 1024
    a, f = shell_node("make", f"yes 0123456789abcdef | head -c {size} > big.bin\n",
                      outputs=[{"name": "big", "file": "big.bin", "format": "binary"}], tags=["one"])
    b, g = shell_node("check", "sha256sum in.bin | cut -d' ' -f1 > sum.txt\nstat -c %s in.bin >> sum.txt\n",
                      inputs=[{"name": "big", "file": "in.bin", "format": "binary"}], outputs=[_text("sum")],
                      tags=["two"])
    path = write_pipeline(workspace, {"version": 1, "name": "big", "nodes": [a, b],
                                      "edges": [{"from": "make.big", "to": "check.big"}]}, {**f, **g})
    result, _ = _run(path, workspace, cluster["address"])
    assert result.ok, result.to_dict()
    assert (result.nodes["make"].worker, result.nodes["check"].worker) == ("worker-1", "worker-2")
    art = result.nodes["make"].artifacts["big"]
    assert art["size"] == size
    seen, seen_size = Path(result.nodes["check"].artifacts["sum"]["path"]).read_text().split()
    assert seen == art["sha256"] and int(seen_size) == size
    assert not (workspace / ".pipeloom" / "transfer" / result.run_id).exists(), "the shared folder is left clean"


def test_a_damaged_input_fails_the_node_naming_the_edge(workspace, cluster):
    a, f = shell_node("make", "seq 1 1000 > n.txt\n", outputs=[_text("n")])
    b, g = shell_node("use", "cp n.txt out.txt\n", inputs=[_text("n")], outputs=[_text("out")])
    path = write_pipeline(workspace, {"version": 1, "name": "dmg", "nodes": [a, b],
                                      "edges": [{"from": "make.n", "to": "use.n"}]}, {**f, **g})
    first, _ = _run(path, workspace, cluster["address"])
    assert first.ok
    made = Path(first.nodes["make"].artifacts["n"]["path"])
    st = made.stat()
    made.write_bytes(made.read_bytes().replace(b"1", b"7", 1))  # same size and time: only the sha256 tells
    os.utime(made, ns=(st.st_atime_ns, st.st_mtime_ns))
    again, _ = _run(path, workspace, cluster["address"], only="use", inline_limit=0)
    msg = again.nodes["use"].message or ""
    assert again.nodes["use"].status == "failed", again.to_dict()
    assert "edge make.n → use.n" in msg and "damaged" in msg


def test_a_worker_killed_mid_node_is_replaced_by_the_other(workspace, own_cluster, tmp_path):
    mark = tmp_path / "parents"
    n, f = shell_node("survive", "echo \"$PPID\" >> \"$MARK\"\n"
                                 "if [ \"$(wc -l < \"$MARK\")\" -eq 1 ]; then sleep 300 & wait; fi\n"
                                 "echo '[]' > out.json\n", env={"MARK": str(mark)})
    path = write_pipeline(workspace, {"version": 1, "name": "kill", "nodes": [n]}, f)
    runner, _ = _runner(path, workspace, own_cluster["address"])
    runner.start()
    assert wait_until(mark.exists, 30)
    first = int(mark.read_text().split()[0])
    workers = {p["pid"]: p["role"] for p in own_cluster["processes"] if p["role"].startswith("worker")}
    assert first in workers, "the node's program is a child of the worker that runs it"
    os.kill(first, signal.SIGKILL)
    runner.join(60)
    result = runner.result()
    assert result.ok, result.to_dict()
    parents = [int(x) for x in mark.read_text().split()]
    assert len(parents) == 2 and parents[1] != first and parents[1] in workers
    assert result.nodes["survive"].worker == workers[parents[1]]
    assert wait_until(lambda: not node_processes(runner.run_id), 10), node_processes(runner.run_id)


def test_the_client_dying_mid_run_stops_its_nodes(workspace, cluster, tmp_path):
    mark = tmp_path / "run-id"
    n, f = shell_node("long", "echo \"$PIPELOOM_RUN_ID\" > \"$MARK\"\nsleep 300 &\nwait\n", env={"MARK": str(mark)})
    path = write_pipeline(workspace, {"version": 1, "name": "orphan", "nodes": [n]}, f)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "run", path.name, "--executor", "dask",
                             "--scheduler", cluster["address"]], cwd=workspace, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: mark.exists() and mark.read_text().strip(), 30)
        run_id = mark.read_text().strip()
        assert node_processes(run_id)
    finally:
        proc.kill()
        proc.wait(10)
    assert wait_until(lambda: not node_processes(run_id), 20), node_processes(run_id)


def test_an_unreachable_scheduler_or_unknown_executor_exits_2(workspace):
    require(have_dask(), "dask[distributed] is not installed (pip install 'pipeloom[dask]')")
    n, f = shell_node("a", "echo '[]' > out.json\n")
    write_pipeline(workspace, {"version": 1, "name": "x", "nodes": [n]}, f)
    r = pipeloom_cmd("run", "test.pipeline.yaml", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                     cwd=workspace, timeout=60)
    assert r.returncode == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr
    r = pipeloom_cmd("run", "test.pipeline.yaml", "--executor", "ray", cwd=workspace)
    assert r.returncode == 2 and "ray" in r.stderr
    r = pipeloom_cmd("run", "test.pipeline.yaml", "--scheduler", "tcp://10.1.2.3:8786", cwd=workspace)
    assert r.returncode == 2 and "tls://" in r.stderr
    r = pipeloom_cmd("serve", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--port", "0", cwd=workspace,
                     timeout=60)
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr
    bad = {"version": 1, "name": "x", "executor": "spark", "nodes": [{**n, "resources": {"memory": "lots"}}]}
    write_pipeline(workspace, bad, f)
    r = pipeloom_cmd("run", "test.pipeline.yaml", cwd=workspace)
    assert r.returncode == 2 and "executor" in r.stderr and "resources.memory" in r.stderr


def test_cluster_commands_start_report_and_stop(workspace):
    require(have_dask(), "dask[distributed] is not installed (pip install 'pipeloom[dask]')")
    r = pipeloom_cmd("cluster", "start", "--workers", "1", "--tag", "gpu", cwd=workspace, timeout=120,
                     env={"PIPELOOM_TEST_TAG": ""})
    try:
        assert r.returncode == 0, r.stderr
        address = r.stdout.strip()
        assert address.startswith("tcp://127.0.0.1:")
        st = pipeloom_cmd("cluster", "status", cwd=workspace)
        assert st.returncode == 0 and address in st.stdout and "tag `gpu`" in st.stdout
        again = pipeloom_cmd("cluster", "start", cwd=workspace)
        assert again.returncode == 2 and "already running" in again.stderr
        n, f = shell_node("a", "echo '[]' > out.json\n", tags=["gpu"])
        write_pipeline(workspace, {"version": 1, "name": "x", "nodes": [n]}, f)
        run = pipeloom_cmd("run", "test.pipeline.yaml", "--executor", "dask", "--json", cwd=workspace)
        assert run.returncode == 0, run.stderr
    finally:
        stop = pipeloom_cmd("cluster", "stop", cwd=workspace)
    assert stop.returncode == 0 and "stopped 2 process(es)" in stop.stdout
    assert pipeloom_cmd("cluster", "status", cwd=workspace).returncode == 1

