"""What every trigger shares: the outcome of a fed run, its state, and the counters the panel shows."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from server.engine.paths import atomic_write_text

log = logging.getLogger("pipeloom.triggers")

# states a trigger can be in, as shown in the studio and `pipeloom triggers list`
STATES = ("starting", "running", "paused", "failing", "off", "stopped")


@dataclass
class FeedOutcome:
    """How a run fed by a trigger ended."""

    ok: bool
    run_id: str | None
    message: str | None = None
    failed_node: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # "node.port" -> file path


# (the file that feeds the entry input, what fed it) -> how the run ended
FeedRunner = Callable[[Path, dict], FeedOutcome]
StatusSink = Callable[[dict], None]


class Counters:
    """Thread-safe counters and a smoothed events-per-second rate for one trigger."""

    KEPT = ("runs_started", "failures", "dead_lettered", "events", "last_batch", "last_run_id")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs_started = 0
        self.failures = 0
        self.dead_lettered = 0
        self.events = 0
        self.last_batch: dict | None = None
        self.last_run_id: str | None = None
        self._rate = 0.0
        self._rate_at = time.monotonic()
        self._rate_events = 0
        self._file: Path | None = None

    def keep_in(self, path: Path) -> None:
        """Carry the totals across restarts: start from what `path` holds, and write every change there."""
        try:
            saved = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        with self._lock:
            for name in self.KEPT:
                value = saved.get(name) if isinstance(saved, dict) else None
                if name.startswith("last_") and (value is None or isinstance(value, (dict, str))):
                    setattr(self, name, value)
                elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    setattr(self, name, value)
            self._file = Path(path)

    def _save(self) -> None:
        """Write the totals (called with the lock held); a failed write only loses the count, never a run."""
        if self._file is None:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self._file, json.dumps({n: getattr(self, n) for n in self.KEPT}) + "\n")
        except OSError:
            log.warning("could not keep the trigger's counters in %s", self._file, exc_info=True)

    def batch(self, size: int, run_id: str | None) -> None:
        with self._lock:
            self.events += size
            self._rate_events += size
            self.last_batch = {"size": size, "at": time.time(), "run_id": run_id}
            self._save()

    def run_started(self, run_id: str | None) -> None:
        with self._lock:
            self.runs_started += 1
            self.last_run_id = run_id
            self._save()

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            self._save()

    def dead_letter(self) -> None:
        with self._lock:
            self.dead_lettered += 1
            self._save()

    def rate(self) -> float:
        """Events per second, smoothed over about ten seconds."""
        with self._lock:
            now = time.monotonic()
            span = now - self._rate_at
            if span >= 1.0:
                inst = self._rate_events / span
                weight = min(1.0, span / 10.0)
                self._rate = self._rate * (1 - weight) + inst * weight
                self._rate_at, self._rate_events = now, 0
            return round(self._rate, 1)

    def to_dict(self) -> dict:
        rate = self.rate()
        with self._lock:
            return {"runs_started": self.runs_started, "failures": self.failures,
                    "dead_lettered": self.dead_lettered, "events": self.events, "events_per_s": rate,
                    "last_batch": self.last_batch, "last_run_id": self.last_run_id}


class TriggerBase:
    """What the folder, schedule and http triggers share: a state, an error, counters, and a status listener.

    Each kind adds `start()`, `stop()` and the fields of its own status (`status_extra`)."""

    kind = ""

    def __init__(self, trigger, on_status: StatusSink | None):
        self.t = trigger
        self.on_status = on_status
        self.counters = Counters()
        self.state = "stopped"
        self.error: str | None = None

    def pause(self) -> None:
        self.state = "paused"
        self._publish()

    def resume(self) -> None:
        self.state = "running"
        self._publish()

    def status_extra(self) -> dict:
        return {}

    def status(self) -> dict:
        """The trigger's state and counters, as the panel and `trigger_status` show them."""
        return {"trigger_id": self.t.id, "kind": self.kind, "state": self.state, "lag": None, "error": self.error,
                **self.status_extra(), **self.counters.to_dict()}

    def _publish(self) -> None:
        if self.on_status:
            try:
                self.on_status(self.status())
            except Exception:  # a listener's failure must not stop the trigger
                logging.getLogger("pipeloom.triggers").exception("trigger status listener failed")
