"""Validation reports every problem at once, each naming the node, port or field."""

from __future__ import annotations

import json
import os

import pytest

from server.engine.errors import ValidationError
from server.engine.model import load_pipeline
from tests.conftest import pipeloom_cmd
from tests.engine.util import write_pipeline


def problems_of(path, ws):
    with pytest.raises(ValidationError) as info:
        load_pipeline(path, workspace=ws)
    return [str(p) for p in info.value.problems]


def test_valid_pipeline_loads(workspace):
    path = write_pipeline(workspace, {"version": 1, "name": "ok", "nodes": [
        {"id": "a", "runtime": "shell", "source": "a.sh", "outputs": [{"name": "out"}]},
        {"id": "b", "runtime": "command", "command": ["cat", "in.json"], "inputs": [{"name": "in"}]},
    ], "edges": [{"from": "a.out", "to": "b.in"}]}, {"a.sh": "echo '[]' > out.json\n"})
    p = load_pipeline(path, workspace=workspace)
    assert [n.id for n in p.nodes] == ["a", "b"]
    assert p.node("a").outputs[0].file == "out.json"
    assert p.node("a").outputs[0].format == "json"


def test_every_problem_reported_at_once(workspace):
    path = write_pipeline(workspace, {"version": 1, "name": "bad", "nodes": [
        {"id": "a", "runtime": "cobol", "source": "a.cob", "outputs": [{"name": "out"}]},
        {"id": "a", "runtime": "shell", "source": "missing.sh"},
        {"id": "b", "runtime": "shell", "source": "b.sh", "inputs": [{"name": "in"}, {"name": "lonely"}],
         "outputs": [{"name": "out", "format": "text"}]},
        {"id": "c", "runtime": "shell", "source": "b.sh", "inputs": [{"name": "in", "format": "csv"}]},
    ], "edges": [
        {"from": "a.out", "to": "b.in"},
        {"from": "a.out", "to": "b.in"},
        {"from": "ghost.out", "to": "b.in"},
        {"from": "a.nope", "to": "c.in"},
        {"from": "b.out", "to": "c.in"},
    ]}, {"b.sh": "true\n", "a.cob": "x"})
    msgs = problems_of(path, workspace)
    text = "\n".join(msgs)
    assert "node `a`" in text and "unknown runtime `cobol`" in text
    assert "duplicate id" in text
    assert "missing.sh not found" in text
    assert "no node called `ghost`" in text
    assert "has no output `nope`" in text
    assert "node `b`, input `in`" in text and "fed twice" in text
    assert "node `b`, input `lonely`" in text and "fed by nothing" in text
    assert "no conversion from text to csv" in text or "text" in text and "csv" in text
    assert len(msgs) >= 8


