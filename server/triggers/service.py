"""The service loop: the triggers of every pipeline in a workspace, started, reloaded and stopped together.

It knows pipelines only through `load` (a path to a validated Pipeline with
its `triggers`) and runs only through `starter` (a way to start a run with an
entry input fed from a file), so it carries no web framework and no runner
details. Pause and resume are kept in each trigger's state file and survive
restarts; a `pipeloom triggers pause` from another process is noticed within a
second.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from server.engine.errors import NotFoundError, PipeloomError, ValidationError
from server.engine.paths import find_pipelines, pipeline_id_for

from .folder import FolderTrigger
from .http import HttpTrigger, RunHandle
from .kafka import KafkaTrigger
from .schedule import ScheduleTrigger
from server.engine.triggerspec import Trigger
from .state import TriggerState, trigger_dir

log = logging.getLogger("pipeloom.triggers")

# (pipeline, trigger, entry input file or None, what fed it, run id or None) -> a started run
Starter = Callable[..., RunHandle]


@dataclass
class Loaded:
    pipeline_id: str
    path: Path
    pipeline: object
    triggers: dict[str, object] = field(default_factory=dict)  # trigger id -> running trigger object
    specs: dict[str, Trigger] = field(default_factory=dict)
    error: str | None = None


class TriggerService:
    """Every trigger of a workspace's pipelines, in one process beside the studio (or alone)."""

    def __init__(self, workspace: str | Path, *, load: Callable[[Path], object], starter: Starter,
                 on_status: Callable[[dict], None] | None = None, watch_interval: float = 1.0,
                 on_batch: Callable[[str, str, int, list[float]], None] | None = None):
        self.workspace = Path(workspace).resolve()
        self.load = load
        self.starter = starter
        self.on_status = on_status or (lambda s: None)
        self.on_batch = on_batch  # (pipeline id, trigger id, events, latencies in seconds)
        self.watch_interval = watch_interval
        self._pipelines: dict[str, Loaded] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the triggers of every pipeline file in the workspace."""
        for path in find_pipelines(self.workspace):
            self.reload(path)
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch_states, name="pipeloom-trigger-states", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop every trigger: batches being run finish; what is not committed comes back next time."""
        self._stop.set()
        with self._lock:
            loaded = list(self._pipelines.values())
            self._pipelines.clear()
        for item in loaded:
            self._stop_all(item)
        if self._watcher is not None:
            self._watcher.join(5)

    def reload(self, path: str | Path) -> None:
        """(Re)start one pipeline's triggers after its file changed, appeared or vanished."""
        path = Path(path).resolve()
        pid = pipeline_id_for(self.workspace, path)
        pipeline = None
        if path.exists():
            try:
                pipeline = self.load(path)
            except (PipeloomError, OSError):
                pipeline = None
        with self._lock:
            old = self._pipelines.get(pid)
            if (old is not None and pipeline is not None and old.pipeline is not None and not old.error
                    and getattr(old.pipeline, "triggers_doc", None) == getattr(pipeline, "triggers_doc", None)):
                old.pipeline = pipeline  # same triggers: keep them running, on the new steps
                return
            self._pipelines.pop(pid, None)
        if old is not None:
            self._stop_all(old)
        if not path.exists():
            return
        try:
            pipeline = pipeline if pipeline is not None else self.load(path)
        except ValidationError as exc:
            problems = "; ".join(str(p) for p in exc.problems[:3])
            item = Loaded(pid, path, None, error=f"the pipeline has problems, so its triggers are off: {problems}")
            with self._lock:
                self._pipelines[pid] = item
            return
        except (PipeloomError, OSError) as exc:
            with self._lock:
                self._pipelines[pid] = Loaded(pid, path, None, error=str(exc))
            return
        specs = {t.id: t for t in getattr(pipeline, "triggers", [])}
        item = Loaded(pid, path, pipeline, specs=specs)
        for t in specs.values():
            try:
                obj = self._make(item, t)
                obj.counters.keep_in(trigger_dir(self.workspace, pid, t.id) / "counters.json")
                state = TriggerState(trigger_dir(self.workspace, pid, t.id))
                if state.paused:
                    obj.pause()
                obj.start()
                if state.paused:
                    obj.pause()
                item.triggers[t.id] = obj
            except Exception as exc:  # one broken trigger must not keep the others from starting
                log.exception("trigger %s of %s did not start", t.id, pid)
                item.error = f"trigger `{t.id}` did not start: {exc}"
        with self._lock:
            self._pipelines[pid] = item

    def _stop_all(self, item: Loaded) -> None:
        for obj in item.triggers.values():
            try:
                obj.stop()
            except Exception:
                log.exception("stopping a trigger of %s", item.pipeline_id)

    # ------------------------------------------------------------ making triggers

    def _make(self, item: Loaded, t: Trigger):
        pid = item.pipeline_id
        folder = trigger_dir(self.workspace, pid, t.id)
        fmt = None
        if t.to is not None:
            fmt = item.pipeline.node(t.to.node).input(t.to.port).format

        def status(s: dict) -> None:
            self.on_status({"pipeline_id": pid, **s})

        def start_feed(path, origin, run_id=None):
            return self.starter(item.pipeline, t, path, origin, run_id)

        def feed(path, origin):
            return start_feed(path, origin).wait(None)

        def batch(size: int, latencies: list[float]) -> None:
            if self.on_batch is not None:
                self.on_batch(pid, t.id, size, latencies)

        if t.kind == "kafka":
            return KafkaTrigger(t, pipeline_id=pid, input_format=fmt, workdir=folder / "batches", feed=feed,
                                workspace=self.workspace, on_status=status, on_batch=batch)
        if t.kind == "folder":
            base = Path(item.pipeline.base_dir or self.workspace)
            return FolderTrigger(t, folder=(base / t.path).resolve(), feed=feed, on_status=status)
        if t.kind == "schedule":
            return ScheduleTrigger(t, state=TriggerState(folder), feed=feed, input_format=fmt,
                                   workdir=folder / "ticks", on_status=status)
        result_fmt = None
        if t.result is not None:
            result_fmt = item.pipeline.node(t.result.node).output(t.result.port).format
        return HttpTrigger(t, input_format=fmt, result_format=result_fmt, workdir=folder / "calls",
                           start_feed=start_feed, on_status=status, on_batch=batch)

    # ------------------------------------------------------------ looking up and steering

    def _find(self, pipeline_id: str, trigger_id: str):
        with self._lock:
            item = self._pipelines.get(pipeline_id)
        if item is None:
            raise NotFoundError(f"no pipeline `{pipeline_id}` with triggers in this workspace")
        obj = item.triggers.get(trigger_id)
        if obj is None:
            known = ", ".join(item.triggers) or "none"
            raise NotFoundError(f"pipeline `{pipeline_id}` has no running trigger `{trigger_id}` (triggers: {known})")
        return obj

    def http(self, pipeline_id: str, trigger_id: str) -> HttpTrigger:
        """The http trigger that answers /invoke/<pipeline_id>/<trigger_id>."""
        obj = self._find(pipeline_id, trigger_id)
        if not isinstance(obj, HttpTrigger):
            raise NotFoundError(f"trigger `{trigger_id}` of `{pipeline_id}` is not an http trigger")
        return obj

    def set_paused(self, pipeline_id: str, trigger_id: str, paused: bool) -> dict:
        """Pause or resume a trigger now and for later starts."""
        obj = self._find(pipeline_id, trigger_id)
        TriggerState(trigger_dir(self.workspace, pipeline_id, trigger_id)).update(paused=paused)
        obj.pause() if paused else obj.resume()
        return {"pipeline_id": pipeline_id, **obj.status()}

    def statuses(self, pipeline_id: str | None = None) -> list[dict]:
        """Every trigger's status (and each pipeline whose triggers could not start, with why)."""
        with self._lock:
            items = [i for i in self._pipelines.values() if pipeline_id in (None, i.pipeline_id)]
        out = []
        for item in items:
            for tid, obj in item.triggers.items():
                out.append({"pipeline_id": item.pipeline_id, **obj.status()})
            if item.error and not item.triggers:
                out.append({"pipeline_id": item.pipeline_id, "trigger_id": None, "state": "failing",
                            "error": item.error})
        return out

    def _watch_states(self) -> None:
        """Notice pause/resume written by another process (`pipeloom triggers pause`)."""
        while not self._stop.wait(self.watch_interval):
            with self._lock:
                items = list(self._pipelines.values())
            for item in items:
                for tid, obj in item.triggers.items():
                    paused = TriggerState(trigger_dir(self.workspace, item.pipeline_id, tid)).paused
                    if paused and obj.state not in ("paused", "stopped"):
                        obj.pause()
                    elif not paused and obj.state == "paused":
                        obj.resume()
