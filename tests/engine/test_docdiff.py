"""How two versions of a pipeline document differ, in plain words (the versions panel's diff)."""

from __future__ import annotations

import copy

import yaml

from server.engine.pipeline.docdiff import diff_documents
from tests.conftest import REPO

DEMO = yaml.safe_load((REPO / "nodes/sensor-alerts.pipeline.yaml").read_text())


def texts(before, after) -> list[str]:
    return [c["text"] for c in diff_documents(before, after)["changes"]]


def test_the_same_document_and_a_reordered_one_have_no_changes():
    assert diff_documents(DEMO, copy.deepcopy(DEMO)) == {"same": True, "summary": "no changes", "changes": []}
    shuffled = copy.deepcopy(DEMO)
    shuffled["nodes"].reverse()
    shuffled["edges"].reverse()
    shuffled["nodes"][0] = dict(reversed(list(shuffled["nodes"][0].items())))
    assert diff_documents(DEMO, shuffled)["same"]


def test_each_kind_of_change_in_plain_words():
    after = copy.deepcopy(DEMO)
    classify = next(n for n in after["nodes"] if n["id"] == "classify")
    classify["params"]["window"] = 20
    del classify["params"]["stuck_after"]
    classify["outputs"][0]["format"] = "csv"
    classify["outputs"].append({"name": "stats", "format": "json"})
    classify["timeout"] = 60
    flt = next(n for n in after["nodes"] if n["id"] == "filter")
    flt["params"]["metrics"]["temperature"]["max"] = 90
    flt["position"] = {"x": 1, "y": 2}
    after["nodes"] = [n for n in after["nodes"] if n["id"] != "archive"]
    after["nodes"].append({"id": "report", "runtime": "command", "command": ["true"]})
    after["edges"] = [e for e in after["edges"] if not e["to"].startswith("archive.")]
    after["notes"][0]["text"] = "Hello"
    after["notes"].append({"id": "more", "text": "One more"})
    after["triggers"][1]["timeout"] = 30
    after["name"] = "alerts"
    said = texts(DEMO, after)
    assert said[0] == "The pipeline: name sensor-alerts → alerts"
    assert "Step “Keep sensible readings”: param metrics.temperature.max 85 → 90; moved on the canvas" in said
    assert ("Step “Spot unusual readings”: param window 50 → 20; param stuck_after removed; output classified "
            "format json → csv; output stats added; timeout 600 → 60") in said
    assert "Step “Archive the data” removed" in said and "Step “report” added (command runtime)" in said
    assert "Connection ingest.raw_events → archive.raw_events removed" in said
    assert "Note “more” added (One more)" in said
    assert any(t.startswith("Note “start-here”: text Start here: each card is one small program.") for t in said)
    assert "Trigger “invoke”: timeout 60 → 30" in said
    d = diff_documents(DEMO, after)
    assert d["summary"] == ("the pipeline's own fields changed, 1 step added, 1 step removed, 2 steps changed, "
                            "3 connections removed, 1 note added, 1 note changed and 1 trigger changed")
    step = next(c for c in d["changes"] if c["id"] == "classify")
    assert {"field": "params.window", "before": 50, "after": 20, "change": "changed"} in step["fields"]


def test_documents_that_are_not_mappings_compare_as_empty():
    d = diff_documents(None, {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "shell"}]})
    assert [c["text"] for c in d["changes"]][1:] == ["Step “a” added (shell runtime)"]
