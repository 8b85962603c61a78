"""Active runs of the studio and the bridge from engine events to Socket.IO.

Log lines are buffered per node and flushed by one background thread, at
most ~20 emits a second per run; a node printing faster than a browser can
show loses lines *live only* (a marker says how many), never on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from server.engine.errors import NotFoundError, PipeloomError, UsageError
from server.engine.events import RUN_FINAL, LogEvent, NodeStatusEvent, OutputReadyEvent, RunStatusEvent

from .errors import RunActiveError

log = logging.getLogger("pipeloom.web")

TERMINAL_RUN = frozenset(RUN_FINAL)
SNAPSHOT_NODE_KEYS = ("status", "exit_code", "duration_s", "build_s", "message")


def snapshot_node(info: dict) -> dict:
    """One node of a snapshot: its status fields, and the Dask worker when one ran it."""
    return {k: info.get(k) for k in SNAPSHOT_NODE_KEYS} | ({"worker": info["worker"]} if info.get("worker") else {})
SNAPSHOT_LOG_LINES = 200
MAX_LIVE_LINE = 4000

Emit = Callable[[str, dict, list[str]], None]


def rooms_for(run_id: str, pipeline_id: str) -> list[str]:
    return [f"run:{run_id}", f"pipeline:{pipeline_id}"]


class LiveRun:
    """One run in progress: its runner, thread and the log lines not yet sent."""

    def __init__(self, pipeline_id: str, cap: int):
        self.pipeline_id = pipeline_id
        self.run_id: str = ""
        self.runner = None
        self.thread: threading.Thread | None = None
        self.cap = cap
        self.pending: dict[str, list[dict]] = {}  # insertion order = oldest first
        self.dropped: dict[str, int] = {}
        self.buf_lock = threading.Lock()
        self.emit_lock = threading.RLock()  # orders a run's events against each other and snapshots
        self.recent: dict[str, deque] = {}  # the last lines sent live, for snapshots
        self.next_flush = 0.0
        self.done = threading.Event()
        self.exclusive = True

    def add_lines(self, node_id: str, lines: list[dict], skipped: int = 0) -> None:
        """Queue lines for the next flush; past the cap the oldest queued lines give way,
        so the newest (often a step's closing summary) always reach the page. `skipped` lines
        the engine already passed over are counted in the same marker."""
        with self.buf_lock:
            buf = self.pending.get(node_id)
            if buf is None:
                buf = self.pending[node_id] = deque(maxlen=self.cap)
            if skipped:
                self.dropped[node_id] = self.dropped.get(node_id, 0) + skipped
            if len(lines) > self.cap:
                self.dropped[node_id] = self.dropped.get(node_id, 0) + len(lines) - self.cap
                lines = lines[-self.cap:]
            overflow = len(buf) + len(lines) - self.cap
            if overflow > 0:
                self.dropped[node_id] = self.dropped.get(node_id, 0) + overflow
            for line in lines:
                text = line.get("text", "")
                if isinstance(text, str) and len(text) > MAX_LIVE_LINE:
                    line = dict(line, text=text[:MAX_LIVE_LINE] + " …")
                buf.append(line)

    def take(self, node_id: str | None = None) -> list[tuple[str, list[dict]]]:
        """Remove and return pending batches (one node, or all); a marker leads a batch that lost lines."""
        with self.buf_lock:
            ids = [node_id] if node_id is not None else list(self.pending)
            out = []
            for nid in ids:
                pending = self.pending.pop(nid, None)
                dropped = self.dropped.pop(nid, 0)
                if not pending and not dropped:
                    continue
                lines = list(pending or [])
                if dropped:
                    lines.insert(0, {"stream": "meta", "ts": time.time(),
                                     "text": f"… {dropped:,} lines not shown live; open the full log"})
                out.append((nid, lines))
            return out

    def has_pending(self) -> bool:
        with self.buf_lock:
            return bool(self.pending) or bool(self.dropped)


class RunManager:
    """Starts runs in the background and forwards their events to rooms."""

    def __init__(self, workspace: Path, store, emit: Emit, *, flush_interval: float = 0.05,
                 batch_cap: int = 2000, count_limit: int | None = None,
                 load_pipeline: Callable[[str], object] | None = None,
                 autorun_enabled: Callable[[str], bool] | None = None):
        self.ws = Path(workspace).resolve()
        self.store = store
        self.emit = emit
        self.flush_interval = flush_interval
        self.batch_cap = batch_cap
        self.count_limit = count_limit
        self.load_pipeline = load_pipeline
        self.autorun_enabled = autorun_enabled or (lambda pid: False)
        self._runs: dict[str, LiveRun] = {}
        self._by_pipeline: dict[str, str] = {}
        self._queued: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._counter = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pipeloom-count")
        self.listeners: list[Callable] = []  # more engine listeners (metrics): every event but log lines
        self.previews = None  # the workspace's PageIndexes: outputs are counted by their page index

    # ------------------------------------------------------------ starting and stopping

    def start(self, pipeline, pipeline_id: str, *, only: str | None = None, from_node: str | None = None,
              force: bool = False, jobs: int | None = None, origin: dict | None = None,
              inputs: dict[str, str] | None = None, run_id: str | None = None, exclusive: bool = True) -> str:
        """Start a run in the background and return its id.

        An exclusive run (the Run button, auto-run) is refused with RunActiveError while another exclusive
        run of the pipeline goes; triggered runs are not exclusive and may overlap."""
        from server.engine.runner import RunOptions, Runner

        with self._lock:
            active = self._by_pipeline.get(pipeline_id)
            if exclusive and active:
                raise RunActiveError(f"pipeline `{pipeline_id}` is already running (run {active}); "
                                     "cancel it or wait for it to finish", active)
            live = LiveRun(pipeline_id, self.batch_cap)
            options = RunOptions(jobs=jobs, force=force, only=only, from_node=from_node,
                                 origin=origin or {"by": "studio"}, inputs=dict(inputs or {}))
            runner = Runner(pipeline, store=self.store, workspace=self.ws, options=options,
                            listener=lambda ev: self._on_event(live, ev), run_id=run_id)
            live.runner = runner
            live.run_id = runner.run_id
            live.exclusive = exclusive
            self._runs[live.run_id] = live
            if exclusive:
                self._by_pipeline[pipeline_id] = live.run_id
            self._ensure_flusher()
            live.thread = threading.Thread(target=self._run, args=(live,), name=f"pipeloom-run-{live.run_id}",
                                           daemon=True)
            live.thread.start()
        return live.run_id

    def _run(self, live: LiveRun) -> None:
        try:
            live.runner.run()
        except Exception as exc:  # the engine reports its own failures; this is the last resort
            log.exception("run %s crashed", live.run_id)
            self._flush(live)
            self.emit("run_status", {"run_id": live.run_id, "pipeline_id": live.pipeline_id,
                                     "status": "failed", "message": str(exc)},
                      rooms_for(live.run_id, live.pipeline_id))
        finally:
            self._flush(live)
            with self._lock:
                self._runs.pop(live.run_id, None)
                if self._by_pipeline.get(live.pipeline_id) == live.run_id:
                    del self._by_pipeline[live.pipeline_id]
                queued = self._queued.pop(live.pipeline_id, None)
            live.done.set()
            if queued and not self._stop.is_set():
                self._start_autorun(live.pipeline_id, queued)

    def cancel(self, run_id: str) -> bool:
        """Cancel an active run; False when it is not active here."""
        with self._lock:
            live = self._runs.get(run_id)
        if live is None:
            return False
        live.runner.cancel()
        # a node whose process was starting at that instant may escape the first kill; repeat until the run ends
        threading.Thread(target=self._keep_cancelling, args=(live,), daemon=True,
                         name=f"pipeloom-cancel-{run_id}").start()
        return True

    @staticmethod
    def _keep_cancelling(live: LiveRun) -> None:
        for _ in range(120):
            if live.done.wait(0.5):
                return
            live.runner.cancel()

    def active_run(self, pipeline_id: str) -> str | None:
        with self._lock:
            return self._by_pipeline.get(pipeline_id)

    def is_active(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._runs

    def live_snapshot(self, run_id: str) -> dict | None:
        """The runner's own snapshot of an active run, or None."""
        with self._lock:
            live = self._runs.get(run_id)
        return live.runner.snapshot() if live is not None else None

    def wait(self, run_id: str, timeout: float | None = None) -> bool:
        with self._lock:
            live = self._runs.get(run_id)
        return True if live is None else live.done.wait(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every active run and wait for them to end."""
        self._stop.set()
        with self._lock:
            lives = list(self._runs.values())
            self._queued.clear()
        for live in lives:
            try:
                live.runner.cancel()
            except Exception:
                log.exception("cancelling run %s", live.run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            going = [live for live in lives if not live.done.is_set()]
            if not going:
                break
            going[0].done.wait(0.5)
            for live in going:
                live.runner.cancel()
        self._counter.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ autorun

    def request_autorun(self, pipeline_id: str, node_ids: set[str]) -> str | None:
        """Re-run from changed nodes; while a run is going, queue one re-run for after it."""
        with self._lock:
            if self._stop.is_set():
                return None
            if pipeline_id in self._by_pipeline:
                self._queued.setdefault(pipeline_id, set()).update(node_ids)
                return None
        return self._start_autorun(pipeline_id, set(node_ids))

    def _start_autorun(self, pipeline_id: str, nodes: set[str]) -> str | None:
        if not self.autorun_enabled(pipeline_id) or self.load_pipeline is None:
            return None
        try:
            pipeline = self.load_pipeline(pipeline_id)
        except PipeloomError as exc:
            log.warning("auto-run of %s skipped: %s", pipeline_id, exc)
            return None
        present = [n for n in nodes if pipeline.node(n) is not None]
        if not present:
            return None
        from_node = None
        for cand in present:
            if set(present) <= pipeline.downstream_of(cand):
                from_node = cand  # one changed node leads to all the others
                break
        try:
            # without a single start node, a plain run re-runs exactly the changed nodes (cache misses)
            try:
                return self.start(pipeline, pipeline_id, from_node=from_node, origin={"by": "autorun"})
            except UsageError:
                if from_node is None:
                    raise
                # upstream never ran: a plain run builds it and still re-runs only what changed
                return self.start(pipeline, pipeline_id, origin={"by": "autorun"})
        except RunActiveError:
            with self._lock:
                self._queued.setdefault(pipeline_id, set()).update(present)
            return None
        except PipeloomError as exc:
            log.warning("auto-run of %s failed to start: %s", pipeline_id, exc)
            return None

    # ------------------------------------------------------------ events

    def _on_event(self, live: LiveRun, ev) -> None:
        rooms = rooms_for(live.run_id or getattr(ev, "run_id", ""), live.pipeline_id)
        if isinstance(ev, LogEvent):
            live.add_lines(ev.node_id, ev.lines, ev.skipped)
            return
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:
                log.exception("a run listener failed")
        with live.emit_lock:
            if isinstance(ev, NodeStatusEvent):
                self._flush(live, ev.node_id)
                self.emit("node_status", ev.to_dict(), rooms)
            elif isinstance(ev, OutputReadyEvent):
                payload = {"run_id": ev.run_id, "node_id": ev.node_id, "port": ev.port, "format": ev.format,
                           "size": ev.size, "records": ev.records}
                self.emit("output_ready", payload, rooms)
                if ev.records is None and ev.path and (self.count_limit is None or ev.size <= self.count_limit):
                    self._counter.submit(self._count, payload, ev.path, rooms)
            elif isinstance(ev, RunStatusEvent):
                if ev.status in TERMINAL_RUN:
                    self._flush(live)
                payload = ev.to_dict()
                payload["pipeline_id"] = live.pipeline_id
                self.emit("run_status", payload, rooms)
            else:
                self.emit(ev.kind, ev.to_dict(), rooms)

    def _count(self, payload: dict, path: str, rooms: list[str]) -> None:
        from server.engine.data.pageindex import INDEXED_FORMATS
        from server.engine.data.formats import count_records

        if self.previews is not None and payload["format"] in INDEXED_FORMATS:
            try:
                art = self.store.get_artifact(payload["run_id"], payload["node_id"], payload["port"])
            except PipeloomError:
                art = {}
            self.index_output(payload["run_id"], payload["node_id"], payload["port"], Path(path), art,
                              payload["format"])
            return
        try:
            n = count_records(path, payload["format"], max_bytes=self.count_limit)
        except Exception as exc:  # a malformed output is the node's problem, shown in its preview
            log.info("cannot count records of %s: %s", path, exc)
            return
        if n is None:
            return
        try:
            self.store.set_records(payload["run_id"], payload["node_id"], payload["port"], n)
        except PipeloomError as exc:
            log.info("cannot store the record count of %s: %s", path, exc)
        self.emit("output_ready", dict(payload, records=n), rooms)

    def index_output(self, run_id: str, node_id: str, port: str, path: Path, art: dict, fmt: str):
        """The page index of one output (finished, or its build in progress); once its exact total is
        known, it is stored and sent as a second `output_ready` with `records` filled in."""
        from server.engine.data.pageindex import index_key

        key = index_key(path, art.get("sha256"), art.get("size"), art.get("mtime_ns"))
        announce = art.get("records") is None
        rooms = None

        def built(idx) -> None:
            if not announce or idx.total is None:
                return
            try:
                self.store.set_records(run_id, node_id, port, idx.total)
            except PipeloomError as exc:
                log.info("cannot store the record count of %s: %s", path, exc)
            pipeline_id = ""
            try:
                pipeline_id = self.store.get_run(run_id).get("pipeline_id") or ""
            except PipeloomError:
                pass
            self.emit("output_ready", {"run_id": run_id, "node_id": node_id, "port": port, "format": fmt,
                                       "size": path.stat().st_size, "records": idx.total},
                      rooms or rooms_for(run_id, pipeline_id))

        return self.previews.get(path, fmt, key, when_built=built)

    def known_records(self, art: dict) -> int | None:
        """The exact record count of an output whose page index is already on disk, without building one."""
        from server.engine.data.pageindex import INDEXED_FORMATS, index_key, read_index

        if self.previews is None or art.get("format") not in INDEXED_FORMATS or not art.get("path"):
            return None
        try:
            path = Path(art["path"])
            key = index_key(path, art.get("sha256"), art.get("size"), art.get("mtime_ns"))
            idx = read_index(self.previews.root / f"{key}.{art['format']}.idx", path, art["format"])
        except OSError:
            return None
        return idx.total if idx is not None else None

    # ------------------------------------------------------------ log batching

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_loop, name="pipeloom-log-flush", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            with self._lock:
                lives = list(self._runs.values())
            now = time.monotonic()
            for live in lives:
                if now >= live.next_flush and live.has_pending():
                    try:
                        self._flush(live)
                    except Exception:
                        log.exception("flushing logs of run %s", live.run_id)

    def _flush(self, live: LiveRun, node_id: str | None = None) -> None:
        with live.emit_lock:
            batches = live.take(node_id)
            if not batches:
                return
            rooms = rooms_for(live.run_id, live.pipeline_id)
            for nid, lines in batches:
                live.recent.setdefault(nid, deque(maxlen=SNAPSHOT_LOG_LINES)).extend(lines)
                self.emit("log", {"run_id": live.run_id, "node_id": nid, "lines": lines}, rooms)
            # several nodes flushed at once push the next timed flush back, keeping ~20 emits/s per run
            live.next_flush = time.monotonic() + self.flush_interval * len(batches)

    # ------------------------------------------------------------ snapshots

    def snapshot(self, *, pipeline_id: str | None = None, run_id: str | None = None,
                 send: Callable[[dict], None] | None = None) -> dict:
        """Statuses and the last log lines of the active (or latest) run.

        With `send`, the snapshot is handed over while the run's events are
        held back, so a client sees it before any event that follows it."""
        live = None
        with self._lock:
            if run_id is None and pipeline_id is not None:
                run_id = self._by_pipeline.get(pipeline_id)
            if run_id is not None:
                live = self._runs.get(run_id)
        if live is None:
            snap = self._stored_snapshot(pipeline_id, run_id)
            if send is not None:
                send(snap)
            return snap
        with live.emit_lock:
            run = live.runner.snapshot()
            nodes = {nid: snapshot_node(info)
                     for nid, info in (run.get("nodes") or {}).items()}
            self._add_outputs(live.run_id, nodes)
            snap = {"run_id": live.run_id, "pipeline_id": live.pipeline_id, "status": run.get("status"),
                    "active": True, "nodes": nodes,
                    "logs": {nid: list(lines) for nid, lines in live.recent.items()}}
            if send is not None:
                send(snap)
            return snap

    def _stored_snapshot(self, pipeline_id: str | None, run_id: str | None) -> dict:
        if run_id is None and pipeline_id is not None:
            runs = self.store.list_runs(pipeline_id=pipeline_id, limit=1)
            run_id = runs[0]["run_id"] if runs else None
        if run_id is None:
            return {"pipeline_id": pipeline_id, "run_id": None, "status": None, "active": False,
                    "nodes": {}, "logs": {}}
        stored = self.store.get_run(run_id)
        nodes = {nid: snapshot_node(info)
                 for nid, info in (stored.get("nodes") or {}).items()}
        self._add_outputs(run_id, nodes, stored)
        return {"pipeline_id": stored.get("pipeline_id"), "run_id": run_id, "status": stored.get("status"),
                "active": False, "nodes": nodes, "logs": {nid: self.tail_log(run_id, nid) for nid in nodes}}

    def _add_outputs(self, run_id: str, nodes: dict, stored: dict | None = None) -> None:
        """Attach {port: {format, size, records}} of finished nodes (edges show record counts), and
        `source_run` of cached ones."""
        if stored is None:
            try:
                stored = self.store.get_run(run_id)
            except NotFoundError:
                return
        for nid, info in (stored.get("nodes") or {}).items():
            if nid not in nodes:
                continue
            arts = info.get("artifacts") or {}
            if arts:
                nodes[nid]["outputs"] = {port: {"format": a.get("format"), "size": a.get("size"),
                                                "records": a.get("records") if a.get("records") is not None
                                                else self.known_records(a)} for port, a in arts.items()}
            if info.get("status") == "cached" and info.get("source_run"):
                nodes[nid]["source_run"] = info["source_run"]

    def tail_log(self, run_id: str, node_id: str, lines: int = SNAPSHOT_LOG_LINES) -> list[dict]:
        """The last `lines` lines of a node's log file, read from its end."""
        from server.engine.logs import tail_log

        try:
            path = Path(self.store.log_path(run_id, node_id))
        except PipeloomError:
            return []
        return tail_log(path, max_lines=lines)
