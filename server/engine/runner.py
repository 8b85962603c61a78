"""Runs a pipeline: one subprocess per node, in dependency order, with a cache.

The runner is the run's driver: it plans (order, --only/--from, reused
upstream), looks up the cache, hands each node that must run to an executor
(run/executors.py: this machine's thread pool, or a Dask cluster) as a
NodeTask, and records what comes back in the journal and as events. Running
one node (staging inputs, converting formats where an edge joins two, its
program in its own process group, a capped log, outputs published only after
a clean exit with every declared file present) is run/execute.py.
"""

from __future__ import annotations

import graphlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .applog import logger
from .errors import PipeloomError, UsageError, did_you_mean
from .events import (DONE_OK, Event, LogEvent, NodeStatusEvent, OutputReadyEvent, RunStatusEvent)
from .hashing import file_sha256, json_sha256
from .logs import LiveLog, LogWriter, NodeOutput
from .model import Node, Pipeline
from .paths import Layout, pipeline_id_for
from .run.execute import RECORD_COUNT_LIMIT, describe_error, link_or_copy
from .run.executors import ExecutorChoice, default_choice, make_executor
from .run.task import Cancel, InputSpec, NodeTask
from .runtimes import get_runtime
from .store.cache import CacheFile
from .store.journal import RunJournal, intact, iso, node_record


CACHE_VERSION = 1


@dataclass
class RunOptions:
    jobs: int | None = None
    force: bool = False
    only: str | None = None
    from_node: str | None = None
    emit_logs: bool = True
    log_cap: int | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # "node.port" -> a file that feeds that entry input
    origin: dict = field(default_factory=dict)  # what started the run: {"by": "cli"|"studio"|"trigger", ...}
    executor: ExecutorChoice | None = None  # where nodes run; None: the process default, then the pipeline's

    def to_dict(self) -> dict:
        d = {"jobs": self.jobs, "force": self.force, "only": self.only, "from": self.from_node}
        if self.origin:
            d["origin"] = self.origin
        if self.inputs:
            d["inputs"] = dict(self.inputs)
        if self.executor is not None and self.executor.kind == "dask":
            d["executor"] = {"kind": "dask", "scheduler": self.executor.scheduler}
        return d


@dataclass
class NodeState:
    node_id: str
    status: str = "pending"
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    message: str | None = None
    attempts: int = 0
    cache_key: str | None = None
    source_run: str | None = None
    artifacts: dict[str, dict] = field(default_factory=dict)
    worker: str | None = None  # the Dask worker that ran it
    build_s: float | None = None  # time spent building the program, when the runtime had to build it

    @property
    def duration_s(self) -> float | None:
        """The step's own time: its build (`build_s`) is not part of it."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round(max(0.0, self.finished_at - self.started_at - (self.build_s or 0.0)), 3)

    def to_dict(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "duration_s": self.duration_s,
                "build_s": self.build_s,
                "message": self.message, "attempts": self.attempts, "source_run": self.source_run,
                "outputs": {p: a["path"] for p, a in self.artifacts.items()},
                "records": {p: a.get("records") for p, a in self.artifacts.items()},
                **({"worker": self.worker} if self.worker else {})}


@dataclass
class RunResult:
    run_id: str
    pipeline_id: str
    status: str
    started_at: float | None
    finished_at: float | None
    nodes: dict[str, NodeState]
    order: list[str]

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def first_failed(self) -> str | None:
        return next((n for n in self.order if self.nodes[n].status in ("failed", "timed_out", "cancelled")), None)

    def to_dict(self) -> dict:
        dur = round(self.finished_at - self.started_at, 3) if self.started_at and self.finished_at else None
        return {"run_id": self.run_id, "pipeline_id": self.pipeline_id, "status": self.status,
                "started_at": iso(self.started_at), "finished_at": iso(self.finished_at), "duration_s": dur,
                "nodes": {n: self.nodes[n].to_dict() for n in self.order}}


def new_run_id() -> str:
    """Sortable and readable: 20261126-181530-3fa2."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def topo_order(pipeline: Pipeline, subset: set[str] | None = None) -> list[str]:
    ids = [n.id for n in pipeline.nodes if subset is None or n.id in subset]
    graph = {nid: {p for p in pipeline.predecessors(nid) if p in ids} for nid in ids}
    ts = graphlib.TopologicalSorter(graph)
    return list(ts.static_order())


