"""The schedule trigger: cron expressions in a time zone, with the last tick kept on disk.

The tick is written down before its run starts, so a restart never fires the
same tick twice; ticks that passed while Pipeloom was down are skipped, or
run once (`missed: run_once`).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from .base import FeedRunner, StatusSink, TriggerBase
from server.engine.triggerspec import Trigger
from .state import TriggerState

# a tick found this late is still "on time"; older ones were missed while down
GRACE_S = 60.0


def newest_tick(cron: str, tz: str, now: float) -> float:
    """The latest time at or before `now` that matches the cron expression (epoch seconds)."""
    from croniter import croniter

    # cron counts whole minutes; starting one second past `now` makes a tick at `now` itself count
    start = datetime.fromtimestamp(int(now) + 1, tz=ZoneInfo(tz))
    return croniter(cron, start).get_prev(datetime).timestamp()


def next_tick(cron: str, tz: str, after: float) -> float:
    """The first time strictly after `after` that matches the cron expression."""
    from croniter import croniter

    return croniter(cron, datetime.fromtimestamp(after, tz=ZoneInfo(tz))).get_next(datetime).timestamp()


def due(cron: str, tz: str, missed: str, last: float | None, now: float) -> tuple[float | None, bool, float]:
    """(tick to fire or None, whether it was missed, the tick to remember) at time `now`.

    With no remembered tick (a new trigger), nothing in the past fires.
    """
    tick = newest_tick(cron, tz, now)
    if last is None:
        return (tick if now - tick <= GRACE_S else None), False, tick
    if tick <= last:
        return None, False, last
    if now - tick <= GRACE_S:
        return tick, False, tick
    return (tick if missed == "run_once" else None), True, tick


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class ScheduleTrigger(TriggerBase):
    """Fires a pipeline on a cron schedule until `stop()`."""

    kind = "schedule"

    def __init__(self, trigger: Trigger, *, state: TriggerState, feed: FeedRunner, input_format: str | None,
                 workdir: Path, on_status: StatusSink | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] | None = None):
        super().__init__(trigger, on_status)
        self.state_file = state
        self.feed = feed
        self.fmt = input_format
        self.workdir = Path(workdir)
        self.clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self.state = "paused" if self.state_file.paused else "running"
        self._thread = threading.Thread(target=self._loop, name=f"pipeloom-schedule-{self.t.id}", daemon=True)
        self._thread.start()
        self._publish()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "stopped"
        self._publish()

    def status_extra(self) -> dict:
        last = self.state_file.read().get("last_tick")
        nxt = next_tick(self.t.cron, self.t.timezone, self.clock())
        return {"last_tick": iso(last) if last else None, "next_tick": iso(nxt)}

    def check(self) -> str | None:
        """Fire the due tick, if any; returns the run id started. The loop calls this; so can a test."""
        now = self.clock()
        last = self.state_file.read().get("last_tick")
        tick, was_missed, remember = due(self.t.cron, self.t.timezone, self.t.missed, last, now)
        if remember != last:
            self.state_file.update(last_tick=remember)  # before the run: a restart must not fire it again
        if tick is None or self.state == "paused":
            return None
        origin = {"trigger": self.t.id, "kind": "schedule", "scheduled_for": iso(tick), "missed": was_missed}
        path = self._tick_file(tick, was_missed)
        outcome = self.feed(path, origin)
        self.counters.run_started(outcome.run_id)
        self.counters.batch(1, outcome.run_id)
        if not outcome.ok:
            self.counters.failed()
            self.error = outcome.message
        else:
            self.error = None
        self._publish()
        return outcome.run_id

    def _tick_file(self, tick: float, was_missed: bool) -> Path | None:
        """The record a schedule hands its entry input (when it has one): when it fired and why."""
        if self.t.to is None or self.fmt is None:
            return None
        from .batch import write_batch
        import json

        value = json.dumps({"trigger": self.t.id, "scheduled_for": iso(tick), "fired_at": iso(self.clock()),
                            "missed": was_missed}).encode()
        path = self.workdir / f"tick-{int(tick)}.{'txt' if self.fmt == 'text' else self.fmt}"
        write_batch([value], self.fmt, path)
        return path

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # a failing tick must not stop the schedule
                self.error = f"{type(exc).__name__}: {exc}"
                self._publish()
            wait = next_tick(self.t.cron, self.t.timezone, self.clock()) - self.clock()
            self._sleep(max(0.05, min(wait, 30.0)))
