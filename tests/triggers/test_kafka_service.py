"""A Kafka trigger inside a real `pipeloom serve`: batches run the pipeline, results go to a topic, and a
kill -9 of the server mid-stream loses nothing (every event processed at least once, duplicates counted)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import yaml

from tests.conftest import pipeloom_cmd
from tests.triggers.test_broker import consumer_config, produce
from tests.web.conftest import start_server, write  # noqa: F401  (start_server is a fixture)

pytestmark = pytest.mark.kafka

# each event {"n": i} comes out as {"n": i, "seen": true}; `sleep` slows every batch so a kill lands mid-batch
NODE = '''import json, time
p = json.load(open("params.json"))
time.sleep(p.get("sleep", 0))
with open("events.ndjson") as fin, open("out.ndjson", "w") as fout:
    for line in fin:
        rec = json.loads(line)
        rec["seen"] = True
        fout.write(json.dumps(rec) + "\\n")
'''


def _pipeline(ws, bootstrap, topic, out_topic, dlq, sleep=0.0, group=None):
    write(ws, "mark.py", NODE)
    doc = {"version": 1, "name": "live", "nodes": [
        {"id": "mark", "runtime": "python", "source": "mark.py", "params": {"sleep": sleep},
         "inputs": [{"name": "events", "format": "ndjson"}], "outputs": [{"name": "out", "format": "ndjson"}]}],
        "edges": [],
        "triggers": [{"id": "readings", "kind": "kafka", "brokers": bootstrap, "topic": topic,
                      "group": group or f"g-{uuid.uuid4().hex[:8]}", "to": "mark.events",
                      "batch": {"max_events": 200, "max_wait_ms": 100},
                      "on_failure": {"retries": 0, "dead_letter_topic": dlq},
                      "produce": {"from": "mark.out", "topic": out_topic}}]}
    (ws / "live.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def read_all(bootstrap, topic, expect_at_least, timeout=90):
    from confluent_kafka import Consumer

    c = Consumer(consumer_config(bootstrap, f"check-{uuid.uuid4().hex[:8]}"))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                if m.error() is None:
                    got.append(json.loads(m.value()))
            if len({g["n"] for g in got}) >= expect_at_least:
                # keep reading a little: duplicates may still be on their way
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    got += [json.loads(m.value()) for m in c.consume(500, timeout=0.2) if m.error() is None]
                break
    finally:
        c.close()
    return got


def test_batches_run_the_pipeline_and_each_run_says_what_fed_it(workspace, start_server, kafka_bootstrap,
                                                                make_topic):
    topic, out, dlq = make_topic("in"), make_topic("out"), make_topic("dlq")
    _pipeline(workspace, kafka_bootstrap, topic, out, dlq)
    srv = start_server()
    produce(kafka_bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(500)] + [b"not json"])
    got = read_all(kafka_bootstrap, out, 500)
    assert sorted({g["n"] for g in got}) == list(range(500)) and all(g["seen"] for g in got)
    status, _, body = srv.request("GET", "/api/triggers?pipeline=live")
    t = body["triggers"][0]
    assert t["state"] == "running" and t["events"] == 500 and t["dead_lettered"] == 1
    runs = json.loads(pipeloom_cmd("runs", "--json", cwd=workspace).stdout)
    fed = [r for r in runs if r["origin"].get("trigger") == "readings"]
    assert fed and all(r["status"] == "succeeded" for r in fed)
    shown = pipeloom_cmd("show", fed[-1]["run_id"], cwd=workspace).stdout
    assert "trigger readings (kafka): " in shown and f"from {topic}, partition 0 offsets 0-" in shown


def test_a_kill_9_mid_stream_loses_nothing(workspace, start_server, kafka_bootstrap, make_topic):
    topic, out, dlq = make_topic("in"), make_topic("out"), make_topic("dlq")
    group = f"g-{uuid.uuid4().hex[:8]}"
    _pipeline(workspace, kafka_bootstrap, topic, out, dlq, sleep=0.4, group=group)
    total = 3000
    produce(kafka_bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(total)])
    srv = start_server()
    # wait until some batches went through, then kill the server in the middle of one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, body = srv.request("GET", "/api/triggers?pipeline=live")
        if body["triggers"] and (body["triggers"][0].get("events") or 0) >= 400:
            break
        time.sleep(0.1)
    time.sleep(0.2)
    srv.proc.kill()
    srv.proc.wait(10)
    start_server()  # the same workspace, a new process: the group takes its partition back
    got = read_all(kafka_bootstrap, out, total, timeout=120)
    seen = {g["n"] for g in got}
    missing = set(range(total)) - seen
    duplicates = len(got) - len(seen)
    assert not missing, f"{len(missing)} events never processed, e.g. {sorted(missing)[:5]}"
    statuses = [r["status"] for r in json.loads(pipeloom_cmd("runs", "--json", "-n", "200", cwd=workspace).stdout)]
    assert "interrupted" in statuses, "the kill did not land in the middle of a batch's run"
    print(f"kill -9 mid-stream: {total} events, 0 lost, {duplicates} processed twice")
