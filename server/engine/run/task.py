"""What a node run needs and what it gives back, as plain data an executor can ship to another machine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from ..model import Node, Pipeline


@dataclass
class InputSpec:
    """One input of a node: where its data is and what it must become."""

    port: str
    file: str  # the name it is staged under in the node's working directory
    format: str  # the format the input declares
    path: str | None = None  # the file that feeds it (an upstream output, an entry file); None: no data
    src_format: str | None = None  # an upstream output's format; None for an entry file
    edge: object | None = None  # the model.Edge that carries it, for conversion errors that name it
    sha256: str | None = None  # checked on arrival when the data crosses machines
    size: int | None = None
    data: bytes | None = None  # the bytes themselves, when an executor sends a small input along


@dataclass
class NodeTask:
    """Everything needed to run one node once (with its retries), on this machine or another."""

    run_id: str
    node: Node
    pipeline: Pipeline  # a slim copy: its name, folder and this node, for the runtime's build
    workdir: str
    inputs: list[InputSpec] = field(default_factory=list)
    log_cap: int | None = None  # bytes of output kept per node (None: PIPELOOM_LOG_CAP or the default)


@dataclass
class NodeOutcome:
    """How a node run ended: its status, timings and outputs (each with its sha256)."""

    status: str
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    message: str | None = None
    attempts: int = 0
    artifacts: dict[str, dict] = field(default_factory=dict)
    worker: str | None = None  # the Dask worker that ran it; None for a local run
    build_s: float | None = None  # time spent building the program, when the runtime had to build it


class NodeLog(Protocol):
    """Where a node run reports: a new attempt, Pipeloom's own lines, and the program's output."""

    def attempt(self, attempt: int, started_at: float) -> None: ...
    def meta(self, text: str) -> None: ...
    def output(self): ...  # an OutputSink (process.OutputSink) for the attempt about to start


class Cancel:
    """A run's cancel switch. Setting it stops every process attached to it (their whole groups)."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[object, object] = {}

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def set(self) -> None:
        """Cancel: every attached process group gets SIGTERM, then SIGKILL after a grace period."""
        self._event.set()
        with self._lock:
            procs = list(self._procs.values())
        killers = [threading.Thread(target=p.kill_group, daemon=True) for p in procs]
        for t in killers:
            t.start()
        for t in killers:
            t.join(10)

    def attach(self, key, proc) -> bool:
        """Watch `proc` until `detach`; True if the switch was already set (the caller stops it)."""
        with self._lock:
            self._procs[key] = proc
            return self._event.is_set()

    def detach(self, key) -> None:
        with self._lock:
            self._procs.pop(key, None)
