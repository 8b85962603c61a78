"""The scheduler: order, parallel branches, failures, timeouts, retries, cancel."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from server.engine.model import load_pipeline
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.engine.util import shell_node, write_pipeline


def run(path: Path, ws: Path, **opts):
    store = Store.open(ws)
    events = []
    runner = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws, options=RunOptions(**opts),
                    listener=events.append)
    result = runner.run()
    return result, events, store


def test_dependency_order_env_and_staging(workspace):
    a, fa = shell_node("a", 'echo "[{\\"x\\": 1}]" > out.json\necho "$PIPELOOM_RUN_ID $PIPELOOM_NODE_ID" > ids.txt\n')
    b, fb = shell_node("b", "\n".join([
        'test -f in.json',  # staged under its file name
        'test "$PIPELOOM_INPUT_IN" = "$PWD/in.json"',
        'test "$PIPELOOM_OUTPUT_MY_OUT" = "$PWD/my-out.json"',
        'echo "$PIPELOOM_PARAMS" > my-out.json',
        'cp params.json params-copy.json',
        'echo "b saw $(cat in.json)"',
    ]) + "\n", inputs=("in",), outputs=("my-out",), params={"threshold": 3})
    path = write_pipeline(workspace, {"version": 1, "name": "env", "nodes": [b, a],
                                      "edges": [{"from": "a.out", "to": "b.in"}]}, {**fa, **fb})
    result, events, store = run(path, workspace)
    assert result.status == "succeeded", {n: s.message for n, s in result.nodes.items()}
    out = Path(result.nodes["b"].artifacts["my-out"]["path"])
    assert json.loads(out.read_text()) == {"threshold": 3}
    running = [e.node_id for e in events if e.kind == "node_status" and e.status == "running"]
    assert running == ["a", "b"]
    assert (out.parent / "params-copy.json").read_text().strip() == '{"threshold": 3}'
    rec = store.get_run(result.run_id)
    assert rec["status"] == "succeeded"
    art = rec["nodes"]["b"]["artifacts"]["my-out"]
    assert art["size"] == out.stat().st_size and len(art["sha256"]) == 64
    logs = [e for e in events if e.kind == "log" and e.node_id == "b"]
    assert any("b saw" in ln["text"] for e in logs for ln in e.lines)


def test_failure_skips_downstream_but_independent_branch_finishes(workspace):
    bad, f1 = shell_node("bad", "echo boom >&2\nexit 3\n")
    after, f2 = shell_node("after", "cp in.json out.json\n", inputs=("in",))
    other, f3 = shell_node("other", "sleep 0.3\necho '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "branches", "nodes": [bad, after, other],
                                      "edges": [{"from": "bad.out", "to": "after.in"}]}, {**f1, **f2, **f3})
    result, _, store = run(path, workspace, jobs=2)
    assert result.status == "failed"
    assert result.nodes["bad"].status == "failed" and result.nodes["bad"].exit_code == 3
    assert result.nodes["after"].status == "skipped"
    assert "upstream `bad` failed" in result.nodes["after"].message
    assert result.nodes["other"].status == "succeeded"
    assert result.first_failed() == "bad"


def test_missing_declared_output_fails_naming_file(workspace):
    n, f = shell_node("lazy", "echo 'did nothing'\n", outputs=({"name": "report", "file": "report.csv", "format": "csv"},))
    path = write_pipeline(workspace, {"version": 1, "name": "m", "nodes": [n]}, f)
    result, _, store = run(path, workspace)
    st = result.nodes["lazy"]
    assert st.status == "failed" and st.exit_code == 0
    assert "`report` (report.csv)" in st.message
    assert store.get_run(result.run_id)["nodes"]["lazy"]["artifacts"] == {}


def test_timeout_kills_grandchildren(workspace, tmp_path):
    pidfile = tmp_path / "pids"
    script = (f"sleep 300 &\necho $! >> {pidfile}\n"
              f"bash -c 'sleep 300 & echo $! >> {pidfile}; wait' &\n"
              "sleep 300\n")
    n, f = shell_node("slow", script, timeout=1)
    path = write_pipeline(workspace, {"version": 1, "name": "t", "nodes": [n]}, f)
    t0 = time.monotonic()
    result, _, _ = run(path, workspace)
    assert time.monotonic() - t0 < 30
    assert result.nodes["slow"].status == "timed_out"
    assert result.status == "failed"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_retries_until_success(workspace, tmp_path):
    counter = tmp_path / "count"
    script = (f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}\n"
              "if [ $n -lt 3 ]; then echo \"attempt $n fails\" >&2; exit 1; fi\n"
              "echo '[]' > out.json\n")
    n, f = shell_node("flaky", script, retries=2)
    path = write_pipeline(workspace, {"version": 1, "name": "r", "nodes": [n]}, f)
    result, _, store = run(path, workspace)
    assert result.nodes["flaky"].status == "succeeded"
    assert result.nodes["flaky"].attempts == 3
    log = store.log_path(result.run_id, "flaky").read_text()
    assert "retrying" in log and "attempt 1 fails" in log


def test_retries_exhausted(workspace):
    n, f = shell_node("never", "exit 1\n", retries=1)
    path = write_pipeline(workspace, {"version": 1, "name": "r", "nodes": [n]}, f)
    result, _, _ = run(path, workspace)
    assert result.nodes["never"].status == "failed" and result.nodes["never"].attempts == 2


def test_cancel_kills_running_nodes(workspace, tmp_path):
    marker = tmp_path / "started"
    a, fa = shell_node("long", f"touch {marker}\nsleep 300 & wait\n")
    b, fb = shell_node("next", "cp in.json out.json\n", inputs=("in",))
    path = write_pipeline(workspace, {"version": 1, "name": "c", "nodes": [a, b],
                                      "edges": [{"from": "long.out", "to": "next.in"}]}, {**fa, **fb})
    store = Store.open(workspace)
    runner = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace)
    th = runner.start()
    for _ in range(200):
        if marker.exists():
            break
        time.sleep(0.05)
    runner.cancel()
    th.join(20)
    assert not th.is_alive()
    res = runner.result()
    assert res.status == "cancelled"
    assert res.nodes["long"].status == "cancelled"
    assert res.nodes["next"].status == "skipped"
    assert store.get_run(runner.run_id)["status"] == "cancelled"


def test_parallel_branches_run_concurrently(workspace, tmp_path):
    nodes, files = [], {}
    for i in range(3):
        n, f = shell_node(f"p{i}", f"date +%s.%N > {tmp_path}/start{i}\nsleep 0.5\ndate +%s.%N > {tmp_path}/end{i}\necho '[]' > out.json\n")
        nodes.append(n)
        files.update(f)
    path = write_pipeline(workspace, {"version": 1, "name": "par", "nodes": nodes}, files)
    result, _, _ = run(path, workspace, jobs=3)
    assert result.ok
    starts = [float((tmp_path / f"start{i}").read_text()) for i in range(3)]
    ends = [float((tmp_path / f"end{i}").read_text()) for i in range(3)]
    assert max(starts) < min(ends), "with --jobs 3 the three branches overlap"
    result, _, _ = run(path, workspace, jobs=1, force=True)
    starts = sorted(float((tmp_path / f"start{i}").read_text()) for i in range(3))
    ends = sorted(float((tmp_path / f"end{i}").read_text()) for i in range(3))
    assert all(ends[i] <= starts[i + 1] for i in range(2)), "with --jobs 1 they run one at a time"


def test_log_cap_and_truncation_marker(workspace, monkeypatch):
    monkeypatch.setenv("PIPELOOM_LOG_CAP", "20K")
    n, f = shell_node("noisy", "for i in $(seq 1 5000); do echo \"line $i\"; done\necho '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "cap", "nodes": [n]}, f)
    result, _, store = run(path, workspace)
    assert result.ok
    log = store.log_path(result.run_id, "noisy")
    assert log.stat().st_size < 21 * 1024
    text = log.read_text()
    assert "log truncated" in text and "line 1\n" in text and "line 5000" not in text


def test_stdout_and_stderr_kept_line_by_line(workspace):
    from server.engine.logs import read_log

    n, f = shell_node("both", "echo one\necho two >&2\necho three\necho '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "s", "nodes": [n]}, f)
    result, _, store = run(path, workspace)
    lines, nxt = read_log(store.log_path(result.run_id, "both"))
    by_stream = {(ln["stream"], ln["text"]) for ln in lines}
    assert {("out", "one"), ("err", "two"), ("out", "three")} <= by_stream
    assert all(isinstance(ln["ts"], float) for ln in lines)
    more, nxt2 = read_log(store.log_path(result.run_id, "both"), nxt)
    assert more == [] and nxt2 == nxt


@pytest.mark.parametrize("error, words", [(MemoryError(), ["MemoryError", "out of memory"]),
                                          (RuntimeError(), ["RuntimeError", "without a message"]),
                                          (KeyError("port"), ["KeyError", "'port'"])])
def test_engine_fault_never_shows_an_empty_message(workspace, monkeypatch, error, words):
    import server.engine.run.execute as execute_mod

    def broken(*_a, **_kw):
        raise error

    monkeypatch.setattr(execute_mod, "file_sha256", broken)  # hashing an output, after the program exited 0
    n, f = shell_node("a", "echo '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "e", "nodes": [n]}, f)
    result, events, store = run(path, workspace)
    msg = result.nodes["a"].message
    assert result.nodes["a"].status == "failed"
    assert msg.startswith("internal error: ") and all(w in msg for w in words), msg
    assert store.get_run(result.run_id)["nodes"]["a"]["message"] == msg
    assert msg in store.log_path(result.run_id, "a").read_text()


def test_a_lone_ready_node_runs_in_the_driving_thread_and_parallel_ones_in_the_pool(workspace):
    """a -> (b, c) -> d with two slots: a and d are each the only node that can run, so the thread driving the
    run (a trigger's or the studio's) runs them itself; b and c run side by side in pool threads. In a main
    thread where Ctrl-C raises KeyboardInterrupt, every node runs in the pool."""
    import signal
    import threading

    a, fa = shell_node("a", "echo '[1]' > out.json\n")
    b, fb = shell_node("b", "cp in.json out.json\n", inputs=("in",))
    c, fc = shell_node("c", "cp in.json out.json\n", inputs=("in",))
    d, fd = shell_node("d", "cat x.json y.json > /dev/null\necho '[2]' > out.json\n",
                       inputs=({"name": "x", "file": "x.json"}, {"name": "y", "file": "y.json"}))
    path = write_pipeline(workspace, {"version": 1, "name": "diamond", "nodes": [a, b, c, d], "edges": [
        {"from": "a.out", "to": "b.in"}, {"from": "a.out", "to": "c.in"},
        {"from": "b.out", "to": "d.x"}, {"from": "c.out", "to": "d.y"}]}, {**fa, **fb, **fc, **fd})

    def ran_in(driver: str | None) -> dict[str, str]:
        threads: dict[str, str] = {}

        def listen(e):
            if e.kind == "node_status" and e.status == "running":
                threads[e.node_id] = threading.current_thread().name

        runner = Runner(load_pipeline(path, workspace=workspace), workspace=workspace,
                        options=RunOptions(jobs=2, force=True), listener=listen)
        if driver is None:
            runner.run()
        else:
            th = threading.Thread(target=runner.run, name=driver)
            th.start()
            th.join(60)
        assert runner.result().ok
        return threads

    threads = ran_in("the-driver")
    assert threads["a"] == threads["d"] == "the-driver"
    assert {threads["b"], threads["c"]}.isdisjoint({"the-driver"})
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        main = threading.main_thread().name
        assert main not in ran_in(None).values()