def test_cycle_is_printed(workspace):
    nodes = [{"id": n, "runtime": "shell", "source": "s.sh", "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]}
             for n in ("ingest", "filter")]
    path = write_pipeline(workspace, {"version": 1, "name": "loop", "nodes": nodes, "edges": [
        {"from": "ingest.out", "to": "filter.in"}, {"from": "filter.out", "to": "ingest.in"}]}, {"s.sh": "true\n"})
    msgs = problems_of(path, workspace)
    assert any("cycle: ingest -> filter -> ingest" in m or "cycle: filter -> ingest -> filter" in m for m in msgs)


def test_source_outside_workspace_and_symlink(workspace, tmp_path):
    outside = tmp_path / "outside.sh"
    outside.write_text("echo hi\n")
    os.symlink(outside, workspace / "link.sh")
    path = write_pipeline(workspace, {"version": 1, "name": "esc", "nodes": [
        {"id": "up", "runtime": "shell", "source": "../outside.sh"},
        {"id": "sym", "runtime": "shell", "source": "link.sh"},
        {"id": "inp", "runtime": "shell", "source": "ok.sh", "inputs": [{"name": "cfg", "path": "../outside.sh"}]},
    ]}, {"ok.sh": "true\n"})
    msgs = problems_of(path, workspace)
    assert any("node `up`" in m and "outside the workspace" in m for m in msgs)
    assert any("node `sym`" in m and "outside the workspace" in m for m in msgs)
    assert any("input `cfg`" in m and "outside the workspace" in m for m in msgs)


def test_bad_yaml_reports_line(workspace):
    path = workspace / "broken.pipeline.yaml"
    path.write_text("version: 1\nname: x\nnodes:\n  - id: a\n    runtime: [shell\n")
    msgs = problems_of(path, workspace)
    assert "invalid YAML" in msgs[0] and "line" in msgs[0]


def test_bad_json_reports_line(workspace):
    path = workspace / "broken.pipeline.json"
    path.write_text('{"version": 1,\n "name": "x",\n "nodes": [,]}')
    with pytest.raises(ValidationError) as info:
        load_pipeline(path, workspace=workspace)
    assert info.value.problems[0].line == 3


def test_field_types_and_unknown_fields(workspace):
    path = write_pipeline(workspace, {"version": 1, "name": "types", "colour": "red", "nodes": [
        {"id": "Bad Id", "runtime": "shell", "source": "s.sh"},
        {"id": "t", "runtime": "shell", "source": "s.sh", "timeout": -1, "retries": "two", "params": [1],
         "sauce": 1, "outputs": [{"name": "o", "file": "../escape.json"}]},
        {"id": "c", "runtime": "command", "command": "tar -czf x"},
    ]}, {"s.sh": "true\n"})
    text = "\n".join(problems_of(path, workspace))
    assert "unknown top-level field" in text and "`colour`" in text
    assert "[a-z0-9_-]+" in text
    assert "`timeout` must be a positive number" in text
    assert "`retries` must be a whole number" in text
    assert "`params` must be a mapping" in text
    assert "unknown field `sauce`" in text
    assert "plain file name" in text
    assert "list of arguments" in text


def test_missing_toolchain_is_named(workspace, monkeypatch):
    from server.engine import toolchains

    monkeypatch.setenv("PATH", str(workspace / "empty-bin"))
    toolchains.clear()
    try:
        path = write_pipeline(workspace, {"version": 1, "name": "tc", "nodes": [
            {"id": "g", "runtime": "go", "source": "m.go"},
            {"id": "c", "runtime": "command", "command": ["definitely-not-a-tool"]},
        ]}, {"m.go": "package main\nfunc main(){}\n"})
        text = "\n".join(problems_of(path, workspace))
        assert "runtime `go` needs the `go` command; not found on PATH" in text
        assert "command `definitely-not-a-tool` not found on PATH" in text
    finally:
        monkeypatch.undo()
        toolchains.clear()


def test_cli_validate_exit_codes(workspace):
    bad = write_pipeline(workspace, {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "nope"}]})
    r = pipeloom_cmd("validate", str(bad), cwd=workspace)
    assert r.returncode == 2
    assert "node `a`" in r.stderr and "unknown runtime" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    good = write_pipeline(workspace, {"version": 1, "name": "y", "nodes": [
        {"id": "a", "runtime": "shell", "source": "a.sh"}]}, {"a.sh": "true\n"}, name="good.pipeline.yaml")
    r = pipeloom_cmd("validate", str(good), cwd=workspace)
    assert r.returncode == 0, r.stderr
    r = pipeloom_cmd("validate", "nothing-here.pipeline.yaml", cwd=workspace)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_typos_get_a_suggestion(workspace):
    path = write_pipeline(workspace, {"version": 1, "name": "typo", "nodes": [
        {"id": "shout", "runtime": "pythn", "source": "s.py", "outputs": [{"name": "loud"}]},
        {"id": "keep", "runtime": "shell", "source": "k.sh", "inputs": [{"name": "in"}]},
    ], "edges": [{"from": "shuot.loud", "to": "keep.in"}, {"from": "shout.lound", "to": "keep.in"}]},
        {"s.py": "", "k.sh": ""})
    text = "\n".join(problems_of(path, workspace))
    assert "unknown runtime `pythn` (did you mean `python`?)" in text
    assert "no node called `shuot` (did you mean `shout`?)" in text
    assert "no output `lound` (did you mean `loud`?)" in text


def test_yaml_indentation_error_says_so(workspace):
    path = workspace / "indent.pipeline.yaml"
    path.write_text("version: 1\nname: x\nnodes:\n  - id: a\n    runtime: shell\n   source: a.sh\n")
    msgs = problems_of(path, workspace)
    assert "check the indentation" in msgs[0]


@pytest.mark.parametrize("value, hint", [("sometimes", ""), (False, "write `never`"), (3, "")])
def test_cache_setting_must_be_a_known_word(workspace, value, hint):
    path = write_pipeline(workspace, {"version": 1, "name": "c", "nodes": [
        {"id": "hook", "runtime": "shell", "source": "a.sh", "cache": value}]}, {"a.sh": "true\n"})
    found = problems_of(path, workspace)
    assert len(found) == 1, found
    assert "node `hook`" in found[0] and "`cache` must be auto, always or never" in found[0]
    assert f"got {json.dumps(value)}" in found[0] and hint in found[0]


