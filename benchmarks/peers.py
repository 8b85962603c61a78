"""Pipeloom's CLI against its peers: Luigi, Snakemake, make and a plain bash loop, on the same graphs.

Every contender runs the same trivial shell program once per node, in its own
folder, each as a cold process, so the difference is the cost of starting and
orchestrating alone:

- a 50-node chain (`--jobs 2`, which a chain cannot use: it measures per-node cost),
- a 100-node fan-out + join (a source, 98 parallel workers, a sink that reads them all), 2 at a time,
- and Pipeloom's everyday commands as cold processes (a 1-node run, `validate`, `runs`, `show`, a
  100-node no-change re-run) against `python -c pass`.

All figures come from one run on one machine, as medians of --repeat runs.

    python benchmarks/peers.py [--repeat 5] [--json out.json]

Luigi comes from the `bench` extra (`pip install -e '.[bench]'`). Snakemake pins an old sqlmodel, so it
lives in its own environment: `snakemake` on PATH, or PIPELOOM_BENCH_SNAKEMAKE=/path/to/snakemake. A peer
that is missing is skipped, with the reason.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from orchestration import NODE_SH, chain_doc, fan_doc, setup_ws  # noqa: E402

JOBS = 2
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("PIPELOOM_DATABASE_URL", None)
# An installed Pipeloom has its bytecode compiled (pip does it); without it every cold process compiles
# ~50 modules (~130 ms here). So the benchmark lets Python keep __pycache__ (git-ignored) and warms it first.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    """Wall seconds of one cold process, which must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed in {cwd}: {proc.stderr.decode()[-1500:]}")
    return took


def median_of(repeat: int, make_ws, cmd_for) -> float:
    """Median over `repeat` fresh workspaces of one command's wall time."""
    times = []
    for _ in range(repeat):
        ws = make_ws()
        try:
            times.append(timed(cmd_for(ws), ws))
        finally:
            shutil.rmtree(ws, ignore_errors=True)
    return statistics.median(times)


def graph(kind: str, n: int) -> tuple[list[str], dict[str, list[str]]]:
    """(node ids in order, node -> the nodes it reads) for `chain` or `fan`."""
    if kind == "chain":
        ids = [f"n{i}" for i in range(n)]
        return ids, {ids[i]: ([ids[i - 1]] if i else []) for i in range(n)}
    workers = [f"w{i}" for i in range(n - 2)]
    return ["src", *workers, "sink"], {"src": [], **{w: ["src"] for w in workers}, "sink": workers}


def link_cmds(node: str, deps: list[str]) -> str:
    """Shell that makes the node's folder and links each input under in_<k>.json, as Pipeloom stages them."""
    parts = [f"mkdir -p {node}"] + [f"ln -f {d}/out.json {node}/in_{k}.json" for k, d in enumerate(deps)]
    return " && ".join(parts) + f" && cd {node} && bash ../node.sh"


# ------------------------------------------------------------ contenders

def pipeloom(kind: str, n: int, repeat: int) -> float:
    doc = chain_doc(n) if kind == "chain" else fan_doc(n)
    return median_of(repeat, lambda: setup_ws(doc)[0],
                     lambda ws: [sys.executable, "-m", "server.cli", "run", "bench.pipeline.json", "--json",
                                 "--jobs", str(JOBS)])


def make_ws(kind: str, n: int, write) -> Path:
    ws = Path(tempfile.mkdtemp(prefix=f"pipeloom-peers-{kind}-"))
    (ws / "node.sh").write_text(NODE_SH)
    write(ws, *graph(kind, n))
    return ws


def write_makefile(ws: Path, ids: list[str], deps: dict[str, list[str]]) -> None:
    lines = [f"all: {ids[-1]}/out.json", ""]
    for node in ids:
        lines += [f"{node}/out.json: " + " ".join(f"{d}/out.json" for d in deps[node]), f"\t{link_cmds(node, deps[node])}", ""]
    (ws / "Makefile").write_text("\n".join(lines))


def make(kind: str, n: int, repeat: int) -> float:
    return median_of(repeat, lambda: make_ws(kind, n, write_makefile), lambda ws: ["make", "-s", f"-j{JOBS}"])