class Runner:
    """One run of one pipeline. Construct, then `run()` (blocking) or `start()` (thread)."""

    def __init__(self, pipeline: Pipeline, *, store=None, workspace: str | os.PathLike,
                 options: RunOptions | None = None, listener=None, run_id: str | None = None):
        self.pipeline = pipeline
        self._feeds = {(e.dst_node, e.dst_port): e for e in pipeline.edges}  # input -> the edge feeding it
        self.store = store
        self.options = options or RunOptions()
        self.layout = Layout(workspace)
        self.listener = listener or (lambda e: None)
        self.pipeline_id = (pipeline_id_for(self.layout.workspace, pipeline.path) if pipeline.path
                            else pipeline.name)
        self.run_id = run_id or new_run_id()
        self._cancel = Cancel()
        self._unwritten: list = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.status = "pending"
        self.started_at: float | None = None
        self.finished_at: float | None = None

        opts = self.options
        if opts.only and opts.from_node:
            raise UsageError("use either --only or --from, not both")
        for nid in (opts.only, opts.from_node):
            if nid and pipeline.node(nid) is None:
                raise UsageError(f"no node called `{nid}`{did_you_mean(nid, pipeline.node_ids)} "
                                 f"(nodes: {', '.join(pipeline.node_ids)})")
        if opts.only:
            self.execute = {opts.only}
        elif opts.from_node:
            self.execute = pipeline.downstream_of(opts.from_node)
        else:
            self.execute = set(pipeline.node_ids)
        needed = set(self.execute)
        for nid in self.execute:
            needed |= pipeline.upstream_of(nid)
        self.participants = needed
        self.order = topo_order(pipeline, needed)
        self.reuse = needed - self.execute
        self.states = {nid: NodeState(nid) for nid in self.order}
        # The run's journal is its record; `store` (the database index, when there is one) follows the journals.
        self._cache = CacheFile(self.layout, self.pipeline_id)
        self._cache_data = self._cache.load() if not opts.force or self.reuse else None
        self._cache_index = self._cache.cache_index(self._cache_data) if not opts.force else {}
        self._last_batches = self._find_last_batches()
        self._resolve_reused()
        self._check_entry_inputs()
        choice = (opts.executor.resolved(pipeline.executor) if opts.executor
                  else default_choice().resolved(pipeline.executor, pipeline_first=True))
        opts.executor = choice
        self.executor = make_executor(choice, run_id=self.run_id, workspace=self.layout.workspace,
                                      groups=self.layout.run_dir(self.run_id) / "_groups")
        self.journal = RunJournal(self.layout, self.run_id)
        self.journal.create(self.pipeline_id, pipeline.name, str(pipeline.path or ""),
                            {**opts.to_dict(), "workspace": str(self.layout.workspace)},
                            document=pipeline.to_document())

    # ------------------------------------------------------------ public

    def run(self) -> RunResult:
        """Run to the end (or until cancelled) and return the result."""
        self.started_at = time.time()
        self.status = "running"
        self.journal.update(status="running", started_at=self.started_at)
        self._emit(RunStatusEvent(self.run_id, self.pipeline_id, "running", nodes=list(self.order),
                                  origin=self.options.origin))
        for nid in self.order:
            self._emit_node(nid)
        try:
            self._schedule()
        finally:
            self.executor.close()
            self._flush_records()
            self.finished_at = time.time()
            if self._cancel.is_set():
                self.status = "cancelled"
            elif all(self.states[n].status in DONE_OK for n in self.order):
                self.status = "succeeded"
            else:
                self.status = "failed"
            doc = self.journal.finish(status=self.status, finished_at=self.finished_at)
            self._cache.merge(doc)
            result = self.result()
            self._emit(RunStatusEvent(self.run_id, self.pipeline_id, self.status, origin=self.options.origin))
        return result

    def start(self) -> threading.Thread:
        """Run in a background thread."""
        self._thread = threading.Thread(target=self._run_quietly, name=f"run-{self.run_id}", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    def cancel(self) -> None:
        """Stop the run: kill every running process group; those nodes become `cancelled`."""
        self._cancel.set()
        self.executor.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def result(self) -> RunResult:
        return RunResult(self.run_id, self.pipeline_id, self.status, self.started_at, self.finished_at,
                         self.states, self.order)

    def snapshot(self) -> dict:
        return {"run_id": self.run_id, "pipeline_id": self.pipeline_id, "status": self.status,
                "nodes": {n: {"status": s.status, "exit_code": s.exit_code, "duration_s": s.duration_s,
                              "build_s": s.build_s, "message": s.message,
                              **({"worker": s.worker} if s.worker else {})}
                          for n, s in self.states.items()}}

    # ------------------------------------------------------------ planning

    def _resolve_reused(self) -> None:
        """Upstream nodes outside --only/--from come from the cache, else their latest outputs."""
        for nid in self.order:
            if nid not in self.reuse:
                continue
            node = self.pipeline.node(nid)
            st = self.states[nid]
            arts = None
            try:
                key = self._cache_key(node)
                st.cache_key = key
                arts = self._lookup_cache(nid, key)
            except (OSError, PipeloomError):
                arts = None
            if arts is None:
                arts = self._cache.latest_outputs(nid, self._cache_data)
                if arts is not None:
                    st.message = "outputs from an earlier run (its inputs or code have changed since)"
            if arts is None:
                what = (f"running only `{self.options.only}`" if self.options.only
                        else f"starting from `{self.options.from_node}`")
                raise UsageError(f"{what} needs the outputs of `{nid}`, which has never run successfully; "
                                 f"run the whole pipeline first, or start from `{nid}`")
            st.artifacts = {a["port"]: a for a in arts}

    def _lookup_cache(self, nid: str, key: str) -> list[dict] | None:
        for arts in self._cache_index.get((nid, key), []):
            if intact(arts):
                return arts
        return None

    def _input_hashes(self, node: Node) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for p in node.inputs:
            edge = self._feeds.get((node.id, p.name))
            if edge is not None:
                art = self.states[edge.src_node].artifacts.get(edge.src_port)
                if art is None:
                    raise PipeloomError(f"node `{node.id}`, input `{p.name}`: upstream `{edge.src_node}` "
                                        f"produced no output `{edge.src_port}`")
                out[p.name] = {"sha256": art["sha256"], "format": art["format"], "file": p.file, "to": p.format}
            else:
                src = self._entry_source(node, p.name)
                if src is not None:
                    out[p.name] = {"sha256": file_sha256(src), "file": p.file, "to": p.format}
        return out

    def _entry_source(self, node: Node, port: str) -> Path | None:
        """The file feeding an input no edge feeds: a trigger's data for this run, else the sample `path`,
        else the last batch a trigger fed it."""
        fed = self.options.inputs.get(f"{node.id}.{port}")
        if fed:
            return Path(fed)
        p = node.input(port)
        if p is not None and p.path:
            return Path(self.pipeline.base_dir or ".") / p.path
        last = self._last_batches.get((node.id, port))
        return last[1] if last else None

    def _find_last_batches(self) -> dict[tuple[str, str], tuple[str, Path]]:
        """(node, port) -> (trigger id, the newest batch file it fed), for inputs with no data of this run's own."""
        found: dict[tuple[str, str], tuple[str, Path]] = {}
        for t in self.pipeline.triggers:
            if t.to is None or f"{t.to}" in self.options.inputs:
                continue
            for f in self.layout.trigger_dir(self.pipeline_id, t.id).glob("last.*"):
                known = found.get((t.to.node, t.to.port))
                if known is None or f.stat().st_mtime > known[1].stat().st_mtime:
                    found[(t.to.node, t.to.port)] = (t.id, f)
        return found

    def _check_entry_inputs(self) -> None:
        """Every input a node to run reads has data; a trigger-only input falls back to its last batch."""
        for nid in self.order:
            if nid not in self.execute:
                continue
            for p in self.pipeline.node(nid).inputs:
                if (nid, p.name) in self._feeds or p.path or f"{nid}.{p.name}" in self.options.inputs:
                    continue
                last = self._last_batches.get((nid, p.name))
                if last is not None:
                    self.states[nid].message = f"input `{p.name}`: the last batch trigger `{last[0]}` fed"
                    continue
                by = [f"`{t.id}`" for t in self.pipeline.triggers if t.to and (t.to.node, t.to.port) == (nid, p.name)]
                raise UsageError(f"node `{nid}`, input `{p.name}` has no data for a run by hand: it is fed by "
                                 f"trigger {' and '.join(by) or 'nothing'}, which has sent nothing yet. "
                                 f"Send it an event first, or give the input a `path` to a sample file")

    def _cache_key(self, node: Node) -> str:
        rt = get_runtime(node.runtime)
        return json_sha256({
            "v": CACHE_VERSION, "runtime": node.runtime, "code": rt.fingerprint(node, self.pipeline),
            "params": node.params, "command": node.command, "env": node.env,
            "inputs": self._input_hashes(node), "outputs": [p.to_dict() for p in node.outputs],
        })

    # ------------------------------------------------------------ scheduling

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception:  # the web layer has no one to raise to; the record says failed
            logger.exception("run %s crashed", self.run_id)

    def _schedule(self) -> None:
        graph = {nid: {p for p in self.pipeline.predecessors(nid) if p in self.participants} for nid in self.order}
        ts = graphlib.TopologicalSorter(graph)
        ts.prepare()
        jobs = self.executor.slots(self.options.jobs)
        futures: dict = {}
        pool = None  # made when two nodes can run at once: a chain never needs one
        try:
            while ts.is_active():
                progressed = False
                ready = []
                for nid in ts.get_ready():
                    progressed = True
                    preds = graph[nid]
                    if nid in self.reuse:
                        self._publish_reused(nid)
                        ts.done(nid)
                    elif self._cancel.is_set():
                        self._finish(nid, "skipped", message="not started: the run was cancelled")
                        ts.done(nid)
                    elif any(self.states[p].status not in DONE_OK for p in preds):
                        bad = [p for p in sorted(preds) if self.states[p].status not in DONE_OK]
                        self._finish(nid, "skipped", message=f"not run: upstream `{bad[0]}` {self.states[bad[0]].status}")
                        ts.done(nid)
                    elif self._settled_from_cache(nid):  # here, not in the pool: a cache hit costs no hand-off
                        ts.done(nid)
                    else:
                        ready.append(nid)
                if len(ready) == 1 and not futures and self._may_run_here():
                    self._execute_here(ready[0])  # the only node that can run: no hand-off to a pool thread and back
                    ts.done(ready[0])
                    continue
                if ready and pool is None:
                    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

                    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=f"node-{self.run_id}")
                for nid in ready:
                    futures[pool.submit(self._execute, nid)] = nid
                if not futures:
                    if not progressed:
                        break
                    continue
                try:  # futures are only ever made once the pool is, with `wait` imported beside it
                    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    self.cancel()
                    continue
                for f in done:
                    nid = futures.pop(f)
                    exc = f.exception()
                    if exc is not None and self.states[nid].status not in ("failed", "timed_out", "cancelled"):
                        logger.error("node %s of run %s crashed", nid, self.run_id, exc_info=exc)
                        self._finish(nid, "failed", message=f"internal error: {describe_error(exc)}")
                    ts.done(nid)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    @staticmethod
    def _may_run_here() -> bool:
        """Whether a node may run in the thread driving the run: not in a main thread where Ctrl-C raises
        KeyboardInterrupt, which must find the scheduler waiting, not a node half-started (the CLI cancels the
        run on SIGINT instead)."""
        return (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler)

    def _execute_here(self, nid: str) -> None:
        try:
            self._execute(nid)
        except Exception as exc:  # as for a node run in the pool: it fails, saying what happened
            if self.states[nid].status not in ("failed", "timed_out", "cancelled"):
                logger.error("node %s of run %s crashed", nid, self.run_id, exc_info=exc)
                self._finish(nid, "failed", message=f"internal error: {describe_error(exc)}")

    # ------------------------------------------------------------ one node

    def _settled_from_cache(self, nid: str) -> bool:
        """Compute the node's cache key (once per run) and finish it from the cache when it may be; whether the
        node is done (cached, or failed because its key could not be computed)."""
        node = self.pipeline.node(nid)
        st = self.states[nid]
        try:
            key = self._cache_key(node)
        except (OSError, PipeloomError) as exc:
            st.started_at = st.finished_at = time.time()
            self._finish(nid, "failed", message=describe_error(exc))
            return True
        st.cache_key = key
        use_cache = not self.options.force and not self.options.only and not self.options.from_node
        if use_cache and may_reuse(node):
            arts = self._lookup_cache(nid, key)
            if arts is not None:
                self._publish_cached(nid, arts)
                return True
        return False

    def _execute(self, nid: str) -> None:
        node = self.pipeline.node(nid)
        st = self.states[nid]
        log = LogWriter(self.layout.log_path(self.run_id, nid), cap=self.options.log_cap)
        try:
            outcome = self.executor.run(self._task(node), self._cancel, _DriverLog(self, nid, log))
            st.status, st.exit_code, st.message = outcome.status, outcome.exit_code, outcome.message
            st.started_at, st.finished_at = outcome.started_at, outcome.finished_at
            st.attempts, st.artifacts, st.worker = outcome.attempts, outcome.artifacts, outcome.worker
            st.build_s = outcome.build_s
            self._finish(nid, st.status, log=log)
        finally:
            log.close()

    def _task(self, node: Node) -> NodeTask:
        """What the executor needs to run `node`: its inputs resolved to files, its working directory."""
        inputs = []
        for p in node.inputs:
            edge = self._feeds.get((node.id, p.name))
            if edge is not None:
                art = self.states[edge.src_node].artifacts.get(edge.src_port) or {}
                inputs.append(InputSpec(p.name, p.file, p.format, art.get("path"), art.get("format"), edge,
                                        art.get("sha256"), art.get("size")))
            else:
                src = self._entry_source(node, p.name)
                inputs.append(InputSpec(p.name, p.file, p.format, str(src) if src is not None else None))
        slim = Pipeline(self.pipeline.name, [node], [], path=self.pipeline.path, base_dir=self.pipeline.base_dir)
        return NodeTask(self.run_id, node, slim, str(self.layout.node_dir(self.run_id, node.id)), inputs,
                        log_cap=self.options.log_cap)

    def _publish_cached(self, nid: str, arts: list[dict]) -> None:
        """Reuse earlier outputs: link them into this run's folder; no process starts."""
        st = self.states[nid]
        workdir = self.layout.node_dir(self.run_id, nid)
        workdir.mkdir(parents=True, exist_ok=True)
        node = self.pipeline.node(nid)
        fresh = {}
        for a in arts:
            port = node.output(a["port"])
            if port is None:
                continue
            dst = workdir / port.file
            link_or_copy(Path(a["path"]), dst)
            s = dst.stat()
            fresh[a["port"]] = {**a, "path": str(dst), "mtime_ns": s.st_mtime_ns, "size": s.st_size}
        st.artifacts = fresh
        self._finish_cached(nid)

    def _publish_reused(self, nid: str) -> None:
        self._finish_cached(nid, self.states[nid].message)

    def _finish_cached(self, nid: str, message: str | None = None) -> None:
        """Finish a node whose outputs came from an earlier run, naming that run."""
        st = self.states[nid]
        st.source_run = next((a.get("source_run") for a in st.artifacts.values() if a.get("source_run")), None)
        st.started_at = st.finished_at = time.time()
        since = f"run {st.source_run}" if st.source_run else "an earlier run"
        self._finish(nid, "cached", message=message or f"unchanged since {since}; no program ran")

    def _finish(self, nid: str, status: str, *, message: str | None = None, log: LogWriter | None = None) -> None:
        st = self.states[nid]
        st.status = status
        if message:
            st.message = message
        if st.finished_at is None:
            st.finished_at = time.time()
        if log is not None:
            if st.message and status not in DONE_OK:
                log.meta(f"[pipeloom] {status}: {st.message}")
            log.close()
        arts = list(st.artifacts.values()) if status in DONE_OK else []
        if status not in DONE_OK:
            st.artifacts = {}
        record = node_record(self.run_id, nid, status=status, started_at=st.started_at,
                             finished_at=st.finished_at, exit_code=st.exit_code, cache_key=st.cache_key,
                             attempts=st.attempts, message=st.message, log_path=str(log.path) if log else None,
                             workdir=str(self.layout.node_dir(self.run_id, nid)), artifacts=arts,
                             source_run=st.source_run if status == "cached" else None, worker=st.worker,
                             build_s=st.build_s)
        with self._lock:
            self._unwritten.append(record)
            batch = [] if status == "cached" else self._unwritten
            if batch:
                self._unwritten = []
        # Cached nodes' rows wait for the next real result, the next node to start, or the end of
        # the run, and go in one transaction: a no-change re-run makes one write, not one per node.
        if batch:
            self.journal.add_nodes(batch)
        self._emit_node(nid)
        for a in arts:
            self._emit(OutputReadyEvent(self.run_id, nid, a["port"], a["format"], a["size"], a["path"],
                                        a.get("records")))
        if any(a["size"] > RECORD_COUNT_LIMIT for a in arts):  # indexed in the background: previews, exact totals
            from .data.pageindex import index_published

            index_published(self.layout.state / "index", arts)

    def _flush_records(self) -> None:
        with self._lock:
            batch, self._unwritten = self._unwritten, []
        self.journal.add_nodes(batch)

    def _emit_node(self, nid: str, attempt: int | None = None) -> None:
        st = self.states[nid]
        self._emit(NodeStatusEvent(self.run_id, nid, st.status, st.exit_code, st.duration_s, st.message,
                                   attempt or max(st.attempts, 1), st.worker, build_s=st.build_s))

    def _emit(self, event: Event) -> None:
        try:
            self.listener(event)
        except Exception:
            logger.exception("listener failed on %s", event.kind)


