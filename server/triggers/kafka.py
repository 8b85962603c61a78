"""The Kafka trigger: batches from a consumer group feed runs, committed only after success.

Two threads per trigger. The poll thread owns the consumer: it gathers a batch
of up to `max_events` or `max_wait_ms`, hands it to the run thread, applies
commits, pauses the assignment while too many batches wait (backpressure) and
keeps polling all the while, so the group never sees it as dead during a long
run. While a run is in progress, the batch being gathered keeps growing (up to
`max_events`) instead of closing at `max_wait_ms`: it is handed over the moment
the run thread is free, so an event waits for at most the run before its own,
and the stream is not cut into many small batches queued behind a slow run. The run thread writes each batch to the entry input's file, runs the
pipeline (retrying a failed run), produces the result records, dead-letters
what cannot be processed, and only then asks for the commit. Batches run one
at a time in the order they were gathered, so one partition's batches run in
order. Anything gathered but not committed is consumed again after a restart,
a rebalance or a kill -9: delivery is at least once.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .base import Counters, FeedOutcome, FeedRunner, StatusSink
from .batch import write_batch
from server.engine.triggerspec import Trigger

log = logging.getLogger("pipeloom.triggers.kafka")

EXTENSIONS = {"json": "json", "ndjson": "ndjson", "csv": "csv", "parquet": "parquet", "text": "txt"}


@dataclass
class Batch:
    seq: int
    messages: list[Any]
    epoch: dict[int, int] = field(default_factory=dict)  # partition -> assignment epoch when gathered

    def offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the next offset to commit (last offset + 1)."""
        out: dict[tuple[str, int], int] = {}
        for m in self.messages:
            key = (m.topic(), m.partition())
            out[key] = max(out.get(key, -1), m.offset() + 1)
        return out

    def describe(self) -> dict:
        """What fed the run: topic, and per partition the first and last offsets."""
        parts: dict[int, list[int]] = {}
        for m in self.messages:
            lo_hi = parts.setdefault(m.partition(), [m.offset(), m.offset()])
            lo_hi[0] = min(lo_hi[0], m.offset())
            lo_hi[1] = max(lo_hi[1], m.offset())
        topic = self.messages[0].topic() if self.messages else None
        return {"topic": topic, "partitions": {str(p): {"first": a, "last": b} for p, a, b in
                                               ((p, v[0], v[1]) for p, v in sorted(parts.items()))},
                "events": len(self.messages)}


def instance_id(group: str, workspace: Path) -> str:
    """A static group member id: stable across restarts of this workspace's server, unique per host."""
    ws = hashlib.sha256(str(workspace).encode()).hexdigest()[:10]
    return f"{group}.{socket.gethostname()}.{ws}"