def write_bash(ws: Path, ids: list[str], deps: dict[str, list[str]]) -> None:
    (ws / "run.sh").write_text("set -e\n" + "".join(f"( {link_cmds(node, deps[node])} )\n" for node in ids))


def bash_loop(kind: str, n: int, repeat: int) -> float:
    """The bare spawns, one after another: no orchestration at all."""
    return median_of(repeat, lambda: make_ws(kind, n, write_bash), lambda ws: ["bash", "run.sh"])


LUIGI_SCRIPT = '''
import os, subprocess, luigi
DEPS = {deps!r}
class Node(luigi.Task):
    name = luigi.Parameter()
    def requires(self):
        return [Node(name=d) for d in DEPS[self.name]]
    def output(self):
        return luigi.LocalTarget(f"{{self.name}}/out.json")
    def run(self):
        subprocess.run(["bash", "-c", {link!r}.replace("NODE", self.name).replace("LINKS", " ".join(
            f"&& ln -f {{d}}/out.json {{self.name}}/in_{{k}}.json" for k, d in enumerate(DEPS[self.name])))], check=True)
ok = luigi.build([Node(name={last!r})], local_scheduler=True, workers={jobs}, log_level="ERROR")
raise SystemExit(0 if ok else 1)
'''


def write_luigi(ws: Path, ids: list[str], deps: dict[str, list[str]]) -> None:
    (ws / "flow.py").write_text(LUIGI_SCRIPT.format(deps=deps, last=ids[-1], jobs=JOBS,
                                                    link="mkdir -p NODE LINKS && cd NODE && bash ../node.sh"))


def luigi_python() -> tuple[str | None, str]:
    py = os.environ.get("PIPELOOM_BENCH_LUIGI_PYTHON", sys.executable)
    ok = subprocess.run([py, "-c", "import luigi"], capture_output=True).returncode == 0
    return (py, "") if ok else (None, f"luigi is not installed for {py} (pip install -e '.[bench]')")


def luigi(kind: str, n: int, repeat: int, py: str) -> float:
    return median_of(repeat, lambda: make_ws(kind, n, write_luigi), lambda ws: [py, "flow.py"])


def write_snakefile(ws: Path, ids: list[str], deps: dict[str, list[str]]) -> None:
    rules = [f'rule all:\n    input: "{ids[-1]}/out.json"\n']
    for node in ids:
        inputs = ", ".join(f'"{d}/out.json"' for d in deps[node])
        rules.append(f'rule {node}:\n' + (f'    input: {inputs}\n' if inputs else '')
                     + f'    output: "{node}/out.json"\n    shell: "{link_cmds(node, deps[node])}"\n')
    (ws / "Snakefile").write_text("\n".join(rules))


def snakemake_cmd() -> tuple[str | None, str]:
    exe = os.environ.get("PIPELOOM_BENCH_SNAKEMAKE") or shutil.which("snakemake")
    if not exe:
        return None, "snakemake is not on PATH (pipx install snakemake, or set PIPELOOM_BENCH_SNAKEMAKE)"
    if subprocess.run([exe, "--version"], capture_output=True).returncode != 0:
        return None, f"{exe} --version failed"
    return exe, ""


def snakemake(kind: str, n: int, repeat: int, exe: str) -> float:
    return median_of(repeat, lambda: make_ws(kind, n, write_snakefile),
                     lambda ws: [exe, "--cores", str(JOBS), "--quiet", "all", "--snakefile", "Snakefile"])


