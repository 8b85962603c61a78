"""The incremental cache and partial runs (--force, --only, --from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.engine.errors import UsageError
from server.engine.model import load_pipeline
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.engine.util import write_pipeline, shell_node


FILTER = """printf '{"cfg": %s, "params": %s}\\n' "$(cat in.json)" "$PIPELOOM_PARAMS" > out.json
"""


def three_step(ws: Path, tmp: Path) -> Path:
    """ingest -> filter -> report; each appends its name to a trace file when it really runs."""
    trace = tmp / "trace"
    ing, f1 = shell_node("ingest", f"echo ingest >> {trace}\ncp cfg.json out.json\n",
                         inputs=({"name": "cfg", "file": "cfg.json", "path": "cfg.json"},))
    flt, f2 = shell_node("filter", f"echo filter >> {trace}\n" + FILTER, inputs=("in",),
                         params={"min": 1})
    rep, f3 = shell_node("report", f"echo report >> {trace}\ncp in.json out.json\n", inputs=("in",))
    return write_pipeline(ws, {"version": 1, "name": "three", "nodes": [ing, flt, rep], "edges": [
        {"from": "ingest.out", "to": "filter.in"}, {"from": "filter.out", "to": "report.in"}]},
        {**f1, **f2, **f3, "cfg.json": '{"v": 1}\n'})


def go(path: Path, ws: Path, **opts):
    store = Store.open(ws)
    r = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws, options=RunOptions(**opts)).run()
    store.close()
    return r


def ran(tmp: Path) -> list[str]:
    trace = tmp / "trace"
    out = trace.read_text().split() if trace.exists() else []
    trace.unlink(missing_ok=True)
    return out


def test_unchanged_rerun_is_all_cached_and_starts_no_process(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    first = go(path, workspace)
    assert first.ok and ran(tmp_path) == ["ingest", "filter", "report"]
    second = go(path, workspace)
    assert second.ok and ran(tmp_path) == []
    assert {s.status for s in second.nodes.values()} == {"cached"}
    out = Path(second.nodes["report"].artifacts["out"]["path"])
    assert second.run_id in str(out) and json.loads(out.read_text()) == {"cfg": {"v": 1}, "params": {"min": 1}}


@pytest.mark.parametrize("change, expect", [
    ("input", ["ingest", "filter", "report"]),
    ("params", ["filter", "report"]),
    ("source", ["report"]),
])
def test_changes_invalidate_exactly_what_they_should(workspace, tmp_path, change, expect):
    path = three_step(workspace, tmp_path)
    go(path, workspace)
    ran(tmp_path)
    if change == "input":
        (workspace / "cfg.json").write_text('{"v": 2}\n')
    elif change == "params":
        doc = path.read_text().replace("min: 1", "min: 2")
        path.write_text(doc)
    else:
        (workspace / "report.sh").write_text((workspace / "report.sh").read_text() + "# edited\n")
    res = go(path, workspace)
    assert res.ok and ran(tmp_path) == expect


def test_same_output_downstream_stays_cached(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    go(path, workspace)
    ran(tmp_path)
    (workspace / "ingest.sh").write_text((workspace / "ingest.sh").read_text() + "# comment only\n")
    res = go(path, workspace)
    assert ran(tmp_path) == ["ingest"]
    assert res.nodes["filter"].status == "cached"


def test_force_reruns_everything(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    go(path, workspace)
    ran(tmp_path)
    go(path, workspace, force=True)
    assert ran(tmp_path) == ["ingest", "filter", "report"]


def test_only_runs_one_node_with_upstream_from_cache(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    go(path, workspace)
    ran(tmp_path)
    res = go(path, workspace, only="filter")
    assert ran(tmp_path) == ["filter"]
    assert res.nodes["ingest"].status == "cached"
    assert "report" not in res.nodes
    assert res.ok


def test_from_runs_node_and_downstream(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    go(path, workspace)
    ran(tmp_path)
    res = go(path, workspace, from_node="filter")
    assert ran(tmp_path) == ["filter", "report"]
    assert res.nodes["ingest"].status == "cached"


def test_only_without_earlier_outputs_is_a_usage_error(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    with pytest.raises(UsageError, match="`ingest`, which has never run successfully"):
        go(path, workspace, only="filter")
    with pytest.raises(UsageError, match="no node called `nope`"):
        go(path, workspace, only="nope")


def test_tampered_cached_output_is_not_reused(workspace, tmp_path):
    path = three_step(workspace, tmp_path)
    first = go(path, workspace)
    ran(tmp_path)
    Path(first.nodes["report"].artifacts["out"]["path"]).write_text('{"tampered": true, "x": 1}\n')
    go(path, workspace)
    assert ran(tmp_path) == ["report"]


def test_failed_node_is_not_cached(workspace, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    n, f = shell_node("maybe", f"echo maybe >> {tmp_path}/trace\nif [ -f {flag} ]; then exit 1; fi\necho '[]' > out.json\n")
    path = write_pipeline(workspace, {"version": 1, "name": "f", "nodes": [n]}, f)
    assert go(path, workspace).status == "failed"
    flag.unlink()
    assert go(path, workspace).ok
    assert ran(tmp_path) == ["maybe", "maybe"]


def side_effects(ws: Path, tmp: Path, **cache) -> Path:
    """make -> notify, where notify has no outputs (it only appends to a trace, like a webhook call);
    `cache` maps node ids to their `cache:` setting."""
    trace = tmp / "trace"
    mk, f1 = shell_node("make", f"echo make >> {trace}\necho '[1]' > out.json\n")
    nt, f2 = shell_node("notify", f"echo notify >> {trace}\n", inputs=("in",), outputs=())
    for n in (mk, nt):
        if n["id"] in cache:
            n["cache"] = cache[n["id"]]
    return write_pipeline(ws, {"version": 1, "name": "fx", "nodes": [mk, nt],
                               "edges": [{"from": "make.out", "to": "notify.in"}]}, {**f1, **f2})


def test_node_without_outputs_runs_on_every_plain_rerun(workspace, tmp_path):
    path = side_effects(workspace, tmp_path)
    assert go(path, workspace).ok and ran(tmp_path) == ["make", "notify"]
    second = go(path, workspace)
    assert second.ok and ran(tmp_path) == ["notify"]
    assert second.nodes["make"].status == "cached" and second.nodes["notify"].status == "succeeded"


def test_cache_always_and_never(workspace, tmp_path):
    path = side_effects(workspace, tmp_path, make="never", notify="always")
    assert go(path, workspace).ok and ran(tmp_path) == ["make", "notify"]
    second = go(path, workspace)
    assert second.ok and ran(tmp_path) == ["make"], "make (never) runs again; notify (always) is reused"
    assert second.nodes["notify"].status == "cached"


def test_a_cached_node_is_settled_by_the_scheduler_and_its_key_computed_once(workspace, tmp_path):
    """An unchanged node is finished by the thread driving the run, not handed to a pool thread, and each
    node's code fingerprint is taken once per run."""
    import threading

    from server.engine.runtimes import RUNTIMES, register
    from server.engine.runtimes.simple import ShellRuntime

    taken: list[str] = []

    class CountedShell(ShellRuntime):
        name = "counted-shell"

        def fingerprint(self, node, pipeline):
            taken.append(node.id)
            return super().fingerprint(node, pipeline)

    register(CountedShell())
    try:
        path = three_step(workspace, tmp_path)
        path.write_text(path.read_text().replace("runtime: shell", "runtime: counted-shell"))
        assert go(path, workspace).ok and ran(tmp_path) == ["ingest", "filter", "report"]
        assert sorted(taken) == ["filter", "ingest", "report"], "one fingerprint per node in a run"
        taken.clear()
        settled_in: dict[str, str] = {}

        def listen(e):
            if e.kind == "node_status" and e.status == "cached":
                settled_in[e.node_id] = threading.current_thread().name

        store = Store.open(workspace)
        runner = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace, listener=listen)
        driver = threading.Thread(target=runner.run, name="the-driver")
        driver.start()
        driver.join(60)
        store.close()
        assert {s.status for s in runner.result().nodes.values()} == {"cached"} and ran(tmp_path) == []
        assert settled_in == dict.fromkeys(("ingest", "filter", "report"), "the-driver")
        assert sorted(taken) == ["filter", "ingest", "report"]
    finally:
        RUNTIMES._specs.pop("counted-shell", None)
        RUNTIMES._made.pop("counted-shell", None)


def test_a_source_rewritten_within_its_timestamp_is_hashed_again(tmp_path):
    """Same size, same mtime (a rewrite within one timestamp tick, or a tool that restores the mtime): the
    hash must still be of the new bytes, so the cache key changes."""
    import hashlib
    import os

    from server.engine.hashing import file_sha256

    src = tmp_path / "step.sh"
    src.write_text("echo 1\n")
    before = os.stat(src)
    assert file_sha256(src) == hashlib.sha256(b"echo 1\n").hexdigest()
    src.write_text("echo 2\n")
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(src).st_size == before.st_size and os.stat(src).st_mtime_ns == before.st_mtime_ns
    assert file_sha256(src) == hashlib.sha256(b"echo 2\n").hexdigest()