def may_reuse(node: Node) -> bool:
    """Whether a node's `cache` setting lets an unchanged node be reused: `auto` reuses only nodes with
    outputs, since a node without any is run for its side effect (a webhook, an upload)."""
    if node.cache == "auto":
        return bool(node.outputs)
    return node.cache == "always"


class _DriverLog:
    """A node's reports, as the runner takes them: a new attempt becomes a `running` status, output goes to
    the node's log file and (when the run emits logs) to live LogEvents."""

    def __init__(self, runner: Runner, nid: str, log: LogWriter):
        self.runner = runner
        self.nid = nid
        self.log = log

    def attempt(self, attempt: int, started_at: float, worker: str | None = None) -> None:
        st = self.runner.states[self.nid]
        st.attempts, st.started_at, st.worker = attempt, started_at, worker
        st.finished_at = st.exit_code = st.message = st.build_s = None
        st.status = "running"
        self.runner._flush_records()
        self.runner._emit_node(self.nid, attempt=attempt)

    def meta(self, text: str) -> None:
        self.log.meta(text)

    def output(self) -> NodeOutput:
        live = None
        if self.runner.options.emit_logs:
            run_id, nid, emit = self.runner.run_id, self.nid, self.runner._emit
            live = LiveLog(lambda lines, skipped: emit(LogEvent(run_id, nid, lines, skipped)))
        return NodeOutput(self.log, live)
