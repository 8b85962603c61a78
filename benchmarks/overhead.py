"""What Pipeloom adds around a node's program: live log intake, and per-run overhead in a long-lived process.

(a) Log intake: a Python node printing 2,000,000 short lines, run alone and
    through `pipeloom run` as a cold CLI process. CPU is user + system time of the
    process and everything it waited for (the node program, the run guard), from
    resource.getrusage(RUSAGE_CHILDREN). The program alone runs as it runs by
    itself, with Python's default buffering, its output kept in a file
    (`prog > prog.log`) and, separately, sent to /dev/null (the cheapest place
    there is). Under Pipeloom it keeps that buffering (the helpers flush stdout
    every 50 ms so its lines still show live). The same program alone with `-u`
    (unbuffered: one system call per piece printed) is reported for reference,
    and the same CLI run of a one-line program, so start-up and intake can be
    told apart. The same 2 M lines from awk are measured the same way.
(b) Per-run overhead in-process, store on (what triggers and the studio pay):
    Runner(...).run() in a thread of its own, as they run it, of a 1-node pipeline (a shell `true`-like step, and a tiny
    Python step) against spawning the same argv with subprocess in the same
    process (output captured through pipes, as Pipeloom does; each spawn in an
    empty folder, as each node runs in one); and the marginal cost per node on
    a chain.

    python benchmarks/overhead.py [--repeat 9] [--lines 2000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
# The CLI as installed: with its bytecode compiled (pip does it; main() warms __pycache__ first), so no cold
# process pays for compiling Pipeloom's modules; and with no PYTHONUNBUFFERED of the caller's.
CLI_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
CLI_ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

TALK_PY = ("import sys\n"
           "n = int(sys.argv[1]) if len(sys.argv) > 1 else {lines}\n"
           "for i in range(n):\n"
           "    print('line', i)\n"
           "open('out.json', 'w').write('[]\\n')\n")
TRUE_SH = "true\n"
TINY_PY = "open('out.json', 'w').write('[1]\\n')\n"
CHAIN_SH = 'cat in.json > /dev/null 2>&1 || true\necho "[1]" > out.json\n'


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_of(argv: list[str], **kw) -> tuple[float, float]:
    """(CPU seconds of the process and what it waited for, wall seconds)."""
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, **kw)
    return children_cpu() - c0, time.perf_counter() - t0


def write_ws(doc: dict, files: dict[str, str]) -> tuple[Path, Path]:
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-bench-ovh-"))
    for name, text in files.items():
        (ws / name).write_text(text)
    path = ws / "bench.pipeline.json"
    path.write_text(json.dumps(doc))
    return ws, path


# The CLI, run so that it also reports its own CPU (without its children's) when it exits.
CLI_WRAPPER = """
import atexit, json, resource, sys
out = sys.argv[1]
def note():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    open(out, "w").write(json.dumps({"self_cpu_s": ru.ru_utime + ru.ru_stime}))
atexit.register(note)
sys.argv = ["pipeloom", *sys.argv[2:]]
import server.cli
server.cli.main()
"""


def _bare_cpu(argv: list[str], ws: Path, env: dict, sink: str) -> float:
    """CPU of the program alone, its output sent to /dev/null or kept in a file (as `prog > prog.log`)."""
    if sink == "devnull":
        return cpu_of(argv, cwd=ws, env=env, stdout=subprocess.DEVNULL)[0]
    kept = ws / "alone.log"
    with open(kept, "wb") as out:
        cpu = cpu_of(argv, cwd=ws, env=env, stdout=out)[0]
    kept.unlink()
    return cpu


def _intake_case(doc: dict, files: dict[str, str], small_files: dict[str, str], bare_argv: list[str],
                 alone_env: dict, repeat: int, unbuffered_env: dict | None = None) -> dict:
    """`alone_env` is the program's environment alone; `unbuffered_env`, for reference, the same with
    unbuffered output (what a Python program printing through `-u` costs)."""
    ws, path = write_ws(doc, files)
    small_ws, _ = write_ws(doc, small_files)
    cli_env = {**CLI_ENV}
    note = ws / "self.json"
    cli = [sys.executable, "-c", CLI_WRAPPER, str(note), "run", path.name, "--json"]
    bare, devnull, default, through, own, small, walls = [], [], [], [], [], [], []
    for _ in range(repeat):
        bare.append(_bare_cpu(bare_argv, ws, alone_env, "file"))
        devnull.append(_bare_cpu(bare_argv, ws, alone_env, "devnull"))
        if unbuffered_env is not None:
            default.append(_bare_cpu(bare_argv, ws, unbuffered_env, "file"))
        cpu, wall = cpu_of(cli, cwd=ws, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        through.append(cpu)
        own.append(json.loads(note.read_text())["self_cpu_s"])
        walls.append(wall)
        cpu, _ = cpu_of(cli, cwd=small_ws, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        small.append(cpu)
    log = sorted((ws / ".pipeloom" / "runs").glob("*/_logs/talk.log"))[-1]
    kept = sum(1 for ln in open(log, "rb") if b"\tout\t" in ln)
    shutil.rmtree(ws)
    shutil.rmtree(small_ws)
    b, d, t, o, sm = (statistics.median(x) for x in (bare, devnull, through, own, small))
    out = {"bare_cpu_s": b, "bare_devnull_cpu_s": d, "cli_cpu_s": t, "cli_wall_s": statistics.median(walls),
           "ratio": t / b, "ratio_vs_devnull": t / d, "cli_one_line_cpu_s": sm, "intake_ratio": (t - sm) / b,
           "pipeloom_self_cpu_s": o, "program_through_pipe_cpu_s": t - o, "lines_in_log": kept}
    if default:
        out["alone_unbuffered_cpu_s"] = statistics.median(default)
    return out


def log_intake(lines: int, repeat: int) -> dict:
    """CPU of `lines` short lines alone vs through the CLI, for a Python node and for awk (both block-buffered
    alone, as they run by themselves); plus the CLI's cost for a 1-line run of the same node."""
    out: dict = {"lines": lines}
    doc = {"version": 1, "name": "talk", "nodes": [
        {"id": "talk", "runtime": "python", "source": "talk.py", "outputs": [{"name": "out"}], "cache": "never"}]}
    alone = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    out["python_print"] = _intake_case(doc, {"talk.py": TALK_PY.format(lines=lines)},
                                       {"talk.py": TALK_PY.format(lines=1)}, [sys.executable, "talk.py"],
                                       alone, repeat, unbuffered_env={**alone, "PYTHONUNBUFFERED": "1"})
    awk = shutil.which("awk")
    if awk:
        doc = {"version": 1, "name": "talk", "nodes": [
            {"id": "talk", "runtime": "shell", "source": "talk.sh", "outputs": [{"name": "out"}], "cache": "never"}]}
        script = (f"{awk} 'BEGIN {{ for (i = 0; i < {{n}}; i++) print \"line\", i }}'\n"
                  "echo '[]' > out.json\n")
        out["awk_print"] = _intake_case(doc, {"talk.sh": script.replace("{n}", str(lines))},
                                        {"talk.sh": script.replace("{n}", "1")}, ["bash", "talk.sh"], alone, repeat)
    else:
        out["awk_print"] = {"skipped": "awk is not installed"}
    return out


