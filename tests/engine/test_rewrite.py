"""Studio saves keep the user's file: comments, spelling of values, layout; diffs stay small."""

from __future__ import annotations

import difflib
import json

import pytest

from server.engine.model import parse_text
from server.engine.rewrite import render_document
from tests.conftest import REPO

HELLO = """\
version: 1
name: hello
nodes:
  - id: fetch
    runtime: python
    source: fetch.py
    outputs: [{name: rows, format: json}]
  - id: shout
    runtime: node
    source: shout.js
    inputs:  [{name: rows, format: csv}]      # converted from JSON on the way
    outputs: [{name: loud, format: text}]
edges:
  - {from: fetch.rows, to: shout.rows}
"""


def changed_lines(old: str, new: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def edit(text: str, fn, json_syntax: bool = False) -> str:
    doc, _ = parse_text(text, json_syntax=json_syntax)
    fn(doc)
    return render_document(doc, text, json_syntax=json_syntax)


def test_unchanged_document_is_byte_identical():
    demo = (REPO / "nodes/sensor-alerts.pipeline.yaml").read_text()
    for text in (HELLO, demo):
        assert edit(text, lambda d: None) == text


def test_one_title_change_is_a_one_line_diff_and_comments_survive():
    new = edit(HELLO, lambda d: d["nodes"][1].update(title="Shout it"))
    assert "# converted from JSON on the way" in new
    diff = changed_lines(HELLO, new)
    assert diff == ["+    title: Shout it"], diff


def test_values_keep_their_spelling():
    text = "version: 1\nname: x\nnodes:\n  - id: a\n    runtime: shell\n    source: a.sh\n    params: {z: 6.0, q: 'quoted'}\n"
    new = edit(text, lambda d: d["nodes"][0].update(title="A"))
    assert "z: 6.0" in new and "'quoted'" in new


def test_nodes_are_matched_by_id_not_position():
    demo = (REPO / "nodes/sensor-alerts.pipeline.yaml").read_text()

    def drop_filter(d):
        d["nodes"] = [n for n in d["nodes"] if n["id"] != "filter"]
        d["edges"] = [e for e in d["edges"] if "filter" not in e["from"] + e["to"]]

    new = edit(demo, drop_filter)
    removed = [ln for ln in changed_lines(demo, new) if ln.startswith("-")]
    assert all(not ln.startswith("+") for ln in changed_lines(demo, new))
    assert any("id: filter" in ln for ln in removed)
    assert not any("id: classify" in ln for ln in removed)
    doc, _ = parse_text(new, json_syntax=False)
    assert [n["id"] for n in doc["nodes"]] == ["ingest", "classify", "notify", "archive"]


def test_new_items_follow_the_compact_house_style():
    new = edit(HELLO, lambda d: (d["nodes"].append({"id": "keep", "runtime": "shell", "source": "k.sh",
                                                    "inputs": [{"name": "in", "format": "text"}],
                                                    "position": {"x": 1, "y": 2}}),
                                 d["edges"].append({"from": "shout.loud", "to": "keep.in"})))
    added = [ln for ln in changed_lines(HELLO, new) if ln.startswith("+")]
    assert "+      - {name: in, format: text}" in added
    assert "+    position: {x: 1, y: 2}" in added
    assert "+  - {from: shout.loud, to: keep.in}" in added
    assert parse_text(new, json_syntax=False)[0]["nodes"][2]["id"] == "keep"


@pytest.mark.parametrize("style", ["dash-at-zero", "four-spaces"])
def test_other_indentation_styles_are_kept(style):
    if style == "dash-at-zero":
        text = "version: 1\nname: x\nnodes:\n- id: a\n  runtime: shell\n  source: a.sh\n  params:\n    k: 1\n"
    else:
        text = "version: 1\nname: x\nnodes:\n    - id: a\n      runtime: shell\n      source: a.sh\n      params:\n          k: 1\n"
    new = edit(text, lambda d: d["nodes"][0]["params"].update(k=2))
    assert changed_lines(text, new) == [f"-{ln}" for ln in text.splitlines() if "k: 1" in ln] + \
        [f"+{ln.replace('k: 1', 'k: 2')}" for ln in text.splitlines() if "k: 1" in ln]


def test_json_files_keep_key_order_and_indent():
    text = json.dumps({"name": "j", "version": 1, "nodes": [{"runtime": "shell", "id": "a", "source": "a.sh"}],
                       "edges": []}, indent=4) + "\n"
    new = edit(text, lambda d: d["nodes"][0].update(title="A"), json_syntax=True)
    assert json.loads(new)["nodes"][0]["title"] == "A"
    assert new.splitlines()[1] == '    "name": "j",', "the user's key order and indent stay"
    assert len(changed_lines(text, new)) <= 3


def test_new_file_uses_the_canonical_writer():
    doc = {"version": 1, "name": "n", "nodes": [], "edges": []}
    assert render_document(doc, None, json_syntax=False).startswith("version: 1\nname: n\n")
