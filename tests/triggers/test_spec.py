"""Parsing and checking `triggers:`: every mistake named by trigger and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.engine.model import build_pipeline
from server.engine.triggerspec import check_triggers, parse_triggers


def _pipeline(tmp_path: Path):
    doc = {"version": 1, "name": "p", "nodes": [
        {"id": "ingest", "runtime": "shell", "source": "a.sh", "inputs": [{"name": "log", "format": "text"}],
         "outputs": [{"name": "events", "format": "json"}]},
        {"id": "classify", "runtime": "shell", "source": "b.sh", "inputs": [{"name": "events", "format": "json"}],
         "outputs": [{"name": "alerts", "format": "json"}]},
    ], "edges": [{"from": "ingest.events", "to": "classify.events"}]}
    pipeline, problems = build_pipeline(doc, {}, base_dir=tmp_path)
    assert not problems
    return pipeline


GOOD = [
    {"id": "readings", "kind": "kafka", "brokers": "127.0.0.1:9092", "topic": "t", "to": "ingest.log",
     "batch": {"max_events": 500, "max_wait_ms": 100}, "on_failure": {"retries": 1, "dead_letter_topic": "t.dlq"},
     "produce": {"from": "classify.alerts", "topic": "alerts"}},
    {"id": "invoke", "kind": "http", "to": "ingest.log", "result": "classify.alerts", "timeout": 5,
     "max_concurrent": 2, "queue": 3},
    {"id": "inbox", "kind": "folder", "path": "inbox", "pattern": "*.log", "to": "ingest.log"},
    {"id": "nightly", "kind": "schedule", "cron": "0 2 * * *", "timezone": "Europe/Paris", "missed": "run_once"},
]


def test_a_good_list_parses_with_its_settings(tmp_path):
    triggers, problems = parse_triggers(GOOD)
    assert problems == []
    assert [t.kind for t in triggers] == ["kafka", "http", "folder", "schedule"]
    k = triggers[0]
    assert (k.max_events, k.max_wait_ms, k.retries, k.dead_letter_topic) == (500, 100, 1, "t.dlq")
    assert str(k.produce_from) == "classify.alerts" and k.produce_topic == "alerts"
    assert k.group_id("sensor") == "pipeloom.sensor.readings"
    assert triggers[1].max_concurrent == 2 and str(triggers[1].result) == "classify.alerts"
    assert triggers[3].missed == "run_once" and triggers[3].to is None
    assert check_triggers(triggers, _pipeline(tmp_path), tmp_path) == []


@pytest.mark.parametrize("item, where, words", [
    ({"id": "x", "kind": "kafak", "to": "ingest.log"}, "trigger `x`", "did you mean `kafka`"),
    ({"id": "Bad Id", "kind": "http", "to": "ingest.log"}, "trigger #1", "[a-z0-9_-]+"),
    ({"id": "x", "kind": "http", "to": "ingest"}, "trigger `x`, field `to`", "NODE.PORT"),
    ({"id": "x", "kind": "http", "to": "ingest.log", "timeout": -1}, "field `timeout`", "from 0.1"),
    ({"id": "x", "kind": "http", "to": "ingest.log", "qeue": 3}, "field `qeue`", "did you mean `queue`"),
    ({"id": "x", "kind": "kafka", "to": "ingest.log", "topic": "t"}, "field `brokers`", "required"),
    ({"id": "x", "kind": "kafka", "to": "ingest.log", "topic": "t", "brokers": "b", "batch": {"max_event": 1}},
     "field `batch.max_event`", "did you mean `max_events`"),
    ({"id": "x", "kind": "schedule", "cron": "0 2 * *"}, "field `cron`", "five fields"),
    ({"id": "x", "kind": "schedule", "cron": "0 25 * * *"}, "field `cron`", "not a valid cron"),
    ({"id": "x", "kind": "schedule", "cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "field `timezone`", "unknown time zone"),
    ({"id": "x", "kind": "schedule", "cron": "0 2 * * *", "missed": "all"}, "field `missed`", "skip, run_once"),
])
def test_structural_mistakes_name_the_trigger_and_field(item, where, words):
    _, problems = parse_triggers([item])
    assert problems, item
    text = " | ".join(str(p) for p in problems)
    assert where in text and words in text, text


def test_duplicate_ids_are_refused():
    _, problems = parse_triggers([GOOD[1], dict(GOOD[1])])
    assert any("duplicate id" in str(p) for p in problems)


@pytest.mark.parametrize("item, words", [
    ({"id": "x", "kind": "http", "to": "classify.events"}, "fed by an edge"),
    ({"id": "x", "kind": "http", "to": "ingets.log"}, "did you mean `ingest`"),
    ({"id": "x", "kind": "http", "to": "ingest.lg"}, "has no input `lg`; its inputs: log"),
    ({"id": "x", "kind": "http", "to": "ingest.log", "result": "classify.events"}, "has no output `events`"),
    ({"id": "x", "kind": "kafka", "brokers": "b", "topic": "t", "to": "ingest.log",
      "produce": {"from": "classify.nope", "topic": "o"}}, "field `produce.from`"),
    ({"id": "x", "kind": "folder", "path": "../../outside", "to": "ingest.log"}, "outside the workspace"),
])
def test_graph_mistakes_name_the_trigger_and_field(tmp_path, item, words):
    triggers, problems = parse_triggers([item])
    assert problems == []
    found = check_triggers(triggers, _pipeline(tmp_path), tmp_path)
    assert found and words in " | ".join(str(p) for p in found), found
    assert all(p.where.startswith("trigger `x`") for p in found)


def test_brokers_come_from_the_environment(monkeypatch, tmp_path):
    from server.engine.triggerspec import UnsetVariable

    (t, d), _ = parse_triggers([
        {"id": "k", "kind": "kafka", "brokers": "${PIPELOOM_TEST_BROKERS}", "topic": "t", "to": "ingest.log"},
        {"id": "d", "kind": "kafka", "brokers": "${PIPELOOM_TEST_BROKERS:-127.0.0.1:9092}", "topic": "t",
         "to": "ingest.log"}])
    monkeypatch.delenv("PIPELOOM_TEST_BROKERS", raising=False)
    # an unset variable is not a mistake in the file: the trigger stays off until it is set
    assert check_triggers([t], _pipeline(tmp_path), tmp_path) == []
    with pytest.raises(UnsetVariable, match="`PIPELOOM_TEST_BROKERS` is not set"):
        t.resolved_brokers()
    assert d.resolved_brokers() == "127.0.0.1:9092"
    monkeypatch.setenv("PIPELOOM_TEST_BROKERS", "127.0.0.1:1234")
    assert t.resolved_brokers() == "127.0.0.1:1234" == d.resolved_brokers()