def intake_in_process(lines: int, repeat: int) -> dict:
    """Pipeloom's own CPU for reading, logging and sampling `lines` lines (NodeProcess + NodeOutput in this
    process, live view on), apart from the CLI's start-up: RUSAGE_SELF against the program's RUSAGE_CHILDREN."""
    from server.engine.logs import LiveLog, LogWriter, NodeOutput
    from server.engine.process import NodeProcess

    d = Path(tempfile.mkdtemp(prefix="pipeloom-bench-intake-"))
    (d / "talk.py").write_text(TALK_PY.format(lines=lines))
    from server.engine.runtimes.base import HELPERS_DIR

    base = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    progs = {"python_print": ([sys.executable, "talk.py"], {"PYTHONPATH": str(HELPERS_DIR / "python")})}
    if shutil.which("awk"):
        progs["awk_print"] = ([shutil.which("awk"), f'BEGIN {{ for (i = 0; i < {lines}; i++) print "line", i }}'], {})
    out = {}
    for name, (argv, extra) in progs.items():
        own, prog = [], []
        for i in range(repeat):
            log = LogWriter(d / f"{name}-{i}.log")
            sink = NodeOutput(log, LiveLog(lambda batch, skipped: None))
            ru0, c0 = resource.getrusage(resource.RUSAGE_SELF), children_cpu()
            p = NodeProcess(argv, cwd=str(d), env={**base, **extra}, sink=sink)
            p.wait(None)
            p.finish_reading()
            log.close()
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            own.append(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
            prog.append(children_cpu() - c0)
            assert log.lines == lines, (name, log.lines)
            (d / f"{name}-{i}.log").unlink()
        o, g = statistics.median(own), statistics.median(prog)
        out[name] = {"pipeloom_cpu_s": o, "program_cpu_s": g, "ns_per_line": o / lines * 1e9}
    shutil.rmtree(d)
    return out


def _paired(path: Path, ws: Path, store, argv: list[str], repeat: int, n: int = 1) -> tuple[list[float], list[float]]:
    """Alternating Runner(...).run() of the pipeline and `n` raw spawns of `argv`, so load from elsewhere on
    the machine falls on both alike; the first of each is a warm-up (imports, interpreter lookup).

    Each raw spawn runs in an empty folder of its own, made beforehand, as each node does: the program then
    creates its output file there, as it does under Pipeloom, instead of overwriting one it made before."""
    from server.engine.model import load_pipeline
    from server.engine.runner import RunOptions, Runner

    pipeline = load_pipeline(path, workspace=ws)
    env = dict(os.environ)
    argv = [argv[0], str(ws / argv[1]), *argv[2:]]
    runs, spawns = [], []
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        runner = Runner(pipeline, store=store, workspace=ws, options=RunOptions(jobs=1, origin={"by": "trigger"}))
        driver = threading.Thread(target=runner.run)  # as the studio and triggers run it: a thread of its own
        driver.start()
        driver.join()
        runs.append(time.perf_counter() - t0)
        res = runner.result()
        assert res.ok, res.to_dict()
        folders = [ws / "_spawns" / f"{k}-{i}" for i in range(n)]
        for f in folders:
            f.mkdir(parents=True)
        t0 = time.perf_counter()
        for f in folders:
            subprocess.run(argv, cwd=f, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True)
        spawns.append(time.perf_counter() - t0)
    return runs[1:], spawns[1:]


def per_run(repeat: int, chain_len: int) -> dict:
    """In-process overhead of a 1-node run and of each further node, store on, against raw spawns."""
    from server.engine import toolchains
    from server.engine.store import Store

    bash = toolchains.resolve("bash") or "bash"
    out: dict = {}
    cases = {
        "shell_true": ({"id": "step", "runtime": "shell", "source": "step.sh", "cache": "never"},
                       {"step.sh": TRUE_SH}, [bash, "step.sh"]),
        "python_tiny": ({"id": "step", "runtime": "python", "source": "step.py", "outputs": [{"name": "out"}],
                         "cache": "never"}, {"step.py": TINY_PY}, [sys.executable, "step.py"]),
    }
    for name, (node, files, argv) in cases.items():
        ws, path = write_ws({"version": 1, "name": name, "nodes": [node]}, files)
        store = Store.open(ws)
        try:
            runs, spawn = _paired(path, ws, store, argv, repeat)
        finally:
            store.close()
        r, s = statistics.median(runs), statistics.median(spawn)
        out[name] = {"run_ms": r * 1e3, "spawn_ms": s * 1e3, "overhead_ms": (r - s) * 1e3, "ratio": r / s,
                     "overhead_ms_best": (min(runs) - min(spawn)) * 1e3}
        shutil.rmtree(ws)

    nodes, edges = [], []
    for i in range(chain_len):
        nd = {"id": f"n{i}", "runtime": "shell", "source": "node.sh", "outputs": [{"name": "out"}], "cache": "never"}
        if i:
            nd["inputs"] = [{"name": "in", "file": "in.json"}]
            edges.append({"from": f"n{i - 1}.out", "to": f"n{i}.in"})
        nodes.append(nd)
    ws, path = write_ws({"version": 1, "name": "chain", "nodes": nodes, "edges": edges}, {"node.sh": CHAIN_SH})
    one_ws, one_path = write_ws({"version": 1, "name": "one", "nodes": nodes[:1]}, {"node.sh": CHAIN_SH})
    store, one_store = Store.open(ws), Store.open(one_ws)
    try:
        chain, spawns = _paired(path, ws, store, [bash, "node.sh"], repeat, n=chain_len)
        single, one_spawn = _paired(one_path, one_ws, one_store, [bash, "node.sh"], repeat)
    finally:
        store.close()
        one_store.close()
    c, s1, sp = statistics.median(chain), statistics.median(single), statistics.median(spawns) / chain_len
    marginal = (c - s1) / (chain_len - 1)
    out["chain"] = {"nodes": chain_len, "run_ms": c * 1e3, "one_node_run_ms": s1 * 1e3,
                    "spawn_ms_each": sp * 1e3, "marginal_ms_per_node": marginal * 1e3,
                    "overhead_ms_per_node": (marginal - sp) * 1e3,
                    "one_node_overhead_ms": (s1 - statistics.median(one_spawn)) * 1e3}
    shutil.rmtree(ws)
    shutil.rmtree(one_ws)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--log-repeat", type=int, default=3, help="repeats of the (slow) 2 M-line intake")
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--chain", type=int, default=20, help="nodes in the chain for the per-node figure")
    ap.add_argument("--skip-logs", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "server")], env=CLI_ENV, check=True)
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform(), "load": os.getloadavg()}}
    out["per_run"] = per_run(args.repeat, args.chain)
    if not args.skip_logs:
        out["log_intake"] = log_intake(args.lines, args.log_repeat)
        out["log_intake"]["in_process"] = intake_in_process(args.lines, args.log_repeat)
    print(json.dumps(out, indent=2))
    pr = out["per_run"]
    for name in ("shell_true", "python_tiny"):
        c = pr[name]
        print(f"1-node run ({name}): {c['run_ms']:.1f} ms vs spawn {c['spawn_ms']:.1f} ms "
              f"-> +{c['overhead_ms']:.1f} ms (target <= 5)")
    c = pr["chain"]
    print(f"{c['nodes']}-node chain: {c['marginal_ms_per_node']:.2f} ms per extra node vs spawn "
          f"{c['spawn_ms_each']:.2f} ms -> +{c['overhead_ms_per_node']:.2f} ms per node (target <= 1)")
    if "log_intake" in out:
        li = out["log_intake"]
        for name in ("python_print", "awk_print"):
            c = li[name]
            if "skipped" in c:
                print(f"{name}: skipped, {c['skipped']}")
                continue
            print(f"{li['lines']:,} log lines ({name}): CLI {c['cli_cpu_s']:.2f} s CPU vs the program alone into a "
                  f"file {c['bare_cpu_s']:.2f} s -> {c['ratio']:.2f}x (target <= 1.3); vs alone into /dev/null "
                  f"{c['bare_devnull_cpu_s']:.2f} s: {c['ratio_vs_devnull']:.2f}x"
                  + (f"; alone unbuffered (-u) {c['alone_unbuffered_cpu_s']:.2f} s"
                     if "alone_unbuffered_cpu_s" in c else "")
                  + f"; less the CLI's start-up ({c['cli_one_line_cpu_s']:.2f} s): "
                  f"{c['intake_ratio']:.2f}x; Pipeloom's own CPU {c['pipeloom_self_cpu_s']:.2f} s, the program's "
                  f"through the pipe {c['program_through_pipe_cpu_s']:.2f} s; {c['lines_in_log']:,} lines in the log")
        for name, c in li["in_process"].items():
            print(f"  in-process intake ({name}): Pipeloom {c['pipeloom_cpu_s']:.3f} s CPU "
                  f"({c['ns_per_line']:.0f} ns a line) beside the program's {c['program_cpu_s']:.2f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
