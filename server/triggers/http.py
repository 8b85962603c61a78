"""An http trigger as a callable function: admission, the fed run, and the answer, with no web framework.

The web layer turns `Answer` into a response; everything a caller can get
wrong or wait for is decided here, so the rules hold the same for any front.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .base import FeedOutcome, TriggerBase
from .invoke import EXT, BadBody, Busy, InvokeGate, body_to_input, result_body
from server.engine.triggerspec import Trigger


@dataclass
class Answer:
    """What to send back: a status, a body, its content type and extra headers."""

    status: int
    body: bytes | dict
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class RunHandle:
    """A started run: its id now, its outcome when it ends."""

    def __init__(self, run_id: str, wait):
        self.run_id = run_id
        self._wait = wait

    def wait(self, timeout: float | None) -> FeedOutcome | None:
        """The outcome, or None if `timeout` passed first (the run goes on)."""
        return self._wait(timeout)


class HttpTrigger(TriggerBase):
    """One http trigger: `invoke()` runs the pipeline on a request body."""

    kind = "http"

    def __init__(self, trigger: Trigger, *, input_format: str, result_format: str | None, workdir: Path,
                 start_feed, on_status=None, on_batch=None):
        super().__init__(trigger, on_status)
        self.fmt = input_format
        self.result_format = result_format
        self.workdir = Path(workdir)
        self.start_feed = start_feed  # (path, origin) -> RunHandle
        self.on_batch = on_batch  # (records in the call, [seconds from arrival to result])
        self.gate = InvokeGate(trigger.max_concurrent, trigger.queue)
        self.state = "running"

    @property
    def max_body(self) -> int:
        return int(self.t.max_body_mb * 1024 * 1024)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state = "paused" if self.state == "paused" else "running"

    def stop(self, timeout: float = 0) -> None:
        self.state = "stopped"

    def status_extra(self) -> dict:
        return {"lag": self.gate.waiting, "running": self.gate.running, "waiting": self.gate.waiting}

    def invoke(self, body: bytes, content_type: str | None, *, wait: bool = True,
               request_id: str | None = None) -> Answer:
        """Run the pipeline on `body` and answer as the http trigger's contract says."""
        if self.state == "paused":
            return Answer(409, {"error": f"trigger `{self.t.id}` is paused; resume it to take calls"},
                          headers={"Retry-After": "30"})
        if len(body) > self.max_body:
            return Answer(413, {"error": f"the body is {len(body):,} bytes; trigger `{self.t.id}` takes at most "
                                         f"{self.max_body:,} (max_body_mb)"})
        request_id = request_id or secrets.token_hex(8)
        path = self.workdir / f"call-{request_id}.{EXT.get(self.fmt, self.fmt)}"
        try:
            records = body_to_input(body, content_type, self.fmt, path)
        except BadBody as exc:
            return Answer(415 if "Content-Type" in str(exc) else 422,
                          {"error": f"trigger `{self.t.id}`, input `{self.t.to}`: {exc}"})
        try:
            self.gate.reserve()
        except Busy as exc:
            path.unlink(missing_ok=True)
            return Answer(429, {"error": f"trigger `{self.t.id}` is busy: {exc}", "retry_after": exc.retry_after},
                          headers={"Retry-After": str(exc.retry_after)})
        from server.engine.runner import new_run_id

        run_id = new_run_id()
        origin = {"trigger": self.t.id, "kind": "http", "request_id": request_id, "bytes": len(body),
                  "records": records}
        call = _Call(run_id)
        threading.Thread(target=self._run_call, args=(call, path, origin, self.t.timeout if wait else None),
                         name=f"pipeloom-invoke-{run_id}", daemon=True).start()
        headers = {"X-Pipeloom-Run": run_id}
        if not wait:
            return Answer(202, {"run_id": run_id}, headers=headers)
        if not call.done.wait(self.t.timeout):
            if call.give_up():
                return Answer(504, {"error": f"no run slot came free within {self.t.timeout:g} s; nothing ran"})
            return Answer(504, {"error": f"the run took longer than {self.t.timeout:g} s; it goes on",
                                "run_id": run_id}, headers=headers)
        if call.error is not None:
            return Answer(422, {"error": f"the run could not start: {call.error}", "run_id": run_id}, headers=headers)
        outcome = call.outcome
        if outcome is None:
            return Answer(422, {"error": "the run ended without an outcome", "run_id": run_id}, headers=headers)
        if not outcome.ok:
            return Answer(422, {"error": outcome.message or "the run failed", "run_id": outcome.run_id,
                                "node": outcome.failed_node}, headers=headers)
        if self.t.result is None:
            return Answer(200, {"run_id": outcome.run_id, "status": "succeeded"}, headers=headers)
        out = outcome.outputs.get(str(self.t.result))
        if not out or not Path(out).exists():
            return Answer(422, {"error": f"the run produced no `{self.t.result}`", "run_id": outcome.run_id},
                          headers=headers)
        data, ctype = result_body(out, self.result_format or "json")
        return Answer(200, data, ctype, headers)

    def _run_call(self, call: "_Call", path: Path, origin: dict, slot_timeout: float | None) -> None:
        started = time.monotonic()
        try:
            if not self.gate.acquire(slot_timeout):
                call.give_up()
                return
            if not call.begin():  # the caller stopped waiting before a slot came free
                self.gate.leave()
                return
            try:
                handle = self.start_feed(path, origin, run_id=call.run_id)
            except Exception as exc:
                self.gate.leave()
                self.counters.failed()
                call.error = f"{type(exc).__name__}: {exc}"
                return
            self.counters.run_started(handle.run_id)
            self.counters.batch(origin.get("records") or 1, handle.run_id)
            try:
                call.outcome = handle.wait(None)
            finally:
                self.gate.leave(time.monotonic() - started)
            if call.outcome is not None and call.outcome.ok and self.on_batch is not None:
                self.on_batch(origin.get("records") or 1, [time.monotonic() - started])
            if call.outcome is not None and not call.outcome.ok:
                self.counters.failed()
        finally:
            path.unlink(missing_ok=True)
            call.done.set()
            self._publish()


class _Call:
    """One invocation between its admission and its end; `begin` and `give_up` settle who wins a timeout."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.done = threading.Event()
        self.outcome: FeedOutcome | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._state = "queued"

    def begin(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "running"
            return True

    def give_up(self) -> bool:
        """True if the call had not started and now never will."""
        with self._lock:
            if self._state == "queued":
                self._state = "abandoned"
                return True
            return False
