"""Events the engine emits while it runs a pipeline.

The engine calls one listener (any callable taking an Event). It never knows
who listens: the CLI draws progress, the web layer forwards each event to a
Socket.IO room under the name in `Event.kind`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, ClassVar

STATUSES = ("pending", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped", "cached")
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
DONE_OK = ("succeeded", "cached")


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunStatusEvent(Event):
    kind: ClassVar[str] = "run_status"
    run_id: str
    pipeline_id: str
    status: str
    nodes: list[str] = field(default_factory=list)


@dataclass
class NodeStatusEvent(Event):
    kind: ClassVar[str] = "node_status"
    run_id: str
    node_id: str
    status: str
    exit_code: int | None = None
    duration_s: float | None = None
    message: str | None = None
    attempt: int = 1


@dataclass
class LogEvent(Event):
    """A batch of log lines from one node: [{"stream", "text", "ts"}]."""

    kind: ClassVar[str] = "log"
    run_id: str
    node_id: str
    lines: list[dict]


@dataclass
class OutputReadyEvent(Event):
    kind: ClassVar[str] = "output_ready"
    run_id: str
    node_id: str
    port: str
    format: str
    size: int
    path: str = ""
    records: int | None = None


Listener = Callable[[Event], None]


class EventBus:
    """Fan one event stream out to many listeners; a failing listener never stops a run."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def __call__(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(event)
            except Exception:  # a broken listener must not break the run
                import logging

                logging.getLogger("pipeloom").exception("event listener failed on %s", event.kind)
