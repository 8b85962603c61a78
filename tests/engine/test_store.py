"""The store: run records, interrupted-run recovery, versions, and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.engine.errors import NotFoundError
from server.engine.model import load_pipeline
from server.engine.runner import Runner
from server.engine.store import Store
from tests.conftest import REPO
from tests.engine.util import shell_node, write_pipeline


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may linger where nothing reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_killed_run_is_marked_interrupted_and_keeps_finished_nodes(workspace, tmp_path):
    marker = tmp_path / "slow-started"
    pidfile = tmp_path / "slow-pid"
    fast, f1 = shell_node("fast", "echo '[1]' > out.json\necho fast done\n")
    slow, f2 = shell_node("slow", f"echo $$ > {pidfile}\ntouch {marker}\nsleep 300\n", inputs=("in",))
    path = write_pipeline(workspace, {"version": 1, "name": "k", "nodes": [fast, slow],
                                      "edges": [{"from": "fast.out", "to": "slow.in"}]}, {**f1, **f2})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "run", str(path)], cwd=workspace, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.exists(), "the slow node never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        pid = int(pidfile.read_text())
        for _ in range(100):  # the run's guard stops its programs as soon as Pipeloom dies
            if not running(pid):
                break
            time.sleep(0.05)
        assert not running(pid), "the node's program outlived the killed run"
        store = Store.open(workspace)
    finally:
        if proc.poll() is None:
            proc.kill()
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "interrupted"
    rec = store.get_run(runs[0]["run_id"])
    assert "stopped before it finished" in rec["message"]
    assert rec["nodes"]["fast"]["status"] == "succeeded"
    out = Path(rec["nodes"]["fast"]["outputs"]["out"])
    assert out.read_text().strip() == "[1]"
    assert "slow" not in rec["nodes"] or rec["nodes"]["slow"]["status"] != "succeeded"
    log = store.log_path(rec["run_id"], "fast")
    assert "fast done" in log.read_text()


def test_live_run_is_not_marked_interrupted(workspace):
    store = Store.open(workspace)
    store.create_run("r-live", "p", "p", "x", {})
    store.update_run("r-live", status="running")
    assert Store.open(workspace).get_run("r-live")["status"] == "running"


def test_versions_and_not_found(workspace):
    store = Store.open(workspace)
    assert store.add_version("p", "p.pipeline.yaml", "a: 1\n", "first") == 1
    assert store.add_version("p", "p.pipeline.yaml", "a: 2\n", "second") == 2
    assert [v["version"] for v in store.list_versions("p")] == [2, 1]
    assert store.get_version("p", 1)["text"] == "a: 1\n"
    assert store.latest_version("p")["note"] == "second"
    with pytest.raises(NotFoundError):
        store.get_version("p", 9)
    with pytest.raises(NotFoundError):
        store.get_run("nope")


def test_sqlite_is_in_wal_mode(workspace):
    from sqlalchemy import text

    store = Store.open(workspace)
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_postgres_end_to_end(workspace, postgres_url, monkeypatch):
    """A whole run recorded in a real PostgreSQL server, then read back, cached and versioned."""
    monkeypatch.setenv("PIPELOOM_DATABASE_URL", postgres_url)
    a, fa = shell_node("a", "echo '[{\"n\": 1}]' > out.json\n")
    b, fb = shell_node("b", "cp in.json out.json\n", inputs=("in",))
    path = write_pipeline(workspace, {"version": 1, "name": "pg", "nodes": [a, b],
                                      "edges": [{"from": "a.out", "to": "b.in"}]}, {**fa, **fb})
    store = Store.open(workspace)
    assert store.url.startswith("postgresql")
    assert not (workspace / ".pipeloom" / "pipeloom.db").exists()
    pipeline = load_pipeline(path, workspace=workspace)
    first = Runner(pipeline, store=store, workspace=workspace).run()
    assert first.ok
    rec = store.get_run(first.run_id)
    assert rec["nodes"]["b"]["artifacts"]["out"]["size"] > 0
    second = Runner(pipeline, store=store, workspace=workspace).run()
    assert {s.status for s in second.nodes.values()} == {"cached"}
    v = store.add_version(rec["pipeline_id"] + first.run_id, str(path), path.read_text(), "pg")
    assert v == 1
    assert store.list_runs(rec["pipeline_id"])[0]["run_id"] == second.run_id
    big = 5 * 1024 ** 3  # sizes beyond 32 bits must fit
    store.record_node(first.run_id, "big", status="succeeded", started_at=1.0, finished_at=2.0, exit_code=0,
                      cache_key="k", attempts=1, message=None, log_path=None, workdir=None,
                      artifacts=[{"port": "o", "path": "/x", "format": "binary", "size": big, "sha256": "0" * 64,
                                  "mtime_ns": time.time_ns()}])
    assert store.get_artifact(first.run_id, "big", "o")["size"] == big
    store.close()