# ------------------------------------------------------------ everyday commands

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def commands(repeat: int) -> dict:
    """Cold CLI processes against `python -c pass`, each a median of `repeat`."""
    def med(cmd: list[str], cwd: Path) -> float:
        return statistics.median(timed(cmd, cwd) for _ in range(repeat))

    one_ws, one = setup_ws(chain_doc(1))
    fan_ws, fan = setup_ws(fan_doc(100))
    try:
        out = {"python_c_pass_s": med([sys.executable, "-c", "pass"], one_ws)}
        out["run_1_node_s"] = med(cli("run", one.name, "--json", "--force"), one_ws)
        out["validate_100_s"] = med(cli("validate", fan.name), fan_ws)
        timed(cli("run", fan.name, "--json", "--jobs", str(JOBS)), fan_ws)
        out["rerun_100_no_change_s"] = med(cli("run", fan.name, "--json", "--jobs", str(JOBS)), fan_ws)
        (fan_ws / "one.pipeline.json").write_text(json.dumps(chain_doc(1)))
        for _ in range(20):  # a workspace with some history
            timed(cli("run", "one.pipeline.json", "--json", "--force"), fan_ws)
        out["runs_s"] = med(cli("runs"), fan_ws)
        newest = json.loads(subprocess.run(cli("runs", "--json", "-n", "1"), cwd=fan_ws, env=ENV,
                                           capture_output=True, text=True, check=True).stdout)[0]["run_id"]
        out["show_s"] = med(cli("show", newest), fan_ws)
    finally:
        shutil.rmtree(one_ws, ignore_errors=True)
        shutil.rmtree(fan_ws, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    r = args.repeat
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "server")], env=ENV, check=True)
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}, "repeat": r, "jobs": JOBS, "skipped": {}}
    py, why = luigi_python()
    if py is None:
        out["skipped"]["luigi"] = why
    exe, why = snakemake_cmd()
    if exe is None:
        out["skipped"]["snakemake"] = why

    for kind, n in (("chain", 50), ("fan", 100)):
        fig = {"pipeloom_s": pipeloom(kind, n, r), "make_s": make(kind, n, r), "bash_loop_s": bash_loop(kind, n, r)}
        if py:
            fig["luigi_s"] = luigi(kind, n, r, py)
        if exe:
            fig["snakemake_s"] = snakemake(kind, n, r, exe)
        pl = fig["pipeloom_s"]
        fig["ratios"] = {k[:-2]: round(v / pl, 2) for k, v in fig.items() if k.endswith("_s") and k != "pipeloom_s"}
        fig["overhead_ms_per_node_vs_bash"] = round((pl - fig["bash_loop_s"]) / n * 1000, 3)
        out[f"{kind}{n}"] = fig
    # per-node cost at the margin: the slope between a 1-node and a 50-node chain, Pipeloom's minus bash's
    one_pl, one_bash = pipeloom("chain", 1, r), bash_loop("chain", 1, r)
    c = out["chain50"]
    out["chain50"]["marginal_ms_per_node_vs_bash"] = round(
        ((c["pipeloom_s"] - one_pl) - (c["bash_loop_s"] - one_bash)) / 49 * 1000, 3)
    out["commands"] = commands(r)

    print(json.dumps(out, indent=2))
    c, f, k = out["chain50"], out["fan100"], out["commands"]
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    print(f"\n50-node chain, --jobs {JOBS}: pipeloom {ms(c['pipeloom_s'])}, make {ms(c['make_s'])}, "
          f"bash loop {ms(c['bash_loop_s'])}"
          + (f", luigi {ms(c['luigi_s'])} ({c['ratios']['luigi']}x Pipeloom's time; target >= 3)" if "luigi_s" in c else "")
          + (f", snakemake {ms(c['snakemake_s'])} ({c['ratios']['snakemake']}x; target >= 10)" if "snakemake_s" in c else ""))
    print(f"  per node over bash: {c['marginal_ms_per_node_vs_bash']:.2f} ms at the margin, "
          f"{c['overhead_ms_per_node_vs_bash']:.2f} ms on average (target <= 2)")
    print(f"100-node fan-out + join: pipeloom {ms(f['pipeloom_s'])}, make -j{JOBS} {ms(f['make_s'])} "
          f"-> {f['pipeloom_s'] / f['make_s']:.2f}x make (target <= 3)")
    print(f"commands (python -c pass {ms(k['python_c_pass_s'])}): 1-node run {ms(k['run_1_node_s'])} (target <= 200), "
          f"validate {ms(k['validate_100_s'])}, runs {ms(k['runs_s'])}, show {ms(k['show_s'])}, "
          f"100-node no-change re-run {ms(k['rerun_100_no_change_s'])} (each target <= 150)")
    for peer, why in out["skipped"].items():
        print(f"skipped {peer}: {why}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
