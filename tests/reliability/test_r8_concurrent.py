"""R8: eight `pipeloom run` processes started at once on a new workspace, ten rounds.

Each round makes a fresh workspace (no database yet), so every round races the
creation of the schema as well as the writes of eight runs.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from server.engine.paths import Layout
from server.engine.store import Journals, Store
from server.engine.store.cache import CacheFile
from tests.conftest import REPO
from tests.engine.util import shell_node, write_pipeline

pytestmark = pytest.mark.reliability

ROUNDS = 10
PROCESSES = 8


def _start_runs(ws, path) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PIPELOOM_DATABASE_URL", None)
    return [subprocess.Popen([sys.executable, "-m", "server.cli", "run", str(path), "--json"], cwd=ws, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(PROCESSES)]


def test_r8_concurrent_runs_on_a_new_workspace(tmp_path, figure):
    crashes, locked, recorded, expected = 0, 0, 0, 0
    failures: list[str] = []
    started = time.monotonic()
    for i in range(ROUNDS):
        ws = tmp_path / f"round{i}"
        ws.mkdir()
        node, files = shell_node("make", "echo making\necho '[{\"n\": 1}]' > out.json\n")
        path = write_pipeline(ws, {"version": 1, "name": "r8", "nodes": [node]}, files)
        procs = _start_runs(ws, path)
        for p in procs:
            try:
                out, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            if p.returncode != 0:
                crashes += 1
                failures.append(f"round {i}: exit {p.returncode}: {err.strip()[-400:]}")
            if "database is locked" in err:
                locked += 1
        expected += PROCESSES
        # the run journals are the record; the database index catches up when a reader (the studio) opens it
        journaled = [r for r in Journals(ws).list_runs(limit=100) if r["status"] == "succeeded"]
        reused = CacheFile(Layout(ws), "test").cache_index()
        if len(journaled) != PROCESSES or not reused:
            failures.append(f"round {i}: {len(journaled)} journals succeeded, cache index {len(reused)} keys")
            recorded -= PROCESSES
        Store(f"sqlite:///{Layout(ws).db_path}", workspace=ws).close()
        con = sqlite3.connect(ws / ".pipeloom" / "pipeloom.db")
        try:
            runs = con.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()[0]
            # a run that starts after another finished reuses its output: `cached` is recorded too
            nodes = con.execute("SELECT count(DISTINCT run_id) FROM node_runs WHERE node_id = 'make' "
                                "AND status IN ('succeeded', 'cached')").fetchone()[0]
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
        recorded += min(runs, nodes)
    elapsed = time.monotonic() - started
    detail = f"{ROUNDS} rounds of {PROCESSES} processes, each on a new workspace; {elapsed:.0f} s"
    figure("R8", "crashed runs", crashes, target="0", ok=crashes == 0, detail=detail)
    figure("R8", "\"database is locked\" errors", locked, target="0", ok=locked == 0, detail=detail)
    figure("R8", "runs recorded as succeeded", f"{recorded}/{expected}", target=f"{expected}/{expected}",
           ok=recorded == expected, detail=detail)
    assert crashes == 0 and locked == 0 and not failures, "\n".join(failures[:5])
    assert recorded == expected
