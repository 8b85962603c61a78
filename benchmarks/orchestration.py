"""Orchestration overhead: Pipeloom against a plain bash loop and `make -j`.

Every contender runs the same trivial shell program once per node, in its own
folder, so the difference is the cost of orchestration alone. Pipeloom is
Runner.run() in this process, in a thread of its own as the studio and
triggers run it. All figures come from the same run on the same machine.

    python benchmarks/orchestration.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.engine.model import load_pipeline  # noqa: E402
from server.engine.runner import RunOptions, Runner  # noqa: E402
from server.engine.store import Store  # noqa: E402

NODE_SH = 'cat in_*.json > /dev/null 2>&1 || true\necho "[1]" > out.json\n'


def chain_doc(n: int) -> dict:
    nodes, edges = [], []
    for i in range(n):
        node = {"id": f"n{i}", "runtime": "shell", "source": "node.sh", "outputs": [{"name": "out"}]}
        if i:
            node["inputs"] = [{"name": "in", "file": "in_0.json"}]
            edges.append({"from": f"n{i - 1}.out", "to": f"n{i}.in"})
        nodes.append(node)
    return {"version": 1, "name": f"chain-{n}", "nodes": nodes, "edges": edges}


def fan_doc(n: int) -> dict:
    """source -> (n - 2) parallel workers -> sink."""
    workers = n - 2
    nodes = [{"id": "src", "runtime": "shell", "source": "node.sh", "outputs": [{"name": "out"}]}]
    edges = []
    for i in range(workers):
        nodes.append({"id": f"w{i}", "runtime": "shell", "source": "node.sh",
                      "inputs": [{"name": "in", "file": "in_0.json"}], "outputs": [{"name": "out"}]})
        edges.append({"from": "src.out", "to": f"w{i}.in"})
    nodes.append({"id": "sink", "runtime": "shell", "source": "node.sh",
                  "inputs": [{"name": f"i{i}", "file": f"in_{i}.json"} for i in range(workers)],
                  "outputs": [{"name": "out"}]})
    edges += [{"from": f"w{i}.out", "to": f"sink.i{i}"} for i in range(workers)]
    return {"version": 1, "name": f"fan-{n}", "nodes": nodes, "edges": edges}


def setup_ws(doc: dict) -> tuple[Path, Path]:
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-"))
    (ws / "node.sh").write_text(NODE_SH)
    path = ws / "bench.pipeline.json"
    path.write_text(json.dumps(doc))
    return ws, path


def run_in_thread(runner: Runner):
    """Runner.run() in a thread of its own, as the studio and triggers run it; the result."""
    driver = threading.Thread(target=runner.run)
    driver.start()
    driver.join()
    return runner.result()


def time_pipeloom(doc: dict, jobs: int, repeat: int) -> dict:
    """Wall time of Runner.run() in-process (fresh run, no cache), plus a no-change re-run."""
    fresh, cached = [], []
    for _ in range(repeat):
        ws, path = setup_ws(doc)
        store = Store.open(ws)
        pipeline = load_pipeline(path, workspace=ws)
        t0 = time.perf_counter()
        res = run_in_thread(Runner(pipeline, store=store, workspace=ws, options=RunOptions(jobs=jobs, emit_logs=False)))
        fresh.append(time.perf_counter() - t0)
        assert res.ok, res.to_dict()
        t0 = time.perf_counter()
        res = run_in_thread(Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws,
                                   options=RunOptions(jobs=jobs, emit_logs=False)))
        cached.append(time.perf_counter() - t0)
        assert {s.status for s in res.nodes.values()} == {"cached"}
        store.close()
        shutil.rmtree(ws)
    return {"fresh_s": statistics.median(fresh), "cached_s": statistics.median(cached)}


def time_cli_rerun(doc: dict, repeat: int) -> float:
    """`pipeloom run --json` wall time with nothing changed (process start and imports included)."""
    ws, path = setup_ws(doc)
    # as installed: bytecode compiled (main() warms __pycache__), so the process does not compile Pipeloom
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "server.cli", "run", path.name, "--json"]
    subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    shutil.rmtree(ws)
    return statistics.median(times)


def time_bash_loop(n: int, repeat: int) -> float:
    """Raw spawn cost: bash runs the same program n times, one folder each, in sequence."""
    times = []
    for _ in range(repeat):
        ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-bash-"))
        (ws / "node.sh").write_text(NODE_SH)
        script = ws / "loop.sh"
        script.write_text(
            f'cd "{ws}"\nprev=""\nfor i in $(seq 0 {n - 1}); do\n'
            '  mkdir -p d$i\n'
            '  if [ -n "$prev" ]; then ln "$prev/out.json" d$i/in_0.json; fi\n'
            '  (cd d$i && bash ../node.sh)\n'
            '  prev=d$i\ndone\n')
        t0 = time.perf_counter()
        subprocess.run(["bash", str(script)], check=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(ws)
    return statistics.median(times)


def time_make(n: int, jobs: int, repeat: int) -> float:
    """`make -jN` over the same fan-out/fan-in graph."""
    workers = n - 2
    times = []
    for _ in range(repeat):
        ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-make-"))
        (ws / "node.sh").write_text(NODE_SH)
        lines = ["all: sink/out.json", "",
                 "src/out.json:", "\tmkdir -p src && cd src && bash ../node.sh", ""]
        for i in range(workers):
            lines += [f"w{i}/out.json: src/out.json",
                      f"\tmkdir -p w{i} && ln -f src/out.json w{i}/in_0.json && cd w{i} && bash ../node.sh", ""]
        deps = " ".join(f"w{i}/out.json" for i in range(workers))
        links = " && ".join(f"ln -f w{i}/out.json sink/in_{i}.json" for i in range(workers))
        lines += [f"sink/out.json: {deps}", f"\tmkdir -p sink && {links} && cd sink && bash ../node.sh", ""]
        (ws / "Makefile").write_text("\n".join(lines))
        t0 = time.perf_counter()
        subprocess.run(["make", "-s", f"-j{jobs}", "-C", str(ws)], check=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(ws)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    r = args.repeat
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "server")], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}}

    chain = chain_doc(50)
    pl = time_pipeloom(chain, jobs=1, repeat=r)
    bash = time_bash_loop(50, r)
    out["chain50"] = {"pipeloom_s": pl["fresh_s"], "bash_loop_s": bash,
                      "overhead_ms_per_node": (pl["fresh_s"] - bash) / 50 * 1000,
                      "ratio": pl["fresh_s"] / bash}

    fan = fan_doc(100)
    pl2 = time_pipeloom(fan, jobs=2, repeat=r)
    mk = time_make(100, 2, r)
    bash100 = time_bash_loop(100, r)
    out["fan100"] = {"pipeloom_j2_s": pl2["fresh_s"], "make_j2_s": mk, "bash_loop_s": bash100,
                     "ratio_vs_make": pl2["fresh_s"] / mk}
    out["rerun100"] = {"pipeloom_inprocess_s": pl2["cached_s"], "cli_wall_s": time_cli_rerun(fan, r)}

    print(json.dumps(out, indent=2))
    c, f, rr = out["chain50"], out["fan100"], out["rerun100"]
    print(f"\n50-node chain:   pipeloom {c['pipeloom_s']*1000:.0f} ms, bash loop {c['bash_loop_s']*1000:.0f} ms "
          f"-> {c['overhead_ms_per_node']:.2f} ms/node over raw spawn (target <= 2)")
    print(f"100-node fan:    pipeloom -j2 {f['pipeloom_j2_s']*1000:.0f} ms, make -j2 {f['make_j2_s']*1000:.0f} ms "
          f"-> {f['ratio_vs_make']:.2f}x (target <= 3)")
    print(f"no-change rerun: {rr['pipeloom_inprocess_s']*1000:.0f} ms in-process (target <= 150), "
          f"{rr['cli_wall_s']*1000:.0f} ms as a CLI process")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
