"""Run journals: the CLI's record of a run, the per-pipeline cache file, and the database index that follows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.engine.paths import Layout
from server.engine.store.cache import CacheFile
from server.engine.store.journal import Journals, RunJournal, node_record
from tests.conftest import REPO, pipeloom_cmd
from tests.engine.util import chain, shell_node, write_pipeline

HEAVY = ("sqlalchemy", "sqlmodel", "flask", "flask_socketio", "pygments", "watchdog")
# runs the CLI in-process, then reports which heavy packages and runtimes it imported, on the fd it is given
WRAPPER = """
import json, os, runpy, sys
sys.argv = ["pipeloom", *sys.argv[1:]]
try:
    runpy.run_module("server.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
mods = sorted(m for m in sys.modules if m.split(".")[0] in %r or m.startswith("server.engine.runtimes."))
os.write(int(os.environ["REPORT_FD"]), json.dumps({"code": code, "modules": mods}).encode())
""" % (HEAVY,)


def imported_by(ws: Path, *args: str) -> dict:
    return imported_by_any(ws, HEAVY, *args)


def imported_by_any(ws: Path, packages: tuple[str, ...], *args: str) -> dict:
    """Run the CLI with `args`; its exit code, output, and which modules of `packages` (or runtimes) it loaded."""
    r, w = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(REPO), "REPORT_FD": str(w)}
    env.pop("PIPELOOM_DATABASE_URL", None)
    wrapper = WRAPPER.replace(repr(HEAVY), repr(tuple(packages)))
    proc = subprocess.Popen([sys.executable, "-c", wrapper, *args], cwd=ws, env=env, pass_fds=(w,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        report = fh.read()
    out, err = proc.communicate(timeout=60)
    assert report, err.decode()
    return {**json.loads(report), "stdout": out.decode(), "stderr": err.decode()}


def test_the_cli_hot_path_imports_no_database_web_or_unused_runtime(workspace):
    path = chain(workspace, [("a", "echo '[1]' > out.json\n"), ("b", "cp in.json out.json\necho b ran\n")])
    seen = {}
    seen["validate"] = imported_by(workspace, "validate", path.name)
    seen["run"] = imported_by(workspace, "run", path.name, "--json")
    run_id = json.loads(seen["run"]["stdout"])["run_id"]
    seen["rerun"] = imported_by(workspace, "run", path.name, "--json")
    assert {n["status"] for n in json.loads(seen["rerun"]["stdout"])["nodes"].values()} == {"cached"}
    seen["runs"] = imported_by(workspace, "runs")
    seen["show"] = imported_by(workspace, "show", run_id)
    seen["logs"] = imported_by(workspace, "logs", run_id, "b")
    assert "b ran" in seen["logs"]["stdout"]
    for cmd, got in seen.items():
        assert got["code"] == 0, (cmd, got["stderr"])
        heavy = [m for m in got["modules"] if m.split(".")[0] in HEAVY]
        assert heavy == [], f"`pipeloom {cmd}` imported {heavy[:5]}"
        other_runtimes = [m for m in got["modules"] if m.rsplit(".", 1)[-1] in ("rust", "go", "node", "python")]
        assert other_runtimes == [], f"`pipeloom {cmd}` imported {other_runtimes} for a shell pipeline"


def test_a_run_is_a_journal_and_the_cache_file_makes_the_rerun_cached(workspace):
    path = chain(workspace, [("a", "echo '[1, 2]' > out.json\n"), ("b", "cp in.json out.json\n")])
    first = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    layout = Layout(workspace)
    doc = json.loads((layout.run_dir(first["run_id"]) / "run.json").read_text())
    assert doc["status"] == "succeeded" and set(doc["nodes"]) == {"a", "b"}
    assert doc["nodes"]["b"]["artifacts"][0]["records"] == 2
    assert not (layout.state / "journal" / "active" / first["run_id"]).exists()
    entries = json.loads(CacheFile(layout, "test").path.read_text())["nodes"]
    assert entries["a"][0]["run_id"] == first["run_id"]
    second = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert {n["status"] for n in second["nodes"].values()} == {"cached"}
    assert second["nodes"]["b"]["source_run"] == first["run_id"]


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated"])
def test_a_missing_or_corrupt_cache_file_is_rebuilt_from_the_journals(workspace, damage):
    path = chain(workspace, [("a", "echo '[1]' > out.json\n"), ("b", "cp in.json out.json\n")])
    first = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    cache = CacheFile(Layout(workspace), "test")
    if damage == "missing":
        cache.path.unlink()
    elif damage == "corrupt":
        cache.path.write_text("{not json")
    else:
        cache.path.write_text(cache.path.read_text()[:40])
    second = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert {n["status"] for n in second["nodes"].values()} == {"cached"}, second
    assert second["nodes"]["a"]["source_run"] == first["run_id"]
    data = json.loads(cache.path.read_text())
    assert data["runs"][:2] == [second["run_id"], first["run_id"]]


def _merge_many(ws: str, worker: int, count: int) -> None:
    layout = Layout(ws)
    for i in range(count):
        rid = f"20260101-000000-{worker:02d}{i:02d}"
        node = f"n{worker}-{i}"
        row, arts = node_record(rid, node, status="succeeded", started_at=1.0, finished_at=2.0, exit_code=0,
                                cache_key=f"k{worker}-{i}", attempts=1, message=None, log_path=None, workdir=None)
        CacheFile(layout, "p").merge({"run_id": rid, "pipeline_id": "p",
                                      "nodes": {node: {**row, "artifacts": arts}}})


def test_concurrent_merges_into_one_cache_file_lose_nothing(workspace):
    code = "import sys; from tests.engine.test_journal import _merge_many; _merge_many(sys.argv[1], int(sys.argv[2]), 15)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(workspace), str(w)], cwd=REPO, env=env)
             for w in range(8)]
    for p in procs:
        assert p.wait(60) == 0
    index = CacheFile(Layout(workspace), "p").cache_index()
    assert len(index) == 8 * 15
    assert {k for k, _ in index} == {f"n{w}-{i}" for w in range(8) for i in range(15)}


def _journal(ws: Path, run_id: str, created: float, status: str = "succeeded", pid: int | None = None) -> None:
    j = RunJournal(Layout(ws), run_id)
    j.create("p", "p", "", {"origin": {"by": "cli"}})
    j.doc["created_at"] = created
    if pid is not None:
        j.doc["pid"] = pid
    if status in ("running", "pending"):
        j.update(status=status, started_at=created)
    else:
        j.update(started_at=created)
        j.finish(status=status, finished_at=created + 1)


def test_runs_are_listed_newest_first_by_time_not_by_run_id(workspace):
    now = time.time()
    # three runs made in the same second, whose random suffixes sort against their order
    for suffix, dt in (("ffff", 0.1), ("0000", 0.5), ("8888", 0.9)):
        _journal(workspace, f"20260105-101010-{suffix}", now + dt)
    _journal(workspace, "20260105-101009-9999", now - 1)
    rows = json.loads(pipeloom_cmd("runs", "--json", cwd=workspace).stdout)
    assert [r["run_id"][-4:] for r in rows] == ["8888", "0000", "ffff", "9999"]
    rows = json.loads(pipeloom_cmd("runs", "--json", "-n", "2", cwd=workspace).stdout)
    assert [r["run_id"][-4:] for r in rows] == ["8888", "0000"]
    limited = pipeloom_cmd("runs", "-n", "2", cwd=workspace).stdout
    assert "the newest 2 of 4 runs" in limited


def test_a_run_whose_process_is_gone_reads_as_interrupted_and_its_journal_says_so(workspace):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _journal(workspace, "20260105-101010-dead", time.time(), status="running", pid=dead.pid)
    _journal(workspace, "20260105-101011-live", time.time(), status="running", pid=os.getpid())
    rows = {r["run_id"]: r["status"] for r in json.loads(pipeloom_cmd("runs", "--json", cwd=workspace).stdout)}
    assert rows == {"20260105-101010-dead": "interrupted", "20260105-101011-live": "running"}
    doc = json.loads((Layout(workspace).run_dir("20260105-101010-dead") / "run.json").read_text())
    assert doc["status"] == "interrupted" and "stopped before it finished" in doc["message"]
    assert not (Layout(workspace).state / "journal" / "active" / "20260105-101010-dead").exists()
    shown = pipeloom_cmd("show", "20260105-101010-dead", cwd=workspace).stdout
    assert "interrupted" in shown and "stopped before it finished" in shown


def test_a_run_that_finishes_while_recovery_looks_at_it_stays_succeeded(workspace, monkeypatch):
    """Recovery reads a running journal, then finds the run's process gone: the run may have finished and
    exited in between (concurrent CLI runs do this). Its finished journal must not become `interrupted`."""
    from server.engine.store import journal as journal_mod

    dead = subprocess.Popen(["true"])
    dead.wait()
    rid = "20260105-101010-race"
    _journal(workspace, rid, time.time(), status="running", pid=dead.pid)

    def finishes_then_gone(doc):
        j = RunJournal(Layout(workspace), rid)
        j.doc = journal_mod.load_journal(Layout(workspace).run_dir(rid))
        j.finish(status="succeeded", finished_at=time.time())
        return False

    monkeypatch.setattr(journal_mod, "_alive", finishes_then_gone)
    assert Journals(workspace).recover_interrupted() == 0
    doc = json.loads((Layout(workspace).run_dir(rid) / "run.json").read_text())
    assert doc["status"] == "succeeded"
    assert not (Layout(workspace).state / "journal" / "active" / rid).exists()


def test_a_cold_cli_run_of_a_chain_loads_no_logging_thread_pool_or_openssl(workspace):
    path = chain(workspace, [("a", "echo '[1]' > out.json\n"), ("b", "cp in.json out.json\n")])
    got = imported_by_any(workspace, ("logging", "concurrent", "hashlib", "_hashlib", "secrets"),
                          "run", path.name, "--json", "--force")
    assert got["code"] == 0, got["stderr"]
    assert [m for m in got["modules"] if not m.startswith("server.engine.runtimes.")] == []


def test_run_recovers_killed_runs_and_keeps_their_finished_nodes_reusable(workspace):
    """A killed run's finished node is merged into the cache when the next `run` recovers it."""
    path = chain(workspace, [("a", "echo '[1]' > out.json\n"), ("b", "cp in.json out.json\n")])
    first = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    # a copy of that run, as a process that died after `a` finished would have left it
    layout = Layout(workspace)
    dead = subprocess.Popen(["true"])
    dead.wait()
    j = RunJournal(layout, "20260105-000000-kill")
    j.create("test", "chain", str(path), {"origin": {"by": "cli"}})
    j.update(status="running", started_at=time.time(), pid=dead.pid)
    src = json.loads((layout.run_dir(first["run_id"]) / "run.json").read_text())["nodes"]["a"]
    row, arts = node_record("20260105-000000-kill", "a", status="succeeded", started_at=1.0, finished_at=2.0,
                            exit_code=0, cache_key=src["cache_key"], attempts=1, message=None, log_path=None,
                            workdir=None, artifacts=src["artifacts"])
    j.add_nodes([(row, arts)])
    pipeloom_cmd("run", path.name, "--json", cwd=workspace)
    doc = Journals(workspace).read("20260105-000000-kill", recover=False)
    assert doc["status"] == "interrupted" and doc["nodes"]["a"]["status"] == "succeeded"
    assert "20260105-000000-kill" in json.loads(CacheFile(layout, "test").path.read_text())["runs"]


def test_the_store_indexes_cli_runs_and_its_own_record_counts_reach_the_journal(workspace):
    from server.engine.store import Store

    path = chain(workspace, [("a", "echo '[1, 2, 3]' > out.json\n")])
    first = json.loads(pipeloom_cmd("run", path.name, "--json", "--force", cwd=workspace).stdout)
    store = Store.open(workspace)
    try:
        assert [r["run_id"] for r in store.list_runs()] == [first["run_id"]]
        assert store.get_run(first["run_id"]) == Journals(workspace).get_run(first["run_id"])
        second = json.loads(pipeloom_cmd("run", path.name, "--json", "--force", cwd=workspace).stdout)
        assert [r["run_id"] for r in store.list_runs()] == [second["run_id"], first["run_id"]]
        assert store.count_runs() == 2 and store.pipeline_ids() == ["test"]
        store.set_records(second["run_id"], "a", "out", 7)
        assert Journals(workspace).get_run(second["run_id"])["nodes"]["a"]["artifacts"]["out"]["records"] == 7
        assert store.get_artifact(second["run_id"], "a", "out")["records"] == 7
    finally:
        store.close()
    again = Store.open(workspace)  # a new process: the index reads what changed since, and agrees
    try:
        assert again.get_run(second["run_id"]) == Journals(workspace).get_run(second["run_id"])
    finally:
        again.close()


def test_the_change_notes_start_afresh_without_losing_a_run(workspace, monkeypatch):
    from server.engine.store import Store, index

    monkeypatch.setattr(index, "CHANGES_ROTATE", 200)
    store = Store.open(workspace)
    try:
        for i in range(12):
            _journal(workspace, f"20260105-1010{i:02d}-abcd", time.time() + i)
            assert store.count_runs() == i + 1
        assert (Layout(workspace).state / "journal" / "changes").stat().st_size < 400
        assert store.list_runs(limit=1)[0]["run_id"] == "20260105-101011-abcd"
    finally:
        store.close()


def test_postgres_indexes_the_journals_of_cli_runs(workspace, postgres_url, monkeypatch):
    from server.engine.store import Store

    a, fa = shell_node("a", "echo '[1]' > out.json\n")
    name = f"pg-journal-{os.getpid()}-{time.time_ns()}"
    path = write_pipeline(workspace, {"version": 1, "name": name, "nodes": [a]}, fa, name=f"{name}.pipeline.yaml")
    run = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    monkeypatch.setenv("PIPELOOM_DATABASE_URL", postgres_url)
    store = Store.open(workspace)
    try:
        assert store.url.startswith("postgresql")
        assert [r["run_id"] for r in store.list_runs(name)] == [run["run_id"]]
        assert store.get_run(run["run_id"]) == Journals(workspace).get_run(run["run_id"])
        again = json.loads(pipeloom_cmd("run", path.name, "--json", "--force", cwd=workspace).stdout)
        assert store.latest_run(name)["run_id"] == again["run_id"]
    finally:
        store.close()


def test_runs_recorded_before_journals_get_journals_once_and_stay_listed_and_reusable(workspace):
    """A workspace from before journals: its runs are only in the database, until the first command."""
    import shutil
    import sqlite3

    from server.engine.store import Store

    path = chain(workspace, [("a", "echo '[1]' > out.json\n"), ("b", "cp in.json out.json\n")])
    first = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    Store.open(workspace).close()  # the run is in the database now
    layout = Layout(workspace)
    shutil.rmtree(layout.state / "journal")
    shutil.rmtree(layout.state / "cache")
    for name in ("run.json", "nodes.ndjson"):
        (layout.run_dir(first["run_id"]) / name).unlink()
    with sqlite3.connect(layout.db_path) as db:
        db.execute("UPDATE runs SET journal_token = NULL")
    rows = json.loads(pipeloom_cmd("runs", "--json", cwd=workspace).stdout)
    assert [r["run_id"] for r in rows] == [first["run_id"]] and rows[0]["status"] == "succeeded"
    shown = json.loads(pipeloom_cmd("show", first["run_id"], "--json", cwd=workspace).stdout)
    assert shown["nodes"]["b"]["artifacts"]["out"]["size"] > 0
    again = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert {n["status"] for n in again["nodes"].values()} == {"cached"}
    assert (layout.state / "journal").is_dir()


def test_a_run_start_is_an_appended_line_and_a_final_run_json_wins_over_it(workspace):
    layout = Layout(workspace)
    j = RunJournal(layout, "20260105-000000-line")
    j.create("p", "p", "", {})
    written = (layout.run_dir(j.run_id) / "run.json").stat().st_mtime_ns
    j.update(status="running", started_at=123.0)
    run_json = json.loads((layout.run_dir(j.run_id) / "run.json").read_text())
    assert run_json["status"] == "pending", "starting appends a line; run.json is not rewritten"
    assert (layout.run_dir(j.run_id) / "run.json").stat().st_mtime_ns == written
    doc = Journals(workspace).read(j.run_id, recover=False)
    assert doc["status"] == "running" and doc["started_at"] == 123.0
    line = json.loads((layout.run_dir(j.run_id) / "nodes.ndjson").read_text().splitlines()[0])
    assert line == {"run": {"status": "running", "started_at": 123.0}}, "only what changed is appended"
    j.finish(status="succeeded", finished_at=124.0)
    for doc in (json.loads((layout.run_dir(j.run_id) / "run.json").read_text()),
                Journals(workspace).read(j.run_id)):
        assert (doc["status"], doc["started_at"], doc["finished_at"]) == ("succeeded", 123.0, 124.0)


def test_running_a_json_pipeline_does_not_load_yaml(workspace):
    node, files = shell_node("a", "echo '[1]' > out.json\n")
    write_pipeline(workspace, {"version": 1, "name": "j", "nodes": [node]}, files, name="j.pipeline.json")
    for args in (("run", "j.pipeline.json"), ("validate", "j.pipeline.json")):
        got = imported_by_any(workspace, ("yaml", "_yaml"), *args)
        assert got["code"] == 0, got["stderr"]
        yaml_mods = [m for m in got["modules"] if m.split(".")[0] in ("yaml", "_yaml")]
        assert yaml_mods == [], f"`pipeloom {args[0]}` of a JSON file imported {yaml_mods}"


def test_unchanged_reruns_keep_two_results_per_key_and_a_revert_still_reuses(workspace):
    """The cache file does not grow with re-runs that change nothing (two results per node and key), and an
    older key stays there for a revert."""
    path = chain(workspace, [("a", "echo '[1]' > out.json\n")])
    runs = [json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout) for _ in range(4)]
    assert [r["nodes"]["a"]["status"] for r in runs] == ["succeeded", "cached", "cached", "cached"]
    cache = CacheFile(Layout(workspace), "test")
    entries = json.loads(cache.path.read_text())["nodes"]["a"]
    assert [e["run_id"] for e in entries] == [runs[3]["run_id"], runs[2]["run_id"]]
    script = workspace / "a.sh"
    script.write_text("echo '[2]' > out.json\n")
    changed = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert changed["nodes"]["a"]["status"] == "succeeded"
    script.write_text("echo '[1]' > out.json\n")
    reverted = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert reverted["nodes"]["a"]["status"] == "cached" and reverted["nodes"]["a"]["source_run"] == runs[0]["run_id"]
    entries = json.loads(cache.path.read_text())["nodes"]["a"]
    assert [e["run_id"] for e in entries] == [reverted["run_id"], changed["run_id"], runs[3]["run_id"]]
