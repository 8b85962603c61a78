"""The dask executor against the local one: a fan-out of CPU-bound nodes, and the cost per node.

(a) Fan-out: one source node and N CPU-bound Python nodes (each a fixed amount of arithmetic, ~0.5 s
    on one core), run in-process with Runner(...).run() and --force, on the local executor (as many
    nodes at once as there are workers), then on a local Dask cluster of 1 and of 2 workers (one
    thread each, started once by `pipeloom cluster`'s code and reused for every repeat).
(b) Per-node overhead: a chain of K trivial shell nodes (`true`-like, so nearly all of the time is
    Pipeloom's), local and on the 2-worker cluster; (dask - local) / K is what sending a node to a
    worker and getting it back adds.

Medians of --repeat runs. Nothing beyond Pipeloom and dask[distributed] is needed.

    python benchmarks/dask.py [--nodes 8] [--chain 20] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# This file is called dask.py: its own folder must not shadow the real `dask` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

BURN_PY = ("import json, os\n"
           "n = int(json.loads(os.environ['PIPELOOM_PARAMS'])['n'])\n"
           "x = 0\n"
           "for i in range(n):\n"
           "    x = (x * 31 + i) % 1000003\n"
           "open('out.json', 'w').write(json.dumps([x]) + '\\n')\n")
SEED_SH = "echo '[1]' > out.json\n"
STEP_SH = "echo '[1]' > out.json\n"


def fanout_ws(n: int, work: int) -> tuple[Path, Path]:
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-dask-"))
    (ws / "seed.sh").write_text(SEED_SH)
    (ws / "burn.py").write_text(BURN_PY)
    nodes = [{"id": "seed", "runtime": "shell", "source": "seed.sh", "outputs": [{"name": "out", "file": "out.json"}]}]
    edges = []
    for i in range(n):
        nodes.append({"id": f"burn-{i}", "runtime": "python", "source": "burn.py", "params": {"n": work, "i": i},
                      "inputs": [{"name": "in", "file": "in.json"}], "outputs": [{"name": "out", "file": "out.json"}]})
        edges.append({"from": "seed.out", "to": f"burn-{i}.in"})
    path = ws / "fan.pipeline.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "fan", "nodes": nodes, "edges": edges}, sort_keys=False))
    return ws, path


def chain_ws(k: int) -> tuple[Path, Path]:
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-dask-chain-"))
    (ws / "step.sh").write_text(STEP_SH)
    nodes, edges = [], []
    for i in range(k):
        node = {"id": f"s{i}", "runtime": "shell", "source": "step.sh", "outputs": [{"name": "out", "file": "out.json"}]}
        if i:
            node["inputs"] = [{"name": "in", "file": "in.json"}]
            edges.append({"from": f"s{i - 1}.out", "to": f"s{i}.in"})
        nodes.append(node)
    path = ws / "chain.pipeline.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "chain", "nodes": nodes, "edges": edges}, sort_keys=False))
    return ws, path


def timed_run(path: Path, ws: Path, address: str | None, jobs: int | None) -> float:
    from server.engine.model import load_pipeline
    from server.engine.run.executors import ExecutorChoice
    from server.engine.runner import RunOptions, Runner

    choice = ExecutorChoice("dask", address) if address else ExecutorChoice("local")
    t0 = time.perf_counter()
    result = Runner(load_pipeline(path, workspace=ws), workspace=ws,
                    options=RunOptions(force=True, jobs=jobs, emit_logs=False, executor=choice)).run()
    took = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"benchmark run failed: {json.dumps(result.to_dict())[:2000]}")
    return took


def median_of(repeat: int, fn) -> float:
    fn()  # warm: builds, imports, first connection
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8, help="CPU-bound nodes in the fan-out")
    ap.add_argument("--work", type=int, default=4_000_000, help="loop iterations per CPU-bound node")
    ap.add_argument("--chain", type=int, default=20, help="trivial nodes in the overhead chain")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = ap.parse_args()

    from server.engine.run.cluster import start_cluster, stop_cluster

    figures: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_1min": os.getloadavg()[0]},
                     "fanout": {"nodes": args.nodes, "work": args.work}, "overhead": {"chain": args.chain}}
    fws, fpath = fanout_ws(args.nodes, args.work)
    cws, cpath = chain_ws(args.chain)
    clusters = []
    try:
        for workers in (1, 2):
            cdir = Path(tempfile.mkdtemp(prefix="pipeloom-bench-cluster-"))
            state = start_cluster(cdir, workers=workers, threads=1)
            clusters.append(cdir)
            local = median_of(args.repeat, lambda: timed_run(fpath, fws, None, workers))
            dask = median_of(args.repeat, lambda: timed_run(fpath, fws, state["address"], None))
            figures["fanout"][f"{workers}_worker"] = {"local_s": round(local, 3), "dask_s": round(dask, 3),
                                                      "dask_over_local": round(dask / local, 3)}
            print(f"fan-out of {args.nodes} CPU-bound nodes, {workers} at a time: local {local:.2f} s, "
                  f"dask ({workers} worker{'s' if workers > 1 else ''}) {dask:.2f} s ({dask / local:.2f}x)")
            if workers == 2:
                lc = median_of(args.repeat, lambda: timed_run(cpath, cws, None, 1))
                dc = median_of(args.repeat, lambda: timed_run(cpath, cws, state["address"], None))
                per = (dc - lc) / args.chain
                figures["overhead"].update(local_s=round(lc, 3), dask_s=round(dc, 3),
                                           dask_extra_per_node_ms=round(per * 1000, 1),
                                           local_per_node_ms=round(lc / args.chain * 1000, 1))
                print(f"chain of {args.chain} trivial nodes: local {lc:.2f} s ({lc / args.chain * 1000:.0f} ms a "
                      f"node), dask {dc:.2f} s; dask adds {per * 1000:.0f} ms a node")
        one, two = figures["fanout"]["1_worker"]["dask_s"], figures["fanout"]["2_worker"]["dask_s"]
        figures["fanout"]["dask_2_over_1_worker"] = round(two / one, 3)
        print(f"dask, 2 workers against 1: {two / one:.2f}x the time (on {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f})")
    finally:
        for cdir in clusters:
            stop_cluster(cdir)
            shutil.rmtree(cdir, ignore_errors=True)
        shutil.rmtree(fws, ignore_errors=True)
        shutil.rmtree(cws, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
