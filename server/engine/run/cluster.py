"""A local Dask cluster for trying the dask executor: one scheduler and N workers on 127.0.0.1.

Each process runs in its own session with its log in `.pipeloom/cluster/`; `cluster.json` there records
their pids (with their kernel start times, so a reused pid is never signalled) and the scheduler's
address, and `scheduler.json` is Dask's own scheduler file. Workers run without a nanny: a worker that
dies stays dead and the scheduler moves its tasks to the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..model import parse_size
from ..paths import Layout
from ..process import process_start_time

PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the folder holding `server/`, for the workers' imports
# The scheduler retries a task whose worker died this many times before it gives up on it; a worker
# that stops answering (hung, or its machine gone) is dropped after WORKER_TTL.
ALLOWED_FAILURES = 3
WORKER_TTL = "15s"
DEATH_TIMEOUT = "30s"  # a worker that cannot reach its scheduler this long exits


def cluster_dir(workspace) -> Path:
    return Layout(workspace).state / "cluster"


def scheduler_file(workspace) -> Path:
    return cluster_dir(workspace) / "scheduler.json"


def read_state(workspace) -> dict | None:
    try:
        return json.loads((cluster_dir(workspace) / "cluster.json").read_text())
    except (OSError, ValueError):
        return None


def _alive(p: dict) -> bool:
    return process_start_time(p["pid"]) == p.get("start")


def running_address(workspace) -> str | None:
    """The address of this workspace's running local cluster, or None."""
    state = read_state(workspace)
    if state and any(p["role"] == "scheduler" and _alive(p) for p in state["processes"]):
        return state["address"]
    return None


def parse_resources(text: str | None) -> dict[str, float]:
    """`cpu=2,memory=4GiB,gpu=1` as Dask resources (memory in bytes)."""
    out: dict[str, float] = {}
    for item in (text or "").replace(" ", "").split(","):
        if not item:
            continue
        name, _, value = item.partition("=")
        size = parse_size(value) if name == "memory" else None
        try:
            out[name] = float(size if size is not None else value)
        except ValueError:
            raise UsageError(f"--resources: `{item}` must be NAME=NUMBER (memory may be a size like 4GiB)") from None
        if not name or out[name] <= 0:
            raise UsageError(f"--resources: `{item}` must be NAME=NUMBER with a positive number")
    return out


def _memory_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 4 * 2 ** 30


