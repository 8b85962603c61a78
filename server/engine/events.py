"""Events the engine emits while it runs a pipeline.

The engine calls one listener (any callable taking an Event). It never knows
who listens: the CLI draws progress, the web layer forwards each event to a
Socket.IO room under the name in `Event.kind`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, ClassVar

STATUSES = ("pending", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped", "cached")
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
DONE_OK = ("succeeded", "cached")  # a step that did its work (or reused it): it counts as finished
FAILED_LIKE = ("failed", "timed_out")  # a step that stopped on a problem of its own
NODE_FINAL = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "cached")  # a step that will not change
RUN_ACTIVE = ("pending", "running")  # a run still going
RUN_FINAL = ("succeeded", "failed", "cancelled", "interrupted")
NO_RESULT = ("pending", "running", "skipped")  # a step in a run that left no result of its own


def vocabulary() -> dict:
    """The status groups, as the studio receives them (one definition for Python and the page)."""
    return {"statuses": list(STATUSES), "run_statuses": list(RUN_STATUSES), "done_ok": list(DONE_OK),
            "failed_like": list(FAILED_LIKE), "node_final": list(NODE_FINAL), "run_active": list(RUN_ACTIVE),
            "run_final": list(RUN_FINAL), "no_result": list(NO_RESULT)}


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
    origin: dict = field(default_factory=dict)  # what started the run (RunOptions.origin)


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
    worker: str | None = None  # the Dask worker running the node; None when it runs locally
    build_s: float | None = None  # the time its program took to build, apart from `duration_s`


@dataclass
class LogEvent(Event):
    """A batch of log lines from one node: [{"stream", "text", "ts"}]. During a fast burst only the newest
    lines are sent live: `skipped` counts the lines before these that were not (the log file has them all)."""

    kind: ClassVar[str] = "log"
    run_id: str
    node_id: str
    lines: list[dict]
    skipped: int = 0


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
