"""Retention and `gc`: old runs go, but never what the cache or a kept run still uses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from server.engine import gc
from server.engine.model import load_pipeline
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.conftest import pipeloom_cmd
from tests.engine.util import write_pipeline


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _pipeline(ws: Path, retention=None):
    doc = {"version": 1, "name": "g", "nodes": [
        {"id": "take", "runtime": "shell", "source": "take.sh",
         "inputs": [{"name": "events", "format": "text", "path": "sample.txt"}],
         "outputs": [{"name": "out", "format": "text"}]},
        {"id": "count", "runtime": "shell", "source": "count.sh", "inputs": [{"name": "out", "format": "text"}],
         "outputs": [{"name": "n", "format": "text"}]},
    ], "edges": [{"from": "take.out", "to": "count.out"}],
        "triggers": [{"id": "hook", "kind": "http", "to": "take.events"}]}
    if retention:
        doc["retention"] = retention
    return write_pipeline(ws, doc, {"take.sh": "cp events.txt out.txt\n", "count.sh": "wc -l < out.txt > n.txt\n",
                                    "sample.txt": "sample\n"})


def _run(ws, path, store, *, feed: str | None = None, **opts):
    inputs, origin = {}, {"by": "cli"}
    if feed is not None:
        f = ws / f"feed-{feed}.txt"
        f.write_text(feed + "\n")
        inputs, origin = {"take.events": str(f)}, {"by": "trigger", "trigger": "hook"}
    r = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws,
               options=RunOptions(inputs=inputs, origin=origin, **opts))
    res = r.run()
    assert res.ok, res.to_dict()
    return r.run_id


def test_triggered_runs_beyond_the_policy_go_and_runs_by_hand_stay(workspace):
    path = _pipeline(workspace)
    store = Store.open(workspace)
    manual = _run(workspace, path, store)
    triggered = [_run(workspace, path, store, feed=f"batch {i}") for i in range(5)]
    runs, nodes = store.gc_view("test")
    doomed = gc.plan(runs, nodes, gc.Policy(keep_runs=2, keep_days=0), now=runs[0]["created_at"] + 10)
    assert doomed == list(reversed(triggered[:3]))  # the oldest triggered runs, newest first
    result = gc.collect(store, "test", {"keep_runs": 2, "keep_days": 0}, workspace)
    assert set(result.removed) == set(triggered[:3]) | {manual}
    left = {r["run_id"] for r in store.list_runs("test", limit=50)}
    # with `retention` written in the file, every run counts: the manual one (oldest) goes too
    assert left == set(triggered[3:])
    for rid in triggered[:3] + [manual]:
        assert not (workspace / ".pipeloom" / "runs" / rid).exists()
    for rid in triggered[3:]:
        rec = store.get_run(rid)
        for node in rec["nodes"].values():
            for a in node["artifacts"].values():
                assert sha(a["path"]) == a["sha256"]


def test_without_retention_only_triggered_runs_are_collected(workspace):
    path = _pipeline(workspace)
    store = Store.open(workspace)
    manual = [_run(workspace, path, store, force=True) for _ in range(3)]
    trig = [_run(workspace, path, store, feed=f"b{i}") for i in range(3)]
    runs, nodes = store.gc_view("test")
    doomed = gc.plan(runs, nodes, gc.Policy(keep_runs=1, keep_days=0, triggered_only=True),
                     now=runs[0]["created_at"] + 10)
    assert set(doomed) == set(trig[:2])
    assert not set(doomed) & set(manual)


def test_the_run_holding_a_nodes_newest_outputs_is_never_removed(workspace):
    path = _pipeline(workspace)
    store = Store.open(workspace)
    first = _run(workspace, path, store, feed="same")
    # later runs fail in `count`, so `first` keeps the newest successful outputs of `count`
    (workspace / "count.sh").write_text("exit 3\n")
    from server.engine.runner import RunOptions as RO

    for i in range(3):
        f = workspace / f"x{i}.txt"
        f.write_text(f"x{i}\n")
        Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace,
               options=RunOptions(inputs={"take.events": str(f)}, origin={"by": "trigger"})).run()
    result = gc.collect(store, "test", {"keep_runs": 1, "keep_days": 0}, workspace)
    assert first not in result.removed
    assert store.get_run(first)["nodes"]["count"]["status"] == "succeeded"
    # and the cache still finds it: the same input with the old program reuses `count`
    (workspace / "count.sh").write_text("wc -l < out.txt > n.txt\n")
    again = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace,
                   options=RunOptions(inputs={"take.events": str(workspace / "feed-same.txt")}, origin={"by": "trigger"}))
    again.run()
    assert again.states["count"].status == "cached"


def test_files_a_kept_run_still_points_to_are_left_in_place(workspace):
    path = _pipeline(workspace, retention={"keep_runs": 1, "keep_days": 0})
    store = Store.open(workspace)
    old = _run(workspace, path, store, feed="one")
    (workspace / "count.sh").write_text("wc -c < out.txt > n.txt\n")
    kept = _run(workspace, path, store, only="count")  # reuses `take` from `old` without copying it
    take_out = store.get_run(kept)["nodes"]["take"]["artifacts"]["out"]["path"]
    assert old in take_out
    dry = gc.collect(store, "test", {"keep_runs": 1, "keep_days": 0}, workspace, dry_run=True)
    assert dry.removed == [old] and store.get_run(old)  # a dry run removes nothing
    result = gc.collect(store, "test", {"keep_runs": 1, "keep_days": 0}, workspace)
    assert result.removed == [old] and result.files_kept >= 1
    assert Path(take_out).read_text() == "one\n"


def test_gc_trims_the_query_and_diff_caches_to_their_caps_and_dry_run_only_says_so(workspace):
    state = workspace / ".pipeloom"
    made = []
    for i, folder in enumerate(("query", "diffs", "query", "diffs")):
        (state / folder).mkdir(parents=True, exist_ok=True)
        f = state / folder / f"f{i}.sqlite"
        f.write_bytes(b"x" * 1_048_576)
        os.utime(f, (1000 + i, 1000 + i))
        made.append(f)
    env = {"PIPELOOM_QUERY_CACHE_MB": "1.5", "PIPELOOM_DIFF_CACHE_MB": "1.5"}
    dry = pipeloom_cmd("gc", "--dry-run", cwd=workspace, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 files" in dry.stdout and all(f.exists() for f in made)
    done = pipeloom_cmd("gc", cwd=workspace, env=env)
    assert done.returncode == 0, done.stderr
    assert "removed 2 files" in done.stdout
    assert [f.exists() for f in made] == [False, False, True, True]  # the older of each folder went
    again = pipeloom_cmd("gc", cwd=workspace, env=env)
    assert "Nothing to remove" in again.stdout