def need_dask() -> None:
    """UsageError unless Dask's distributed package is installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("a Dask cluster needs Dask: pip install 'pipeloom[dask]'") from None


def start_cluster(workspace, *, workers: int = 2, threads: int | None = None, host: str = "127.0.0.1",
                  resources: dict[str, float] | None = None, tags: list[str] | None = None,
                  worker_tags: list[list[str]] | None = None, dashboard: bool = False,
                  timeout: float = 60.0) -> dict:
    """Start a scheduler and `workers` workers in the background; return the cluster's state (address, pids).

    Every worker offers `cpu` (its threads) and `memory` (its share of this machine's memory) unless
    `resources` says otherwise, plus `tag:<name>` for each of `tags` and of its own `worker_tags[i]`."""
    need_dask()
    ws = Path(workspace).resolve()
    if running_address(ws):
        raise UsageError(f"a cluster is already running for {ws} at {running_address(ws)}; "
                         "stop it first with `pipeloom cluster stop`")
    folder = cluster_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    sched_file = scheduler_file(ws)
    sched_file.unlink(missing_ok=True)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(ALLOWED_FAILURES)
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = WORKER_TTL
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    processes: list[dict] = []

    def spawn(role: str, argv: list[str]) -> None:
        with open(folder / f"{role}.log", "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=str(ws),
                                    start_new_session=True, close_fds=True)
        start = None
        for _ in range(50):
            start = process_start_time(proc.pid)
            if start:
                break
            time.sleep(0.01)
        processes.append({"role": role, "pid": proc.pid, "start": start})

    dash = ["--dashboard-address", f"{host}:8787"] if dashboard else ["--no-dashboard"]
    spawn("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", "0",
                        "--scheduler-file", str(sched_file), *dash])
    base = dict(resources or {})
    base.setdefault("cpu", float(threads))
    base.setdefault("memory", float(_memory_total() // workers))
    try:
        deadline = time.monotonic() + timeout
        while not sched_file.exists():
            if time.monotonic() > deadline or not _alive(processes[0]):
                raise UsageError(f"the Dask scheduler did not start; see {folder / 'scheduler.log'}")
            time.sleep(0.05)
        for i in range(workers):
            res = dict(base)
            for t in [*(tags or ()), *((worker_tags or [])[i] if worker_tags and i < len(worker_tags) else ())]:
                res[f"tag:{t}"] = 1.0
            spec = ",".join(f"{k}={v:g}" for k, v in res.items())
            spawn(f"worker-{i + 1}", [sys.executable, "-m", "distributed.cli.dask_worker",
                                      "--scheduler-file", str(sched_file), "--host", host, "--nthreads", str(threads),
                                      "--no-nanny", "--no-dashboard", "--name", f"worker-{i + 1}",
                                      "--resources", spec, "--local-directory", str(folder / f"worker-{i + 1}"),
                                      "--death-timeout", DEATH_TIMEOUT])
        address = json.loads(sched_file.read_text())["address"]
        state = {"address": address, "scheduler_file": str(sched_file), "workers": workers, "threads": threads,
                 "processes": processes}
        (folder / "cluster.json").write_text(json.dumps(state, indent=1) + "\n")
        _wait_for_workers(sched_file, workers, deadline - time.monotonic(), folder)
        return state
    except BaseException:
        _stop(processes)
        (folder / "cluster.json").unlink(missing_ok=True)
        raise


def _wait_for_workers(sched_file: Path, n: int, timeout: float, folder: Path) -> None:
    from distributed import Client

    with Client(scheduler_file=str(sched_file), timeout=max(timeout, 5), set_as_default=False) as client:
        try:
            client.wait_for_workers(n, timeout=max(timeout, 5))
        except TimeoutError:
            raise UsageError(f"the Dask workers did not join in time; see the logs in {folder}") from None


def stop_cluster(workspace, grace: float = 10.0) -> int:
    """Stop this workspace's local cluster (workers first); returns how many processes were still running."""
    state = read_state(workspace)
    if state is None:
        return 0
    n = _stop(state["processes"], grace)
    (cluster_dir(workspace) / "cluster.json").unlink(missing_ok=True)
    scheduler_file(workspace).unlink(missing_ok=True)
    return n


def _stop(processes: list[dict], grace: float = 10.0) -> int:
    live = [p for p in sorted(processes, key=lambda p: p["role"] == "scheduler") if _alive(p)]
    for p in live:
        try:
            os.kill(p["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in live):
        _reap(live)
        time.sleep(0.05)
    for p in live:
        if _alive(p):
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    _reap(live)
    return len(live)


def _reap(procs: list[dict]) -> None:
    """Collect our own exited children, so they do not linger as zombies (that look alive)."""
    for p in procs:
        try:
            os.waitpid(p["pid"], os.WNOHANG)
        except ChildProcessError:
            pass


def cluster_status(workspace) -> dict | None:
    """The running cluster: its address and each worker's name, threads and resources; None if none runs."""
    address = running_address(workspace)
    if address is None:
        return None
    need_dask()
    from distributed import Client

    try:
        with Client(scheduler_file=str(scheduler_file(workspace)), timeout=5, set_as_default=False) as client:
            info = client.scheduler_info(n_workers=-1)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"the cluster's scheduler ({address}) is running but does not answer ({exc}); "
                         f"see {cluster_dir(workspace) / 'scheduler.log'}, or `pipeloom cluster stop`") from None
    workers = [{"name": w.get("name"), "address": addr, "threads": w.get("nthreads"),
                "resources": w.get("resources") or {}} for addr, w in sorted(info.get("workers", {}).items())]
    return {"address": address, "workers": workers}