def test_cache_setting_round_trips_and_default_is_not_written(workspace):
    from server.engine.model import node_to_dict
    from server.engine.pipeline.write import dump_document

    path = write_pipeline(workspace, {"version": 1, "name": "c", "nodes": [
        {"id": "a", "runtime": "shell", "source": "a.sh", "cache": "never"},
        {"id": "b", "runtime": "shell", "source": "a.sh", "cache": "auto"}]}, {"a.sh": "true\n"})
    p = load_pipeline(path, workspace=workspace)
    assert [n.cache for n in p.nodes] == ["never", "auto"]
    assert node_to_dict(p.nodes[0])["cache"] == "never" and "cache" not in node_to_dict(p.nodes[1])
    assert "cache: never" in dump_document(p.to_document(), json_syntax=False)


def test_categories_on_a_port_are_checked_and_kept():
    from pathlib import Path

    from server.engine.model import build_pipeline

    def port(categories, fmt="json"):
        doc = {"version": 1, "name": "c", "nodes": [{"id": "a", "runtime": "shell", "source": "a.sh", "outputs": [
            {"name": "out", "format": fmt, "categories": categories}]}], "edges": []}
        p, problems = build_pipeline(doc, {}, base_dir=Path("."))
        return (p.nodes[0].outputs[0] if p.nodes and p.nodes[0].outputs else None), [str(x) for x in problems]

    out, problems = port(["label"])
    assert out.categories == {"label": {}} and out.to_dict()["categories"] == ["label"]
    out, _ = port("label")
    assert out.categories == {"label": {}}
    out, problems = port({"label": {"critical": "danger", "fine": "ok"}, "level": None})
    assert out.categories == {"label": {"critical": "danger", "fine": "ok"}, "level": {}}
    assert out.to_dict()["categories"] == {"label": {"critical": "danger", "fine": "ok"}, "level": {}}
    for bad, words in [({"label": {"critical": "red"}}, "unknown tone 'red'"), ([], "must name distinct fields"),
                       (["a", "a"], "must name distinct fields"), (3, "must be a list of fields or a mapping"),
                       ({"label": "danger"}, "must map values to tones")]:
        _, problems = port(bad)
        assert any("categories" in p and words in p for p in problems), (bad, problems)
    _, problems = port(["label"], fmt="text")
    assert any("`categories` is for records formats" in p for p in problems)


def test_nodes_sharing_a_missing_source_each_get_their_problem(workspace):
    nodes = [{"id": n, "runtime": "shell", "source": "gone.sh"} for n in ("a", "b", "c")]
    path = write_pipeline(workspace, {"version": 1, "name": "shared", "nodes": nodes})
    found = [p for p in problems_of(path, workspace) if "gone.sh" in p]
    assert len(found) == 3 and all(f"node `{n}`" in p for n, p in zip("abc", found))


def test_graph_queries_answer_as_a_walk_over_every_edge_does(workspace):
    """Lookups by id and the up- and downstream sets, on a graph with fan-out, fan-in and a diamond; and again
    after the edge list is replaced."""
    from server.engine.model import Edge

    ids = [f"n{i}" for i in range(12)]
    pairs = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (4, 5), (4, 6), (5, 7), (6, 7), (8, 9), (9, 7), (10, 11)]
    nodes = [{"id": n, "runtime": "shell", "source": "x.sh", "inputs": [{"name": f"i{j}"} for j, (_, b) in
             enumerate(pairs) if ids[b] == n], "outputs": [{"name": "out"}]} for n in ids]
    edges = [{"from": f"{ids[a]}.out", "to": f"{ids[b]}.i{j}"} for j, (a, b) in enumerate(pairs)]
    path = write_pipeline(workspace, {"version": 1, "name": "g", "nodes": nodes, "edges": edges},
                          {"x.sh": "true\n"})
    p = load_pipeline(path, workspace=workspace)

    def walk(start, forward):
        seen, todo = set(), [start]
        while todo:
            cur = todo.pop()
            for e in p.edges:
                here, there = (e.src_node, e.dst_node) if forward else (e.dst_node, e.src_node)
                if here == cur and there not in seen:
                    seen.add(there)
                    todo.append(there)
        return seen

    for _ in range(2):
        for n in ids:
            assert p.node(n).id == n
            assert p.predecessors(n) == {e.src_node for e in p.edges if e.dst_node == n}
            assert p.upstream_of(n) == walk(n, False)
            assert p.downstream_of(n) == walk(n, True) | {n}
        p.edges = [e for e in p.edges if e.src_node != "n4"] + [Edge("n11", "out", "n0", "x")]
    assert p.node("nope") is None
