"""Running nodes on a Dask cluster: each ready node becomes one Dask task, keyed `<run>/<node>/<n>`.

The runner still decides what runs when; Dask only decides where. On the worker, `run_on_worker` runs the
same `execute_node` as a local run, in a scratch folder of the worker's own, and:

- inputs arrive as bytes (small) or by path in the shared folder (large), their sha256 checked on arrival;
  outputs go back the same way and are checked again here before they count;
- the program's output goes back line-batched (every ~50 ms) as Dask log events on the topic
  `pipeloom-<run>`, and is written here to the node's log file and live LogEvents, as for a local run;
- a per-node `distributed.Event` is watched by a thread in the task: setting it (cancel) stops the
  process group. The same thread stops it when the scheduler releases the task, which happens when this
  client goes away (it died, or lost the cluster), so a dead Pipeloom leaves nothing running;
- the worker's run guard (process.RunGuard) stops the node's processes if the worker itself dies; the
  scheduler then runs the task again on another worker.

The Pipeloom package must be importable on the scheduler and every worker (it unpickles the tasks).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from ..errors import UsageError
from ..hashing import file_sha256
from ..model import parse_size
from ..process import RunGuard
from .execute import describe_error, execute_node
from .executors import ExecutorChoice
from .task import Cancel, NodeOutcome, NodeTask

logger = logging.getLogger("pipeloom")

INLINE_LIMIT = 8 * 1024 * 1024  # artifacts up to this size travel as bytes through the scheduler
INLINE_ENV = "PIPELOOM_DASK_INLINE_LIMIT"
SHARED_ENV = "PIPELOOM_DASK_SHARED"
CONNECT_TIMEOUT = 10.0
LOG_INTERVAL = 0.05
END_WAIT = 5.0  # seconds to wait, after a task's result, for the last of its log events


def dask_resources(node) -> dict[str, float]:
    """A node's `resources` and `tags` as Dask worker resources: memory in bytes, each tag as `tag:<name>`."""
    out: dict[str, float] = {}
    for k, v in (node.resources or {}).items():
        out[k] = float(parse_size(v) if k == "memory" else v)
    for t in node.tags or ():
        out[f"tag:{t}"] = 1.0
    return out


def describe_resources(res: dict[str, float]) -> str:
    parts = []
    for k, v in sorted(res.items()):
        if k.startswith("tag:"):
            parts.append(f"tag `{k[4:]}`")
        elif k == "memory":
            parts.append(f"memory {v / 2 ** 30:.3g} GiB")
        else:
            parts.append(f"{k}={v:g}")
    return ", ".join(parts) or "nothing"


def check_plain_tcp(address: str) -> None:
    """Plain tcp:// is for this machine only: across machines the cluster must use TLS."""
    if not address.startswith("tcp://"):
        return
    host = urlparse(address).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise UsageError(f"refusing to send work to {address} over plain tcp://: anyone on the network could read "
                         "the data or run code on the workers. Use a tls:// address with certificates "
                         "(see docs/pipeline-format.md, \"Running on a Dask cluster\"), or a cluster on 127.0.0.1")


