"""Sticky notes: part of the pipeline file, checked with errors that name the note, written back in a stable
order, and kept as they are through YAML and JSON files."""

from __future__ import annotations

import json

import jsonschema
import pytest

from server.engine.errors import ValidationError
from server.engine.model import load_pipeline, parse_text, pipeline_from_document
from server.engine.pipeline.write import dump_document
from server.engine.rewrite import render_document
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "server/engine/pipeline.schema.json").read_text())
BASE = {"version": 1, "name": "n", "nodes": [{"id": "a", "runtime": "command", "command": ["true"]}], "edges": []}


def doc_with(notes) -> dict:
    return {**BASE, "notes": notes}


def problems_of(doc: dict, tmp_path) -> str:
    with pytest.raises(ValidationError) as err:
        pipeline_from_document(doc, base_dir=tmp_path, workspace=tmp_path, check_env=False)
    return err.value.report()


def test_notes_are_read_into_the_model_and_written_back(tmp_path):
    notes = [{"id": "welcome", "text": "Start here.\nEach card is a step.", "position": {"x": 40, "y": 20}},
             {"id": "tip", "text": "No position yet"}]
    p = pipeline_from_document(doc_with(notes), base_dir=tmp_path, workspace=tmp_path, check_env=False)
    assert [(n.id, n.text, n.position) for n in p.notes] == [
        ("welcome", "Start here.\nEach card is a step.", {"x": 40, "y": 20}), ("tip", "No position yet", None)]
    assert p.to_document()["notes"] == notes
    jsonschema.validate(doc_with(notes), SCHEMA)


@pytest.mark.parametrize("notes, expected", [
    ("hello", "field `notes`: must be a list of notes"),
    (["hello"], "note #1: must be a mapping with `id` and `text`"),
    ([{"id": "Big Note", "text": "x"}], "note #1: `id` must match [a-z0-9_-]+, got 'Big Note'"),
    ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "note `a`: duplicate id"),
    ([{"id": "a"}], "note `a`: `text` is required: the words on the note, got None"),
    ([{"id": "a", "text": 5}], "note `a`: `text` is required"),
    ([{"id": "a", "text": "x", "colour": "red"}], "note `a`: unknown field `colour` (expected one of: id, text, position)"),
    ([{"id": "a", "text": "x", "position": {"x": 1}}], "note `a`: `position` must be {x: number, y: number}"),
    ([{"id": "a", "text": "x", "position": {"x": True, "y": 2}}], "note `a`: `position` must be"),
    ([{"id": "a", "text": "x" * 2001}], "note `a`: `text` is 2,001 characters; a note holds at most 2,000"),
])
def test_a_bad_note_is_named_with_its_field(tmp_path, notes, expected):
    assert expected in problems_of(doc_with(notes), tmp_path)
    if isinstance(notes, list) and notes and isinstance(notes[0], dict) and expected.startswith("note `a`: `"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc_with(notes), SCHEMA)


def test_a_bad_note_in_a_yaml_file_says_its_line(tmp_path):
    path = tmp_path / "n.pipeline.yaml"
    path.write_text("version: 1\nname: n\nnodes: []\nnotes:\n  - id: ok\n    text: fine\n  - id: bad\n"
                    "    text: [not, words]\n")
    with pytest.raises(ValidationError) as err:
        load_pipeline(path, check_env=False)
    (problem,) = err.value.problems
    assert problem.where == "note `bad`" and problem.line == 7


@pytest.mark.parametrize("json_syntax", [False, True])
def test_notes_round_trip_through_files_with_small_diffs(json_syntax):
    demo, _ = parse_text((REPO / "nodes/sensor-alerts.pipeline.yaml").read_text(), json_syntax=False)
    text = dump_document(demo, json_syntax=json_syntax)
    # adding a note touches only the new lines, in the fixed key order (id, text, position)
    doc, _ = parse_text(text, json_syntax=json_syntax)
    doc["notes"] = list(doc.get("notes") or []) + [{"position": {"y": 9, "x": 8}, "text": "Two\nlines", "id": "new"}]
    added = render_document(doc, text, json_syntax=json_syntax)
    again, _ = parse_text(added, json_syntax=json_syntax)
    assert again == doc
    assert list(again["notes"][-1]) == ["id", "text", "position"]
    new_lines = [ln for ln in added.splitlines() if ln not in text.splitlines()]
    if not json_syntax:
        assert "text: |-\n" in added and "  Two\n" in added  # several lines stay several lines
    # moving one note changes one line
    doc["notes"][-1]["position"] = {"x": 80, "y": 9}
    moved = render_document(doc, added, json_syntax=json_syntax)
    changed = [a for a, b in zip(added.splitlines(), moved.splitlines()) if a != b]
    assert len(changed) == (1 if not json_syntax else 1) and len(moved.splitlines()) == len(added.splitlines())
    assert new_lines and parse_text(moved, json_syntax=json_syntax)[0]["notes"][-1]["position"] == {"x": 80, "y": 9}
    # a note of one line that gains a second is written as a block too
    assert "\n" not in doc["notes"][1]["text"]  # the demo's second note is one line
    doc["notes"][1]["text"] = "Now\ntwo lines"
    block = render_document(doc, moved, json_syntax=json_syntax)
    assert parse_text(block, json_syntax=json_syntax)[0] == doc
    if not json_syntax:
        assert "text: |-\n" in block and "  Now\n" in block and "\\n" not in block
    # editing its text and removing it leave the rest of the file alone
    doc["notes"] = doc["notes"][:-1]
    assert parse_text(render_document(doc, moved, json_syntax=json_syntax), json_syntax=json_syntax)[0] == doc


def test_the_demo_has_short_notes_that_validate():
    p = load_pipeline(REPO / "nodes/sensor-alerts.pipeline.yaml", check_env=False)
    assert 1 <= len(p.notes) <= 3 and all(len(n.text) < 300 and n.position for n in p.notes)


def test_notes_take_no_part_in_runs(workspace):
    """Adding or editing a note leaves every step cached."""
    import yaml

    from tests.conftest import pipeloom_cmd

    (workspace / "make.sh").write_text("printf '[{\"n\": 1}]' > out.json\n")
    path = workspace / "n.pipeline.yaml"
    doc = {"version": 1, "name": "n", "nodes": [{"id": "make", "runtime": "shell", "source": "make.sh",
                                                "outputs": [{"name": "out", "format": "json"}]}], "edges": []}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    first = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert first["nodes"]["make"]["status"] == "succeeded"
    doc["notes"] = [{"id": "why", "text": "Makes one record.", "position": {"x": 0, "y": 0}}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    again = json.loads(pipeloom_cmd("run", path.name, "--json", cwd=workspace).stdout)
    assert again["nodes"]["make"]["status"] == "cached"