class KafkaTrigger:
    """One Kafka trigger of one pipeline, running until `stop()`."""

    def __init__(self, trigger: Trigger, *, pipeline_id: str, input_format: str, workdir: Path,
                 feed: FeedRunner, workspace: Path, on_status: StatusSink | None = None,
                 max_waiting: int = 2, consumer_factory: Callable[[dict], Any] | None = None,
                 producer_factory: Callable[[dict], Any] | None = None,
                 read_records: Callable[[str, str], Any] | None = None,
                 on_batch: Callable[[int, list[float]], None] | None = None):
        self.t = trigger
        self.pipeline_id = pipeline_id
        self.fmt = input_format
        self.workdir = Path(workdir)
        self.feed = feed
        self.workspace = Path(workspace)
        self.on_status = on_status
        self.max_waiting = max_waiting
        self.counters = Counters()
        self.state = "stopped"
        self.error: str | None = None
        self.lag: int | None = None
        self.backpressure = False
        self._user_paused = False
        self._stop = threading.Event()
        self._rewind = threading.Event()
        self._ready: queue.Queue[Batch] = queue.Queue()
        self._busy = threading.Event()  # set while the run thread works on a batch
        self._commits: queue.Queue[tuple[dict, threading.Event, list]] = queue.Queue()
        self._epoch: dict[int, int] = {}
        self._epoch_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._consumer_factory = consumer_factory or _confluent_consumer
        self._producer_factory = producer_factory or _confluent_producer
        self._producer = None
        self._read_records = read_records
        self.on_batch = on_batch  # (events in the batch, seconds from each event's timestamp to its result)
        self._seq = 0
        self._committed: dict[int, int] = {}
        self._last_status = 0.0

    # ------------------------------------------------------------ control

    def consumer_config(self) -> dict:
        """The librdkafka settings: manual commits after success, static membership, fast rejoin."""
        group = self.t.group_id(self.pipeline_id)
        cfg = {
            "bootstrap.servers": self.t.resolved_brokers(),
            "group.id": group,
            "group.instance.id": instance_id(group, self.workspace),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300000,
            "queued.max.messages.kbytes": 16384,
            "client.id": f"pipeloom-{self.pipeline_id}-{self.t.id}",
            "logger": logging.getLogger("pipeloom.kafka.client"),
            "log_level": 2,  # the client's own errors reach error_cb and the trigger's state, not the console
            "error_cb": self._client_error,
        }
        cfg.update(self.t.config)
        return cfg

    def _brokers_text(self) -> str:
        try:
            return self.t.resolved_brokers()
        except ValueError:
            return self.t.brokers

    def _client_error(self, err) -> None:
        """librdkafka's own errors (a broker down, a refused login) become the trigger's state, in words."""
        from confluent_kafka import KafkaError

        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            self._set_state("failing", f"cannot reach the Kafka broker at {self._brokers_text()}; "
                                       f"retrying (is it running?): {err.str()}")
        elif err.fatal():
            self._set_state("failing", f"Kafka: {err.str()}")

    def start(self) -> None:
        """Start the poll and run threads."""
        self._stop.clear()
        self._set_state("starting")
        for name, target in (("poll", self._poll_loop), ("run", self._run_loop)):
            th = threading.Thread(target=target, name=f"pipeloom-kafka-{self.t.id}-{name}", daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gathering; the batch being run finishes (or is left uncommitted to be consumed again)."""
        self._stop.set()
        for th in self._threads:
            th.join(timeout)
        self._threads = []
        if self._producer is not None:
            self._producer.flush(5)
        self._set_state("stopped")

    def pause(self) -> None:
        self._user_paused = True
        self._set_state("paused")

    def resume(self) -> None:
        self._user_paused = False
        self._set_state("running" if self.error is None else "failing")

    def status(self) -> dict:
        """The trigger's state and counters, as the panel and `trigger_status` show them."""
        return {"trigger_id": self.t.id, "kind": "kafka", "state": self.state, "lag": self.lag,
                "error": self.error, "backpressure": self.backpressure,
                "waiting_batches": self._ready.qsize(), **self.counters.to_dict()}

    def _set_state(self, state: str, error: str | None = None) -> None:
        changed = state != self.state or error != self.error
        self.state, self.error = state, error
        if changed:
            self._publish(force=True)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_status and (force or now - self._last_status >= 1.0):
            self._last_status = now
            try:
                self.on_status(self.status())
            except Exception:  # a listener's failure must not stop the stream
                log.exception("trigger status listener failed")

    # ------------------------------------------------------------ the poll thread

    def _poll_loop(self) -> None:
        from server.engine.triggerspec import UnsetVariable

        backoff = 0.5
        while not self._stop.is_set():
            try:
                consumer = self._consumer_factory(self.consumer_config())
            except UnsetVariable as exc:
                self._set_state("off", f"set {exc.name} to the Kafka brokers' address (host:port) and restart "
                                       "`pipeloom serve` to start this trigger")
                self._stop.wait(3600)
                continue
            except ImportError:
                self._set_state("failing", "the Kafka client is not installed: pip install confluent-kafka")
                self._stop.wait(3600)
                continue
            except Exception as exc:
                self._set_state("failing", f"cannot create the Kafka consumer: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)
                continue
            try:
                self._consume(consumer)
                backoff = 0.5
            except Exception as exc:
                log.exception("kafka trigger %s failed", self.t.id)
                self._set_state("failing", f"the consumer stopped: {exc}; reconnecting")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)
            finally:
                try:
                    consumer.close()
                except Exception:
                    pass

    def _consume(self, consumer) -> None:
        assigned: list = []

        def on_assign(c, partitions):
            with self._epoch_lock:
                for p in partitions:
                    self._epoch[p.partition] = self._epoch.get(p.partition, 0) + 1
            assigned[:] = list(partitions)
            if self.state == "failing":  # reached the group again: the broker is back
                self._set_state("paused" if self._user_paused else "running")

        def on_revoke(c, partitions):
            gone = {p.partition for p in partitions}
            with self._epoch_lock:
                for p in gone:
                    self._epoch[p] = self._epoch.get(p, 0) + 1  # batches gathered before are not ours to commit
            assigned[:] = [p for p in assigned if p.partition not in gone]

        consumer.subscribe([self.t.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        batch: list[Any] = []
        first_at = 0.0
        paused = False
        last_lag = 0.0
        max_wait = self.t.max_wait_ms / 1000.0
        if self.state in ("starting", "stopped"):
            self._set_state("paused" if self._user_paused else "running")
        self._rewind.clear()
        while not self._stop.is_set() or self._running_batch():
            if self._rewind.is_set():
                return  # reconnect: the new consumer starts at the committed offsets
            self._apply_commits(consumer)
            if self._stop.is_set():  # stopping: gather nothing more, but commit the batch that is finishing
                time.sleep(0.02)
                continue
            hold = self._user_paused or self._ready.qsize() >= self.max_waiting
            if hold != paused and assigned:
                (consumer.pause if hold else consumer.resume)(assigned)
                paused = hold
                self.backpressure = hold and not self._user_paused
            room = self.t.max_events - len(batch)
            if batch:  # short waits once the batch is due, to hand it over as soon as the run thread is free
                timeout = max(0.01, min(0.05, first_at + max_wait - time.monotonic()))
            else:
                timeout = 0.05
            msgs = consumer.consume(num_messages=max(1, room), timeout=timeout)
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == _partition_eof():
                        continue
                    self._set_state("failing", f"Kafka: {err.str()}")
                    continue
                if not batch:
                    first_at = time.monotonic()
                batch.append(m)
                if self.state == "failing":
                    self._set_state("paused" if self._user_paused else "running")
            due = batch and time.monotonic() - first_at >= max_wait and self._free()
            if batch and (len(batch) >= self.t.max_events or due):
                self._seq += 1
                with self._epoch_lock:
                    epoch = {m.partition(): self._epoch.get(m.partition(), 0) for m in batch}
                self._ready.put(Batch(self._seq, batch, epoch))
                batch = []
            now = time.monotonic()
            if now - last_lag >= 1.0:
                last_lag = now
                self.lag = self._measure_lag(consumer, assigned)
                self._publish()
        # leaving: what was gathered but not run stays uncommitted, to be consumed again

    def _free(self) -> bool:
        """The run thread would take a batch now: nothing waits and no run is in progress."""
        return self._ready.empty() and not self._busy.is_set()

    def _running_batch(self) -> bool:
        return any(th.is_alive() for th in self._threads if th.name.endswith("-run"))

    def _apply_commits(self, consumer) -> None:
        while True:
            try:
                offsets, done, result = self._commits.get_nowait()
            except queue.Empty:
                return
            try:
                from confluent_kafka import TopicPartition

                tps = [TopicPartition(topic, part, off) for (topic, part), off in offsets.items()]
                consumer.commit(offsets=tps, asynchronous=False)
                for (_, part), off in offsets.items():
                    self._committed[part] = max(self._committed.get(part, 0), off)
                result.append(None)
            except Exception as exc:
                result.append(exc)
            finally:
                done.set()

    def _measure_lag(self, consumer, assigned) -> int | None:
        if not assigned:
            return self.lag
        total = 0
        try:
            for tp in assigned:
                _lo, hi = consumer.get_watermark_offsets(tp, cached=True)
                if hi < 0:
                    return self.lag
                done = self._committed.get(tp.partition)
                if done is None:
                    pos = consumer.position([tp])[0].offset
                    done = pos if pos >= 0 else hi
                total += max(0, hi - done)
        except Exception:
            return self.lag
        return total

    # ------------------------------------------------------------ the run thread

    def _run_loop(self) -> None:
        while not self._stop.is_set():
            try:
                b = self._ready.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._stale(b):
                continue  # its partitions moved to another member, who will consume them again
            self._busy.set()
            try:
                self._process(b)
            except Exception as exc:
                log.exception("kafka trigger %s: batch %s failed", self.t.id, b.seq)
                self._set_state("failing", f"batch {b.seq} could not be processed: {exc}; consuming it again")
                self._rewind_to_committed()
            finally:
                self._busy.clear()

    def _rewind_to_committed(self) -> None:
        """Drop every batch not yet run and reconnect, so consumption restarts at the last commit.

        Committing a later batch would commit this one too, so nothing after it may run first."""
        with self._epoch_lock:
            for p in list(self._epoch):
                self._epoch[p] += 1
        while True:
            try:
                self._ready.get_nowait()
            except queue.Empty:
                break
        self._rewind.set()
        self._stop.wait(1.0)

    def _stale(self, b: Batch) -> bool:
        with self._epoch_lock:
            return any(self._epoch.get(p, 0) != e for p, e in b.epoch.items())

    def _process(self, b: Batch) -> None:
        ext = EXTENSIONS.get(self.fmt, self.fmt)
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / f"batch-{b.seq}.{ext}"
        values = [m.value() for m in b.messages]
        written, rejected = write_batch(values, self.fmt, path)
        for r in rejected:
            self._dead_letter([b.messages[r.index]], f"not valid {self.fmt}: {r.reason}")
        origin = {"trigger": self.t.id, "kind": "kafka", **b.describe(), "rejected": len(rejected)}
        outcome: FeedOutcome | None = None
        if written:
            for attempt in range(1, self.t.retries + 2):
                outcome = self.feed(path, {**origin, "attempt": attempt})
                self.counters.run_started(outcome.run_id)
                if outcome.ok:
                    break
                self.counters.failed()
            assert outcome is not None
            self.counters.batch(written, outcome.run_id)
            if outcome.ok:
                self._produce_results(outcome)
                self._observe(b, written)
            else:
                reason = f"run {outcome.run_id} failed"
                if outcome.failed_node:
                    reason += f" at node `{outcome.failed_node}`"
                if outcome.message:
                    reason += f": {outcome.message}"
                good = [m for i, m in enumerate(b.messages) if i not in {r.index for r in rejected}]
                self._dead_letter(good, reason, run_id=outcome.run_id)
        path.unlink(missing_ok=True)
        self._commit(b)
        if self.state == "failing" and (outcome is None or outcome.ok):
            self._set_state("paused" if self._user_paused else "running")
        self._publish(force=True)

    def _observe(self, b: Batch, written: int) -> None:
        if self.on_batch is None:
            return
        now = time.time()
        lat = [now - ts / 1000.0 for ts_type, ts in (m.timestamp() for m in b.messages) if ts_type and ts > 0]
        try:
            self.on_batch(written, lat)
        except Exception:
            log.exception("batch listener failed")

    def _commit(self, b: Batch) -> None:
        if self._stale(b):
            return  # the partition was revoked; its new owner consumes these again
        done, result = threading.Event(), []
        self._commits.put((b.offsets(), done, result))
        while not done.wait(0.2):
            if not any(th.is_alive() for th in self._threads if th.name.endswith("-poll")):
                return  # the consumer is gone: left uncommitted, consumed again later
        if result and result[0] is not None:
            log.warning("kafka trigger %s: commit failed (%s); the batch will be consumed again", self.t.id, result[0])

    def _producer_(self):
        if self._producer is None:
            cfg = {"bootstrap.servers": self.t.resolved_brokers(), "acks": "all", "linger.ms": 5,
                   "enable.idempotence": True, "client.id": f"pipeloom-{self.pipeline_id}-{self.t.id}-out",
                   "logger": logging.getLogger("pipeloom.kafka.client"), "log_level": 2}
            cfg.update({k: v for k, v in self.t.config.items() if k.startswith(("security.", "sasl.", "ssl."))})
            self._producer = self._producer_factory(cfg)
        return self._producer

    def _dead_letter(self, messages: list, reason: str, run_id: str | None = None) -> None:
        if not messages:
            return
        self.counters.dead_letter()
        if not self.t.dead_letter_topic:
            self._dead_letter_locally(messages, reason)
            return
        p = self._producer_()
        headers = [("pipeloom-error", reason.encode("utf-8", "replace")[:8000]),
                   ("pipeloom-trigger", self.t.id.encode())]
        if run_id:
            headers.append(("pipeloom-run", run_id.encode()))
        for m in messages:
            hdrs = headers + [("pipeloom-source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode())]
            p.produce(self.t.dead_letter_topic, value=m.value(), key=m.key(), headers=hdrs)
            p.poll(0)
        left = p.flush(30)
        if left:
            raise RuntimeError(f"{left} dead-letter message(s) not delivered to {self.t.dead_letter_topic}")

    def _dead_letter_locally(self, messages: list, reason: str) -> None:
        """With no dead-letter topic, the values are kept in a file beside the trigger's state."""
        import json

        folder = self.workdir / "dead-letter"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{int(time.time() * 1000)}-{messages[0].partition()}-{messages[0].offset()}.ndjson"
        with open(path, "w", encoding="utf-8") as fh:
            for m in messages:
                raw = m.value()
                fh.write(json.dumps({"reason": reason, "topic": m.topic(), "partition": m.partition(),
                                     "offset": m.offset(),
                                     "value": raw.decode("utf-8", "replace") if raw is not None else None}) + "\n")

    def _produce_results(self, outcome: FeedOutcome) -> None:
        if not self.t.produce_from or not self.t.produce_topic:
            return
        path = outcome.outputs.get(str(self.t.produce_from))
        if not path:
            return
        from server.engine.data.formats import guess_format, iter_records, json_text

        read = self._read_records or iter_records
        p = self._producer_()
        fmt = guess_format(path)
        for rec in read(path, fmt):
            p.produce(self.t.produce_topic, value=json_text(rec, compact=True).encode("utf-8"))
            p.poll(0)
        left = p.flush(30)
        if left:
            raise RuntimeError(f"{left} result message(s) not delivered to {self.t.produce_topic}")


def _partition_eof() -> int:
    from confluent_kafka import KafkaError

    return KafkaError._PARTITION_EOF


def _confluent_consumer(cfg: dict):
    from confluent_kafka import Consumer

    return Consumer(cfg)


def _confluent_producer(cfg: dict):
    from confluent_kafka import Producer

    return Producer(cfg)