def connect(address: str | None, *, timeout: float = CONNECT_TIMEOUT):
    """A Dask client for `address` (tcp://, tls:// or a scheduler file); UsageError, naming it, if it fails."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("the dask executor needs Dask: pip install 'pipeloom[dask]'") from None
    if not address:
        raise UsageError("the dask executor needs a scheduler: pass --scheduler tcp://HOST:PORT or set "
                         "PIPELOOM_DASK_SCHEDULER (start one here with `pipeloom cluster start --workers 2`)")
    is_file = "://" not in address
    if not is_file:
        check_plain_tcp(address)
        _probe(address)
    try:
        if is_file:
            client = Client(scheduler_file=address, timeout=timeout, set_as_default=False)
        else:
            return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address} ({describe_error(exc)}); is it running? "
                         "Start one here with `pipeloom cluster start --workers 2`") from None
    try:
        check_plain_tcp(client.scheduler.address)  # the file may name another machine
    except UsageError:
        client.close()
        raise
    return client


def _probe(address: str) -> None:
    """A refused connection fails at once (Dask's client would keep retrying until its timeout)."""
    import socket

    url = urlparse(address)
    if url.hostname is None or url.port is None:
        return
    try:
        socket.create_connection((url.hostname, url.port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address} ({describe_error(exc)}); is it running? "
                         "Start one here with `pipeloom cluster start --workers 2`") from None


class DaskExecutor:
    """Runs each node of one run as a Dask task; this side stays the run's driver."""

    name = "dask"

    def __init__(self, choice: ExecutorChoice, *, run_id: str, workspace: Path):
        self.run_id = run_id
        self.address = choice.scheduler
        self.client = connect(choice.scheduler)
        self.inline_limit = choice.inline_limit if choice.inline_limit is not None else (
            parse_size(os.environ.get(INLINE_ENV, "")) if os.environ.get(INLINE_ENV) else INLINE_LIMIT)
        self.shared = Path(choice.shared or os.environ.get(SHARED_ENV) or workspace).resolve()
        self.topic = f"pipeloom-{run_id}"
        self._lock = threading.Lock()
        self._active: dict[str, dict] = {}  # task key -> {"log", "sink", "ended", "event"}
        self._counter = 0
        self.client.subscribe_topic(self.topic, self._on_message)

    # ------------------------------------------------------------ the executor interface

    def slots(self, jobs: int | None) -> int:
        """Nodes handed to Dask at once: --jobs, else every thread of the cluster (at least 4)."""
        if jobs:
            return jobs
        try:
            workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
            return max(4, sum(w.get("nthreads", 1) for w in workers.values()))
        except Exception:  # noqa: BLE001 (a count is only a hint)
            return 4

    def run(self, task: NodeTask, cancel: Cancel, log) -> NodeOutcome:
        from distributed import Event

        node = task.node
        res = dask_resources(node)
        try:
            problem = self._unmet(node.id, res) if res else None
        except Exception as exc:  # noqa: BLE001 (the cluster went away)
            return self._lost(node.id, exc, cancel)
        if problem:
            now = time.time()
            return NodeOutcome("failed", started_at=now, finished_at=now, message=problem)
        with self._lock:
            self._counter += 1
            key = f"{self.run_id}/{node.id}/{self._counter}"
            entry = {"log": log, "sink": None, "ended": threading.Event(),
                     "event": Event(f"pipeloom-cancel/{key}", client=self.client)}
            self._active[key] = entry
        try:
            if cancel.is_set():
                now = time.time()
                return NodeOutcome("cancelled", started_at=now, finished_at=now, message="cancelled before it started")
            shipped = self._ship_inputs(task)
            future = self.client.submit(run_on_worker, shipped, self.topic, key, self.inline_limit, str(self.shared),
                                        key=key, pure=False, resources=res or None, retries=0)
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 (a lost worker, a lost cluster: the node fails, saying so)
                return self._lost(node.id, exc, cancel)
            entry["ended"].wait(END_WAIT)
            self._receive_outputs(task, outcome)
            return outcome
        finally:
            with self._lock:
                self._active.pop(key, None)
            if entry["sink"] is not None:
                entry["sink"].tick()

    def cancel(self) -> None:
        """Set every running node's cancel Event: the thread watching it on the worker stops the program."""
        with self._lock:
            events = [e["event"] for e in self._active.values()]
        for ev in events:
            try:
                ev.set()
            except Exception as exc:  # noqa: BLE001 (the cluster is gone: nothing left to stop there)
                logger.warning("could not cancel a Dask task: %s", exc)

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001
            pass
        self.client.close()
        # what travelled through the shared folder has arrived (or its node failed): none of it is kept
        shutil.rmtree(self.shared / ".pipeloom" / "transfer" / self.run_id, ignore_errors=True)

    # ------------------------------------------------------------ here, around a task

    def _unmet(self, nid: str, res: dict[str, float]) -> str | None:
        """Why no worker of the cluster can run a node that needs `res`, or None if one can."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        for w in workers.values():
            have = w.get("resources") or {}
            if all(have.get(k, 0) >= v for k, v in res.items()):
                return None
        offered = "; ".join(f"{w.get('name', addr)}: {describe_resources(w.get('resources') or {})}"
                            for addr, w in sorted(workers.items())) or "no workers at all"
        return (f"node `{nid}` needs {describe_resources(res)}, which no worker of the Dask cluster at "
                f"{self.address} offers (workers offer: {offered}); start a worker with those resources "
                f"(`pipeloom cluster start --resources cpu=2,memory=4GiB --tag NAME`) or change the node's "
                f"`resources`/`tags`")

    def _ship_inputs(self, task: NodeTask) -> NodeTask:
        """Small inputs go as bytes; large ones by their path, which must be in the shared folder."""
        shipped = copy.copy(task)
        shipped.inputs = []
        for spec in task.inputs:
            spec = copy.copy(spec)
            if spec.path is not None:
                path = Path(spec.path)
                size = spec.size if spec.size is not None else path.stat().st_size
                if size <= self.inline_limit:
                    spec.data = path.read_bytes()
                    if spec.sha256 is None:
                        import hashlib

                        spec.sha256 = hashlib.sha256(spec.data).hexdigest()
                else:
                    if spec.sha256 is None:
                        spec.sha256 = file_sha256(path)
                    if not _inside(path, self.shared):
                        dst = self.shared / ".pipeloom" / "transfer" / self.run_id / "in" / task.node.id / spec.file
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, dst)
                        spec.path = str(dst)
            shipped.inputs.append(spec)
        return shipped

    def _receive_outputs(self, task: NodeTask, outcome: NodeOutcome) -> None:
        """Place the outputs a worker sent into the node's folder here, each checked against its sha256."""
        workdir = Path(task.workdir)
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        for port, art in list(outcome.artifacts.items()):
            dst = workdir / Path(art["path"]).name
            tmp = dst.with_name(f".{dst.name}.arriving")
            data = art.pop("data", None)
            moved = art.pop("transfer", None)
            if data is not None:
                tmp.write_bytes(data)
            elif moved is not None:
                try:
                    os.replace(moved, tmp)
                except OSError:
                    shutil.copyfile(moved, tmp)
                    os.unlink(moved)
            got = file_sha256(tmp)
            if got != art["sha256"]:
                tmp.unlink(missing_ok=True)
                outcome.status, outcome.artifacts = "failed", {}
                outcome.message = (f"output `{port}` of node `{task.node.id}` arrived damaged from worker "
                                   f"{outcome.worker} (sha256 {got[:12]}…, expected {art['sha256'][:12]}…); "
                                   "run it again, and check the shared folder if it happens again")
                return
            os.replace(tmp, dst)
            st = dst.stat()
            art.update(path=str(dst), mtime_ns=st.st_mtime_ns, size=st.st_size)

    def _lost(self, nid: str, exc: BaseException, cancel: Cancel) -> NodeOutcome:
        now = time.time()
        if cancel.is_set():
            return NodeOutcome("cancelled", started_at=now, finished_at=now, message="cancelled while running")
        kind = type(exc).__name__
        if kind == "KilledWorker":
            why = ("the workers running it died each time it started (Dask gave up after its "
                   "`distributed.scheduler.allowed-failures`); look at the workers' logs")
        elif kind in ("CancelledError", "FutureCancelledError", "CommClosedError", "TimeoutError") \
                or isinstance(exc, (ConnectionError, TimeoutError)):
            why = f"the Dask cluster at {self.address} lost it ({describe_error(exc)})"
        else:
            why = (f"Pipeloom failed on the Dask worker ({describe_error(exc)}); is this version of Pipeloom "
                   "installed there, and is the shared folder writable?")
        return NodeOutcome("failed", started_at=now, finished_at=now, message=f"node `{nid}`: {why}")

    def _on_message(self, event) -> None:
        """A log event from a worker (called on the client's event loop: quick work only)."""
        _, msg = event
        with self._lock:
            entry = self._active.get(msg.get("key"))
        if entry is None:
            return
        kind = msg.get("kind")
        log = entry["log"]
        try:
            if kind == "attempt":
                if entry["sink"] is not None:
                    entry["sink"].tick()
                log.attempt(msg["attempt"], msg["started_at"], msg.get("by"))  # Dask sets "worker" to the address
                entry["sink"] = log.output()
            elif kind == "lines" and entry["sink"] is not None:
                sink = entry["sink"]
                for stream, text in msg.get("blocks", ()):
                    sink.feed(stream, text.encode("utf-8", "replace"))
                if msg.get("dropped"):
                    sink.skip(msg["dropped"])
                sink.tick()
            elif kind == "meta":
                log.meta(msg["text"])
            elif kind == "end":
                entry["ended"].set()
        except Exception:  # noqa: BLE001 (never let a log line break the client's loop)
            logger.exception("a log event from a Dask worker could not be handled")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- on the worker

class _ForwardSink:
    """A node's output on a worker: whole lines, sent in batches at most every LOG_INTERVAL seconds."""

    def __init__(self, send, cap: int):
        self.send = send
        self.cap = cap
        self._lock = threading.Lock()
        self._blocks: list[tuple[str, str]] = []
        self._sent = 0
        self._dropped = 0
        self._next = 0.0

    @property
    def full(self) -> bool:
        return self._sent > self.cap

    def feed(self, stream: str, data: bytes) -> None:
        with self._lock:
            if self._sent > self.cap:
                self._dropped += data.count(b"\n")
                return
            self._sent += len(data)
            self._blocks.append((stream, data.decode("utf-8", "replace")))
            ready = time.monotonic() >= self._next
        if ready:
            self.tick()

    def text(self, stream: str, line: str) -> None:
        self.feed(stream, line.replace("\n", " ").encode("utf-8", "replace") + b"\n")

    def skip(self, count: int) -> None:
        with self._lock:
            self._dropped += count

    def due(self) -> float | None:
        with self._lock:
            if not self._blocks and not self._dropped:
                return None
            return max(0.0, self._next - time.monotonic())

    def tick(self) -> None:
        with self._lock:
            blocks, self._blocks = self._blocks, []
            dropped, self._dropped = self._dropped, 0
            self._next = time.monotonic() + LOG_INTERVAL
            if blocks or dropped:
                self.send({"kind": "lines", "blocks": blocks, "dropped": dropped})


class _ForwardLog:
    """execute_node's NodeLog on a worker: everything goes back to the driver as log events."""

    def __init__(self, worker, topic: str, key: str, cap: int):
        self.worker = worker
        self.topic = topic
        self.key = key
        self.cap = cap
        self.name = str(worker.name if worker.name is not None else worker.address)
        self.sink: _ForwardSink | None = None

    def send(self, msg: dict) -> None:
        self.worker.log_event(self.topic, {"key": self.key, **msg})

    def attempt(self, attempt: int, started_at: float) -> None:
        if self.sink is not None:
            self.sink.tick()
        self.send({"kind": "attempt", "attempt": attempt, "started_at": started_at, "by": self.name})

    def meta(self, text: str) -> None:
        if self.sink is not None:
            self.sink.tick()
        self.send({"kind": "meta", "text": text})

    def output(self) -> _ForwardSink:
        self.sink = _ForwardSink(self.send, self.cap)
        return self.sink

    def end(self) -> None:
        if self.sink is not None:
            self.sink.tick()
        self.send({"kind": "end"})


def _watch(key: str, client, worker, cancel: Cancel, done: threading.Event) -> None:
    """Stop the node when its cancel Event is set, or when the scheduler lets go of the task (its client is
    gone, or it cancelled the future)."""
    from distributed import Event

    ev = Event(f"pipeloom-cancel/{key}", client=client)
    while not done.is_set():
        try:
            if ev.wait(timeout=0.5):
                break
        except Exception:  # noqa: BLE001 (the scheduler is unreachable: keep checking the task's own state)
            time.sleep(0.5)
        ts = worker.state.tasks.get(key)
        if ts is None or ts.state in ("cancelled", "released", "forgotten"):
            break
    if not done.is_set():
        cancel.set()


def run_on_worker(task: NodeTask, topic: str, key: str, inline_limit: int, shared: str) -> NodeOutcome:
    """The Dask task: run one node in a scratch folder of this worker, and send its outputs back."""
    from distributed import get_client, get_worker

    from ..logs import default_cap

    worker = get_worker()
    scratch = Path(worker.local_directory) / "pipeloom" / task.run_id / task.node.id
    task = copy.copy(task)
    task.workdir = str(scratch / "work")
    log = _ForwardLog(worker, topic, key, task.log_cap if task.log_cap is not None else default_cap())
    cancel = Cancel()
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(key, get_client(), worker, cancel, done), daemon=True,
                               name=f"pipeloom-watch-{key}")
    watcher.start()
    try:
        outcome = execute_node(task, cancel, log, guard=RunGuard(task.run_id), verify=True)
        outcome.worker = log.name
        for art in outcome.artifacts.values():
            path = Path(art["path"])
            if art["size"] <= inline_limit:
                art["data"] = path.read_bytes()
            else:
                dst = Path(shared) / ".pipeloom" / "transfer" / task.run_id / "out" / key.replace("/", "_") / path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(path, dst)
                except OSError:
                    shutil.copyfile(path, dst)
                art["transfer"] = str(dst)
        return outcome
    finally:
        done.set()
        log.end()
        shutil.rmtree(scratch, ignore_errors=True)
