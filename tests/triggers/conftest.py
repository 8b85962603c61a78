"""A real Kafka broker, started once per test session, and fresh topics on it."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import require
from tests.support.kafka_broker import Broker, missing_tools

_timings: dict = {}
_notes: list[str] = []


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """bootstrap.servers of a single-node broker on 127.0.0.1, shared by the session's tests."""
    hints = missing_tools()
    require(not hints, "cannot run a real Kafka broker: " + "; ".join(hints))
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        require(False, "the confluent-kafka package is not installed (pip install 'pipeloom[test]')")
    broker = Broker(tmp_path_factory.mktemp("kafka"), die_with_parent=True)
    try:
        yield broker.start()
    finally:
        broker.stop()
        _timings.update(broker.timings, log=str(broker.log))


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap):
    """One AdminClient for the session (kept referenced, so its futures are never collected mid-call)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(request, kafka_admin):
    """Create and return a topic with a unique name for this test: make_topic(suffix="", partitions=1)."""
    from confluent_kafka.admin import NewTopic

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]

    def make(suffix: str = "", partitions: int = 1) -> str:
        name = f"{base}{'-' + suffix if suffix else ''}-{uuid.uuid4().hex[:8]}"
        futures = kafka_admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                            operation_timeout=30)
        futures[name].result(timeout=60)
        return name

    return make


@pytest.fixture
def kafka_topic(make_topic):
    """A fresh topic with one partition, made for this test alone."""
    return make_topic()


@pytest.fixture
def kafka_note():
    """Call with a line (a measured figure) to show in the terminal summary after the run."""
    return _notes.append


def pytest_terminal_summary(terminalreporter):
    for line in _notes:
        terminalreporter.write_line(f"kafka: {line}")
    if _timings:
        t = _timings
        terminalreporter.write_line(
            f"kafka broker: jars {t.get('resolve_s')} s, format {t.get('format_s')} s, ready {t.get('ready_s')} s "
            f"after launch, class-data archive {t.get('archive')}, stop {t.get('stop_s')} s (log {t.get('log')})")
