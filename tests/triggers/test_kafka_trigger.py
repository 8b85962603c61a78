"""The Kafka trigger's loop against a real broker: commit after success, retry then dead-letter, backpressure.

The run is a plain function here (the engine's runs are exercised in the service tests); what is tested is
what the trigger does with a consumer group around it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from server.engine.triggerspec import parse_triggers
from server.triggers.base import FeedOutcome
from server.triggers.kafka import KafkaTrigger
from tests.triggers.test_broker import consume, consumer_config, produce, producer_config

pytestmark = pytest.mark.kafka


def _trigger(bootstrap, topic, **extra):
    (t,), problems = parse_triggers([{"id": "readings", "kind": "kafka", "brokers": bootstrap, "topic": topic,
                                      "to": "ingest.log", "group": f"g-{uuid.uuid4().hex[:8]}", **extra}])
    assert not problems
    return t


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def committed(bootstrap, group, topic) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(consumer_config(bootstrap, group))
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        c.close()


class Feed:
    """Records every batch it is fed; fails while `failing` is set; can be slowed."""

    def __init__(self, delay=0.0, failing=False, out_dir=None):
        self.batches: list[list[str]] = []
        self.origins: list[dict] = []
        self.started: list[float] = []  # when each batch's run began
        self.delay = delay
        self.failing = failing
        self.out_dir = out_dir
        self.lock = threading.Lock()

    def __call__(self, path, origin):
        lines = path.read_text().splitlines()
        with self.lock:
            self.batches.append(lines)
            self.origins.append(origin)
            self.started.append(time.monotonic())
        time.sleep(self.delay)
        run_id = f"run-{len(self.batches)}"
        if self.failing:
            return FeedOutcome(False, run_id, "exited with code 1", "classify")
        outputs = {}
        if self.out_dir is not None:
            out = self.out_dir / f"{run_id}.json"
            out.write_text(json.dumps([{"alert": line} for line in lines if "hot" in line]))
            outputs["classify.alerts"] = str(out)
        return FeedOutcome(True, run_id, outputs=outputs)


def test_batches_run_in_order_and_are_committed_after_success(kafka_bootstrap, kafka_topic, tmp_path):
    produce(kafka_bootstrap, kafka_topic, [f"line {i}".encode() for i in range(1200)])
    t = _trigger(kafka_bootstrap, kafka_topic, batch={"max_events": 500, "max_wait_ms": 200})
    feed = Feed()
    kt = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "b", feed=feed, workspace=tmp_path)
    kt.start()
    try:
        assert wait_for(lambda: sum(map(len, feed.batches)) >= 1200)
        assert wait_for(lambda: committed(kafka_bootstrap, t.group, kafka_topic) == 1200)
    finally:
        kt.stop()
    seen = [line for b in feed.batches for line in b]
    assert seen == [f"line {i}" for i in range(1200)]
    assert max(map(len, feed.batches)) <= 500
    first = feed.origins[0]
    assert first["topic"] == kafka_topic and first["partitions"]["0"]["first"] == 0
    status = kt.status()
    assert status["runs_started"] == len(feed.batches) and status["events"] == 1200


def test_a_failing_run_is_retried_then_dead_lettered_and_committed(kafka_bootstrap, make_topic, tmp_path):
    topic, dlq = make_topic("in"), make_topic("dlq")
    produce(kafka_bootstrap, topic, [b'{"n": 1}', b'{"n": 2}', b"not json"])
    t = _trigger(kafka_bootstrap, topic, batch={"max_events": 10, "max_wait_ms": 300},
                 on_failure={"retries": 2, "dead_letter_topic": dlq})
    feed = Feed(failing=True)
    kt = KafkaTrigger(t, pipeline_id="p", input_format="ndjson", workdir=tmp_path / "b", feed=feed,
                      workspace=tmp_path)
    kt.start()
    try:
        assert wait_for(lambda: committed(kafka_bootstrap, t.group, topic) == 3)
    finally:
        kt.stop()
    assert len(feed.batches) == 3  # one try and two retries, each with the two valid records
    assert all(b == ['{"n": 1}', '{"n": 2}'] for b in feed.batches)
    from confluent_kafka import Consumer

    c = Consumer(consumer_config(kafka_bootstrap, f"check-{uuid.uuid4().hex[:6]}"))
    c.subscribe([dlq])
    try:
        got = consume(c, 3)
    finally:
        c.close()
    by_value = {m.value(): dict(m.headers()) for m in got}
    assert b"not json" in by_value and b"not valid ndjson" in by_value[b"not json"]["pipeloom-error"]
    err = by_value[b'{"n": 1}']["pipeloom-error"].decode()
    assert "run run-3 failed at node `classify`: exited with code 1" == err
    assert kt.status()["dead_lettered"] == 2


def test_results_are_produced_to_the_result_topic(kafka_bootstrap, make_topic, tmp_path):
    topic, out = make_topic("in"), make_topic("out")
    produce(kafka_bootstrap, topic, [b"cold 1", b"hot 2", b"hot 3"])
    t = _trigger(kafka_bootstrap, topic, batch={"max_events": 3, "max_wait_ms": 2000},
                 produce={"from": "classify.alerts", "topic": out})
    kt = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "b",
                      feed=Feed(out_dir=tmp_path), workspace=tmp_path)
    kt.start()
    try:
        assert wait_for(lambda: committed(kafka_bootstrap, t.group, topic) == 3)
    finally:
        kt.stop()
    from confluent_kafka import Consumer

    c = Consumer(consumer_config(kafka_bootstrap, f"check-{uuid.uuid4().hex[:6]}"))
    c.subscribe([out])
    try:
        got = [json.loads(m.value()) for m in consume(c, 2)]
    finally:
        c.close()
    assert got == [{"alert": "hot 2"}, {"alert": "hot 3"}]


def test_a_slow_run_pauses_the_consumer_and_memory_stays_bounded(kafka_bootstrap, kafka_topic, tmp_path):
    produce(kafka_bootstrap, kafka_topic, [f"reading {i}".encode() for i in range(3000)])
    t = _trigger(kafka_bootstrap, kafka_topic, batch={"max_events": 100, "max_wait_ms": 50})
    feed = Feed(delay=0.5)
    kt = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "b", feed=feed,
                      workspace=tmp_path, max_waiting=2)
    most_waiting = 0
    paused_seen = False
    kt.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            s = kt.status()
            most_waiting = max(most_waiting, s["waiting_batches"])
            paused_seen |= s["backpressure"]
            time.sleep(0.05)
    finally:
        kt.stop()
    assert paused_seen, "the consumer never paused while runs were slower than the stream"
    assert most_waiting <= 3  # max_waiting batches, plus the one being gathered as it is handed over
    assert len(feed.batches) <= 10  # ~8 runs of 0.5 s in 4 s: the backlog stayed in Kafka
    assert committed(kafka_bootstrap, t.group, kafka_topic) == sum(map(len, feed.batches))


def test_while_a_run_is_in_progress_the_next_batch_keeps_growing(kafka_bootstrap, kafka_topic, tmp_path):
    """A steady stream behind a slow run: the waiting events make one batch, handed over when the run ends,
    not a queue of small batches cut every max_wait_ms (each of which would wait for all the runs before it)."""
    t = _trigger(kafka_bootstrap, kafka_topic, batch={"max_events": 1000, "max_wait_ms": 50})
    feed = Feed(delay=0.4)
    kt = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "b", feed=feed,
                      workspace=tmp_path, max_waiting=2)
    kt.start()
    try:
        assert wait_for(lambda: kt.status()["state"] == "running")
        from confluent_kafka import Producer

        p = Producer(producer_config(kafka_bootstrap))
        sent, sent_at = 0, {}
        for tick in range(40):  # 400 readings over 2 s, in steps of 50 ms
            for i in range(10):
                p.produce(kafka_topic, value=f"reading {sent + i}".encode())
            p.flush(5)
            sent_at.update({f"reading {sent + i}": time.monotonic() for i in range(10)})
            sent += 10
            time.sleep(0.05)
        assert wait_for(lambda: sum(map(len, feed.batches)) >= sent)
        assert wait_for(lambda: committed(kafka_bootstrap, t.group, kafka_topic) == sent)
    finally:
        kt.stop()
    seen = [line for b in feed.batches for line in b]
    assert seen == [f"reading {i}" for i in range(sent)]
    # 2 s of stream behind runs of 0.4 s: about six runs, where cutting every 50 ms makes one per step (forty)
    assert len(feed.batches) <= 9, [len(b) for b in feed.batches]
    # no reading waited behind more than the run in progress when it arrived (0.4 s, plus max_wait and slack)
    waits = [start - sent_at[line] for b, start in zip(feed.batches, feed.started) for line in b]
    assert max(waits) < 0.75, sorted(waits)[-5:]


def test_a_rebalance_loses_nothing(kafka_bootstrap, make_topic, tmp_path):
    topic = make_topic("rebalance", partitions=2)
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(4000):
        p.produce(topic, value=f"e {i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    t = _trigger(kafka_bootstrap, topic, batch={"max_events": 100, "max_wait_ms": 50})
    feed_a, feed_b = Feed(delay=0.05), Feed(delay=0.05)
    a = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "a", feed=feed_a,
                     workspace=tmp_path / "ws-a")
    b = KafkaTrigger(t, pipeline_id="p", input_format="text", workdir=tmp_path / "b", feed=feed_b,
                     workspace=tmp_path / "ws-b")  # another server: another static member id
    a.start()
    try:
        assert wait_for(lambda: len(feed_a.batches) >= 3)
        b.start()  # the group rebalances: one partition moves to b
        assert wait_for(lambda: len(feed_b.batches) >= 2, timeout=60)
        a.stop()  # and back again, with whatever a had gathered but not committed
        seen = lambda: {line for f in (feed_a, feed_b) for batch in f.batches for line in batch}  # noqa: E731
        assert wait_for(lambda: len(seen()) == 4000, timeout=90), f"{4000 - len(seen())} events never processed"
    finally:
        a.stop()
        b.stop()
    both = sum(len(x) for f in (feed_a, feed_b) for x in f.batches)
    assert both >= 4000  # at least once: some may have been processed twice around the rebalance
