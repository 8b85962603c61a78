"""What a step did to 1,000,000 records: `pipeloom diff RUN STEP` as a cold CLI process, against the
script a team would otherwise write (both sides loaded into dicts keyed by the record's key).

A two-step pipeline makes the data: `make` writes N readings as ndjson, `tidy` drops every 100th and
labels every 10th. The benchmark runs it once with the CLI, then times, in turn, `pipeloom diff` (the
whole process: start-up, streaming both sides through SQLite, the counts) and the in-memory script on the
same two files. Peak memory is each process's own maximum resident size. A finished diff is kept under
`.pipeloom/diffs/` and answered from there the next time; each timed cold diff starts with that folder
removed, and the answer from the kept diff is timed apart.

    python benchmarks/diff.py [--records 1000000] [--repeat 3] [--json out.json]
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

PIPELINE = """\
version: 1
name: diff-bench
nodes:
  - id: make
    runtime: python
    source: make.py
    params: {records: %(records)d}
    outputs:
      - {name: readings, file: readings.ndjson, format: ndjson}
  - id: tidy
    runtime: python
    source: tidy.py
    inputs:
      - {name: readings, file: readings.ndjson, format: ndjson}
    outputs:
      - {name: kept, file: kept.ndjson, format: ndjson, key: [line]}
edges:
  - {from: make.readings, to: tidy.readings}
"""

MAKE = """\
import json
n = json.load(open("params.json"))["records"]
with open("readings.ndjson", "w") as out:
    for i in range(n):
        out.write(json.dumps({"line": i, "sensor_id": "s%d" % (i % 7), "value": i * 0.5}) + "\\n")
"""

TIDY = """\
import json
with open("readings.ndjson") as src, open("kept.ndjson", "w") as out:
    for text in src:
        r = json.loads(text)
        if r["line"] % 100 == 0:
            continue
        if r["line"] % 10 == 0:
            r["value"] = -r["value"]
        out.write(json.dumps(r) + "\\n")
"""

# What a team writes without Pipeloom: both sides in memory, matched by key.
BY_HAND = """\
import json, sys
def load(path):
    with open(path) as f:
        return {r["line"]: r for r in map(json.loads, f)}
a, b = load(sys.argv[1]), load(sys.argv[2])
dropped = sum(1 for k in a if k not in b)
added = sum(1 for k in b if k not in a)
changed = sum(1 for k, r in b.items() if k in a and a[k] != r)
print(json.dumps({"dropped": dropped, "added": added, "changed": changed,
                  "unchanged": len(b) - added - changed}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    ws = Path(tempfile.mkdtemp(prefix="pipeloom-diff-bench-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        (ws / "diff.pipeline.yaml").write_text(PIPELINE % {"records": args.records})
        (ws / "make.py").write_text(MAKE)
        (ws / "tidy.py").write_text(TIDY)
        (ws / "by_hand.py").write_text(BY_HAND)
        run = subprocess.run([sys.executable, "-m", "server.cli", "run", "diff.pipeline.yaml", "--json"], cwd=ws,
                             env=env, capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"pipeloom run failed:\n{run.stderr}")
        result = json.loads(run.stdout)
        run_id = result["run_id"]
        before = result["nodes"]["make"]["outputs"]["readings"]
        after = result["nodes"]["tidy"]["outputs"]["kept"]

        # The in-memory script is measured in a process of its own so that its peak is its alone.
        ours_t, ours_m, hand_t, hand_m = [], [], [], []
        counts = hand = None
        diff_cmd = [sys.executable, "-m", "server.cli", "diff", run_id, "tidy", "--json"]
        kept_t = []
        for _ in range(args.repeat):
            shutil.rmtree(ws / ".pipeloom" / "diffs", ignore_errors=True)
            t, m, out = _measured(diff_cmd, ws, env)
            ours_t.append(t)
            ours_m.append(m)
            counts = json.loads(out)["counts"]
            kept_t.append(_measured(diff_cmd, ws, env)[0])
            t, m, out = _measured([sys.executable, "by_hand.py", before, after], ws, env)
            hand_t.append(t)
            hand_m.append(m)
            hand = json.loads(out)
        if counts != hand:
            raise SystemExit(f"the two disagree: pipeloom {counts}, by hand {hand}")
        fig = {"records": args.records, "counts": counts,
               "pipeloom_diff_s": statistics.median(ours_t), "pipeloom_diff_peak_mb": max(ours_m),
               "pipeloom_kept_diff_s": statistics.median(kept_t),
               "by_hand_s": statistics.median(hand_t), "by_hand_peak_mb": max(hand_m),
               "input_mb": Path(before).stat().st_size / 1e6, "output_mb": Path(after).stat().st_size / 1e6,
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load": os.getloadavg()[0]}}
        fig["time_ratio"] = fig["pipeloom_diff_s"] / fig["by_hand_s"]
        fig["memory_ratio"] = fig["pipeloom_diff_peak_mb"] / fig["by_hand_peak_mb"]
        print(f"{args.records:,} records in ({fig['input_mb']:.0f} MB), {sum(counts.values()) - counts['dropped']:,}"
              f" out ({fig['output_mb']:.0f} MB): {counts}")
        print(f"pipeloom diff (cold CLI): {fig['pipeloom_diff_s']:.2f} s, peak {fig['pipeloom_diff_peak_mb']:.0f} MB")
        print(f"pipeloom diff, answered from the kept diff: {fig['pipeloom_kept_diff_s']:.2f} s")
        print(f"in-memory script:        {fig['by_hand_s']:.2f} s, peak {fig['by_hand_peak_mb']:.0f} MB")
        print(f"ratio: {fig['time_ratio']:.2f}x the time, {fig['memory_ratio']:.2f}x the memory")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(fig, indent=2) + "\n")
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def _measured(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """Wall seconds and peak resident MB of one process (from wait4's rusage), and its standard output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv)} failed:\n{err.decode()}")
    return took, usage.ru_maxrss / 1024, out.decode()


if __name__ == "__main__":
    main()
