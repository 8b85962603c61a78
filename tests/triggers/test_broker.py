"""The client behaviours a Kafka trigger relies on, proved with confluent-kafka against a real broker:
manual commits, at-least-once after a SIGKILL, pause/resume for backpressure, committing only after
success, and dead-lettering with headers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:  # the kafka_bootstrap fixture skips (or fails under PIPELOOM_STRICT=1) with the reason
    Consumer = Producer = TopicPartition = None

# The smallest session timeout the broker allows (group.min.session.timeout.ms): a consumer that dies without
# leaving loses its partitions after 6 s instead of the default 45 s.
SESSION_TIMEOUT_MS = 6000


def producer_config(bootstrap: str) -> dict:
    """Durable, ordered, no duplicates on retry."""
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}


def consumer_config(bootstrap: str, group: str, instance: str | None = None, **extra) -> dict:
    """Offsets move only when the code commits them; a new group starts at the oldest message."""
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_TIMEOUT_MS, **extra}
    if instance:
        conf["group.instance.id"] = instance  # static membership: a restart takes its partitions straight back
    return conf


def produce(bootstrap: str, topic: str, values, key=None, headers=None) -> int:
    """Produce every value and wait for the broker's acks; returns how many were acknowledged."""
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or msg.offset())

    p = Producer(producer_config(bootstrap))
    for v in values:
        while True:
            try:
                p.produce(topic, value=v, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain
                p.poll(0.1)
        p.poll(0)
    assert p.flush(30) == 0, "messages still unsent after 30 s"
    assert errors == [], errors
    return len(acked)


def consume(consumer, n: int, timeout: float = 30) -> list:
    """Exactly `n` messages (fewer only when `timeout` passes first)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=min(500, n - len(got)), timeout=0.5):
            assert m.error() is None, m.error()
            got.append(m)
    return got


def next_offsets(messages) -> list:
    """What to commit after a batch succeeded: for each partition, the offset after its last message."""
    last: dict = {}
    for m in messages:
        key = (m.topic(), m.partition())
        last[key] = max(last.get(key, -1), m.offset())
    return [TopicPartition(t, p, off + 1) for (t, p), off in last.items()]


def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def test_ten_thousand_messages_arrive_once_each_in_order_with_manual_commits(kafka_bootstrap, kafka_topic):
    n = 10_000
    values = (json.dumps({"i": i, "sensor": f"s{i % 7}", "value": i * 0.5}).encode() for i in range(n))
    assert produce(kafka_bootstrap, kafka_topic, values) == n

    c = Consumer(consumer_config(kafka_bootstrap, group()))
    c.subscribe([kafka_topic])
    seen, batches = [], 0
    try:
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            batch = consume(c, min(1000, n - len(seen)), timeout=5)
            seen += [json.loads(m.value())["i"] for m in batch]
            if batch:
                c.commit(offsets=next_offsets(batch), asynchronous=False)
                batches += 1
        committed = c.committed([TopicPartition(kafka_topic, 0)], timeout=10)
        low, high = c.get_watermark_offsets(TopicPartition(kafka_topic, 0), timeout=10)
    finally:
        c.close()
    assert seen == list(range(n))
    assert batches >= n // 1000
    assert (low, high) == (0, n)
    assert committed[0].offset == n


# A consumer that reads a batch, never commits, and is still "running the pipeline" when it is killed.
_CONSUMER_SCRIPT = r"""
import json, sys, time
from confluent_kafka import Consumer
bootstrap, topic, group, instance, want = sys.argv[1:6]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": instance,
              "session.timeout.ms": 6000, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
c.subscribe([topic])
got = []
while len(got) < int(want):
    for m in c.consume(num_messages=int(want) - len(got), timeout=0.5):
        if m.error():
            sys.exit(f"consume error: {m.error()}")
        got.append(m.offset())
print(json.dumps(got), flush=True)
time.sleep(600)
"""


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def test_a_batch_read_but_not_committed_comes_back_after_sigkill(kafka_bootstrap, kafka_topic, tmp_path,
                                                                 kafka_note):
    assert produce(kafka_bootstrap, kafka_topic, (b'{"n": %d}' % i for i in range(200))) == 200
    grp, instance = group(), "trigger-1"
    err = open(tmp_path / "consumer.err", "w+")
    proc = subprocess.Popen([sys.executable, "-c", _CONSUMER_SCRIPT, kafka_bootstrap, kafka_topic, grp, instance,
                             "50"], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = _read_line(proc, 60)
        err.seek(0)
        assert line, f"the consumer subprocess read nothing; its stderr: {err.read()[-2000:]}"
        read_by_killed = json.loads(line)
        assert read_by_killed == list(range(50))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        err.close()
    killed_at = time.monotonic()

    assigned_at: list[float] = []
    c = Consumer(consumer_config(kafka_bootstrap, grp, instance))
    c.subscribe([kafka_topic], on_assign=lambda _c, parts: assigned_at.append(time.monotonic()))
    try:
        again = consume(c, 50, timeout=45)
        first_at = time.monotonic()
    finally:
        c.close()
    assert [m.offset() for m in again] == read_by_killed
    assert assigned_at, "the restarted consumer was never assigned the partition"
    kafka_note(f"partition back {assigned_at[0] - killed_at:.2f} s after SIGKILL of a static member "
               f"(session.timeout.ms={SESSION_TIMEOUT_MS}); uncommitted batch re-read {first_at - killed_at:.2f} s after")


def test_pausing_a_partition_stops_delivery_without_losing_membership_and_resume_continues(
        kafka_bootstrap, kafka_topic):
    assert produce(kafka_bootstrap, kafka_topic, (b"%d" % i for i in range(100))) == 100
    assigned, revoked = [], []
    # max.poll.interval.ms at its floor (>= session.timeout.ms) so the pause below outlasts it.
    c = Consumer(consumer_config(kafka_bootstrap, group(), "paused-1", **{"max.poll.interval.ms": 6000}))
    c.subscribe([kafka_topic], on_assign=lambda _c, p: assigned.append(p), on_revoke=lambda _c, p: revoked.append(p),
                on_lost=lambda _c, p: revoked.append(p))
    try:
        first = consume(c, 40)
        parts = c.assignment()
        c.pause(parts)
        assert produce(kafka_bootstrap, kafka_topic, (b"%d" % i for i in range(100, 120))) == 20
        during_pause = []
        # Keep polling while paused, as a trigger must while a batch runs: nothing arrives, and the consumer
        # stays in its group although more than max.poll.interval.ms passes.
        end = time.monotonic() + 7.5
        while time.monotonic() < end:
            during_pause += c.consume(num_messages=100, timeout=0.5)
        c.resume(parts)
        rest = consume(c, 80)
        rebalances = (len(assigned), len(revoked))  # before close(), which revokes
    finally:
        c.close()
    assert [m.offset() for m in first] == list(range(40))
    assert during_pause == []
    assert [m.offset() for m in rest] == list(range(40, 120))
    assert rebalances == (1, 0)


def test_only_committed_batches_count_and_a_restart_resumes_after_them(kafka_bootstrap, kafka_topic):
    assert produce(kafka_bootstrap, kafka_topic, (b"%d" % i for i in range(30))) == 30
    grp = group()
    c = Consumer(consumer_config(kafka_bootstrap, grp))
    c.subscribe([kafka_topic])
    try:
        succeeded = consume(c, 10)
        c.commit(offsets=next_offsets(succeeded), asynchronous=False)  # the run succeeded
        failed = consume(c, 10)  # the run failed: nothing committed
        assert [m.offset() for m in failed] == list(range(10, 20))
    finally:
        c.close()  # closing must not commit what was read

    restarted = Consumer(consumer_config(kafka_bootstrap, grp))
    restarted.subscribe([kafka_topic])
    try:
        committed = restarted.committed([TopicPartition(kafka_topic, 0)], timeout=10)
        after_restart = consume(restarted, 20)
        extra = restarted.consume(num_messages=10, timeout=1)
    finally:
        restarted.close()
    assert committed[0].offset == 10
    assert [m.offset() for m in after_restart] == list(range(10, 30))
    assert extra == []


def test_a_poison_batch_goes_to_the_dead_letter_topic_with_its_headers(kafka_bootstrap, make_topic):
    source, dead = make_topic("in"), make_topic("dlq")
    values = [b'{"n": 0}', b'{"n": 1}', b"not json {", b'{"n": 3}']
    assert produce(kafka_bootstrap, source, values, key=b"sensor-7", headers=[("trace", b"abc")]) == 4

    grp = group()
    c = Consumer(consumer_config(kafka_bootstrap, grp))
    c.subscribe([source])
    try:
        batch = consume(c, 4)
        try:
            [json.loads(m.value()) for m in batch]
            error = None
        except ValueError as exc:
            error = f"record 3: {exc}"
        assert error is not None
        acked, failures = [], []
        p = Producer(producer_config(kafka_bootstrap))
        for m in batch:
            headers = (m.headers() or []) + [
                ("pipeloom.source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode()),
                ("pipeloom.error", error.encode()), ("pipeloom.attempts", b"3")]
            p.produce(dead, value=m.value(), key=m.key(), headers=headers,
                      on_delivery=lambda err, msg: (failures if err else acked).append(err or msg))
        assert p.flush(30) == 0 and failures == []
        c.commit(offsets=next_offsets(batch), asynchronous=False)  # only once the dead letters are stored
        committed = c.committed([TopicPartition(source, 0)], timeout=10)
    finally:
        c.close()
    assert len(acked) == 4 and committed[0].offset == 4

    reader = Consumer(consumer_config(kafka_bootstrap, group()))
    reader.subscribe([dead])
    try:
        letters = consume(reader, 4)
    finally:
        reader.close()
    assert [m.value() for m in letters] == values
    assert {m.key() for m in letters} == {b"sensor-7"}
    assert [m.headers() for m in letters] == [
        [("trace", b"abc"), ("pipeloom.source", f"{source}/0/{i}".encode()), ("pipeloom.error", error.encode()),
         ("pipeloom.attempts", b"3")] for i in range(4)]


def test_the_command_line_starts_a_broker_that_outlives_it_and_stops_it(tmp_path, kafka_bootstrap):
    from confluent_kafka.admin import AdminClient

    from tests.support.kafka_broker import _alive

    cmd = [sys.executable, "-m", "tests.support.kafka_broker"]
    root = Path(__file__).resolve().parents[2]
    started = subprocess.run([*cmd, "start", "--dir", str(tmp_path / "b")], cwd=root, capture_output=True,
                             text=True, timeout=240)
    pid_file = tmp_path / "b" / "broker.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("bootstrap=127.0.0.1:")
        bootstrap = started.stdout.split("=", 1)[1].strip()
        assert bootstrap != kafka_bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert list(admin.list_topics(timeout=10).brokers) == [1]
        again = subprocess.run([*cmd, "start", "--dir", str(tmp_path / "b")], cwd=root, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        stopped = subprocess.run([*cmd, "stop", "--dir", str(tmp_path / "b")], cwd=root, capture_output=True,
                                 text=True, timeout=90)
    assert stopped.returncode == 0, stopped.stderr
    assert pid is not None and not _alive(pid)
    assert not pid_file.exists()


def test_missing_java_or_maven_is_named_with_what_to_install(tmp_path, monkeypatch):
    from tests.support.kafka_broker import Broker, BrokerError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError) as caught:
        Broker(tmp_path / "b").start()
    assert "apt-get install openjdk-17-jre-headless" in str(caught.value)
    assert "apt-get install maven" in str(caught.value)
