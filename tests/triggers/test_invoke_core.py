"""The http trigger's admission gate and body handling, without a server."""

from __future__ import annotations

import json
import threading

import pytest

from server.triggers.invoke import BadBody, Busy, InvokeGate, body_to_input, result_body


def test_the_gate_admits_max_concurrent_queues_the_next_and_refuses_the_rest():
    gate = InvokeGate(max_concurrent=1, queue=1)
    assert gate.enter(timeout=0)
    entered = threading.Event()
    waiter = threading.Thread(target=lambda: gate.enter(timeout=5) and entered.set())
    waiter.start()
    for _ in range(100):
        if gate.waiting == 1:
            break
        threading.Event().wait(0.01)
    with pytest.raises(Busy) as busy:
        gate.enter(timeout=0)
    assert busy.value.retry_after >= 1
    assert not entered.is_set()
    gate.leave(0.5)
    waiter.join(5)
    assert entered.is_set() and gate.running == 1


def test_a_queued_caller_gives_up_after_its_timeout():
    gate = InvokeGate(max_concurrent=1, queue=5)
    assert gate.enter(timeout=0)
    assert gate.enter(timeout=0.05) is False
    assert gate.waiting == 0 and gate.running == 1


@pytest.mark.parametrize("body, ctype, fmt, check", [
    (b'[{"a": 1}, {"a": 2}]', "application/json", "json", lambda p: json.loads(p.read_text()) == [{"a": 1}, {"a": 2}]),
    (b'{"text": "hi"}', "application/json; charset=utf-8", "json", lambda p: json.loads(p.read_text()) == {"text": "hi"}),
    (b'[{"a": 1}, {"a": 2}]', "application/json", "ndjson", lambda p: p.read_text().count("\n") == 2),
    (b'{"a": 1}\n{"a": 2}\n', "application/x-ndjson", "csv", lambda p: p.read_text().splitlines() == ["a", "1", "2"]),
    (b"a line\nanother\n", "text/plain", "text", lambda p: p.read_text() == "a line\nanother\n"),
    (b'["a line", "another"]', "application/json", "text", lambda p: p.read_text() == "a line\nanother\n"),
])
def test_bodies_become_the_entry_input(tmp_path, body, ctype, fmt, check):
    dest = tmp_path / f"in.{fmt}"
    body_to_input(body, ctype, fmt, dest)
    assert check(dest)


@pytest.mark.parametrize("body, ctype, fmt, words", [
    (b"{nope", "application/json", "json", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "json", "nested too deeply"),
    (b'{"a": 1}\n{oops\n', "application/x-ndjson", "ndjson", "not valid ndjson"),
    (b"x", "application/xml", "json", "Content-Type `application/xml`"),
    (b"plain words", "text/plain", "json", "cannot feed a json input"),
    (b'[{"a": 1}]', "application/json", "text", "array of strings"),
])
def test_bad_bodies_are_refused_with_the_reason(tmp_path, body, ctype, fmt, words):
    with pytest.raises(BadBody, match=None) as exc:
        body_to_input(body, ctype, fmt, tmp_path / "in.x")
    assert words in str(exc.value)
    assert not (tmp_path / "in.x").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind


def test_records_outputs_answer_as_a_json_array(tmp_path):
    p = tmp_path / "out.ndjson"
    p.write_text('{"a": 1}\n{"a": 2}\n')
    body, ctype = result_body(p, "ndjson")
    assert ctype == "application/json" and json.loads(body) == [{"a": 1}, {"a": 2}]
