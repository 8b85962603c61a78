"""The sensor-alerts demo on 1,000,000 events: Pipeloom against a hand-written
bash script that runs the same five programs (the same built binaries) in
sequence, passing files by hand.

    python benchmarks/demo.py [--events 1000000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.engine.model import load_pipeline  # noqa: E402
from server.engine.runtimes import get_runtime  # noqa: E402

PIPELINE = "nodes/sensor-alerts.pipeline.yaml"


def make_workspace(events: int) -> Path:
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-demo-bench-"))
    shutil.copytree(REPO / "nodes", ws / "nodes")
    subprocess.run([sys.executable, str(ws / "nodes/sensor-alerts/generate.py"), "--events", str(events),
                    "--out", str(ws / "nodes/sensor-alerts/sensors.log"), "--seed", "11"], check=True)
    return ws


def pipeloom_run(ws: Path, *extra: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "server.cli", "run", PIPELINE, "--json", *extra], cwd=ws, env=env,
                         capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"pipeloom run failed:\n{out.stderr}\n{out.stdout}")
    return took, json.loads(out.stdout)


def baseline_script(ws: Path) -> Path:
    """The glue a team would write by hand: same programs, same files, one after another."""
    pipeline = load_pipeline(ws / PIPELINE, workspace=ws)
    argv = {}
    for node in pipeline.nodes:
        prep = get_runtime(node.runtime).prepare(node, pipeline, lambda _line: None)
        extra_env = " ".join(f"{k}='{v}'" for k, v in prep.env.items())
        argv[node.id] = (extra_env, " ".join(f"'{a}'" for a in prep.argv))
    params = {n.id: json.dumps(n.params) for n in pipeline.nodes}
    src = ws / "nodes/sensor-alerts"
    lines = ["#!/usr/bin/env bash", "set -euo pipefail", f'W="{ws}/bash-run"', 'rm -rf "$W"',
             'mkdir -p "$W"/ingest "$W"/filter "$W"/classify "$W"/notify "$W"/archive']

    def step(nid: str, inputs: list[tuple[str, str]], outputs: list[str]) -> None:
        node = pipeline.node(nid)
        ports = {"inputs": {p.name: {"path": f"$W/{nid}/{p.file}", "format": p.format} for p in node.inputs},
                 "outputs": {p.name: {"path": f"$W/{nid}/{p.file}", "format": p.format} for p in node.outputs}}
        for src_path, dst in inputs:
            lines.append(f'ln -f "{src_path}" "$W/{nid}/{dst}"')
        env = (f"PIPELOOM_PARAMS='{params[nid]}' PIPELOOM_PORTS=\"{json.dumps(ports).replace(chr(34), chr(92) + chr(34))}\" "
               + " ".join(f'PIPELOOM_INPUT_{p.name.upper()}="$W/{nid}/{p.file}"' for p in node.inputs) + " "
               + " ".join(f'PIPELOOM_OUTPUT_{p.name.upper()}="$W/{nid}/{p.file}"' for p in node.outputs))
        lines.append(f'(cd "$W/{nid}" && env {env} {argv[nid][0]} {argv[nid][1]} > "$W/{nid}.log" 2>&1)')

    step("ingest", [(f"{src}/config.json", "config.json"), (f"{src}/sensors.log", "sensors.log")], ["raw_events"])
    step("filter", [("$W/ingest/raw_events.json", "raw_events.json")], ["events"])
    step("classify", [("$W/filter/events.json", "events.json")], ["classified", "alerts"])
    step("notify", [("$W/classify/alerts.json", "alerts.json")], ["sent_alerts", "outbox"])
    step("archive", [("$W/ingest/raw_events.json", "raw_events.json"), ("$W/filter/events.json", "events.json"),
                     ("$W/classify/classified.json", "classified.json")], ["archive"])
    path = ws / "baseline.sh"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ws = make_workspace(args.events)
    try:
        pipeloom_run(ws)  # warm-up: builds (cached afterwards) and fills the page cache
        script = baseline_script(ws)
        subprocess.run(["bash", str(script)], check=True)
        p_times, b_times = [], []
        for _ in range(args.repeat):
            t, doc = pipeloom_run(ws, "--force")
            assert doc["status"] == "succeeded"
            p_times.append(t)
            t0 = time.perf_counter()
            subprocess.run(["bash", str(script)], check=True)
            b_times.append(time.perf_counter() - t0)
        forced_durations = {n: v["duration_s"] for n, v in doc["nodes"].items()}
        t_cached, doc = pipeloom_run(ws)
        assert {n["status"] for n in doc["nodes"].values()} == {"cached"}
        sizes = {p: (ws / "bash-run" / p).stat().st_size for p in ("ingest/raw_events.json", "filter/events.json",
                                                                  "classify/classified.json")}
        out = {"events": args.events, "pipeloom_s": statistics.median(p_times), "bash_s": statistics.median(b_times),
               "ratio": statistics.median(p_times) / statistics.median(b_times),
               "best_pipeloom_s": min(p_times), "best_bash_s": min(b_times),
               "best_ratio": min(p_times) / min(b_times), "cached_rerun_s": t_cached,
               "node_durations_s": forced_durations,
               "file_sizes": sizes, "all_pipeloom_s": p_times, "all_bash_s": b_times}
        print(json.dumps(out, indent=2))
        print(f"\ndemo on {args.events:,} events: median pipeloom {out['pipeloom_s']:.2f}s, bash {out['bash_s']:.2f}s "
              f"-> {out['ratio']:.3f}x; best of {args.repeat}: {out['best_ratio']:.3f}x (target <= 1.1); "
              f"unchanged re-run {t_cached:.2f}s")
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
