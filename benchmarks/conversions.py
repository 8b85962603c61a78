"""Conversions between json, ndjson, csv and parquet: Pipeloom against duckdb and pyarrow, in one run.

A JSON array of event-like records (about --size-mb megabytes) is generated
once and cached under --data; the other source formats are made from it.
For each pair it times, each as a fresh process, with wall time and peak RSS
(the largest process of the tree, from wait4):

- pipeline: what users run: `pipeloom run --force` of a two-node pipeline whose
  edge joins the two formats, minus a same-run baseline of the same pipeline
  with no conversion on the edge;
- function: the conversion the runner starts for a large file (data/isolate.py: the compiled
  converter for json/ndjson/csv pairs, a Python child otherwise), one process, one core;
- duckdb: `COPY (SELECT * FROM read_json_auto(SRC)) TO DST (FORMAT ...)`, with all cores unless
  --duckdb-threads says otherwise (the figures record the thread count);
- pyarrow: its streaming readers and writers, where it reads the source format.

--gil measures what a conversion costs the other threads of the process that
starts it: a pure-Python counting thread's rate alone, beside an in-process
conversion, and beside the same conversion in a child (what the runner does).

    python benchmarks/conversions.py [--size-mb 1000] [--data DIR] [--pairs json:csv,json:ndjson]
                                     [--gil] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAIRS = ["json:ndjson", "json:csv", "json:parquet", "ndjson:json", "ndjson:csv", "ndjson:parquet", "csv:json",
         "csv:parquet", "parquet:json", "parquet:ndjson", "parquet:csv"]
EXT = {"json": "json", "ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}
KINDS = ["temperature", "humidity", "pressure", "vibration"]


def generate(path: Path, size_mb: int) -> int:
    """A JSON array of event-like records, written with json.dumps as a producer would."""
    rnd = random.Random(7)
    target = size_mb * 1_000_000
    size = n = 0
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[\n")
        while size < target:
            parts = []
            for i in range(n, n + 10_000):
                rec = {"id": i, "ts": "2024-05-01T%02d:%02d:%02d.%03dZ" % (i // 3_600_000 % 24, i // 60_000 % 60,
                                                                           i // 1000 % 60, i % 1000),
                       "sensor": f"sensor-{i % 500}", "kind": KINDS[i % 4], "value": round(rnd.uniform(-40, 120), 3),
                       "ok": i % 7 != 0, "site": "Zoë-東京" if i % 11 == 0 else "oslo",
                       "note": None if i % 5 else "checked, ok", "tags": ["a", "b"] if i % 3 else [],
                       "meta": {"unit": "°C", "seq": i % 97}}
                parts.append(json.dumps(rec, ensure_ascii=False))
            chunk = (",\n" if n else "") + ",\n".join(parts)
            f.write(chunk)
            size += len(chunk.encode())
            n += 10_000
        f.write("\n]\n")
    os.replace(tmp, path)
    return n


def sources(data: Path, size_mb: int) -> dict[str, Path]:
    """The cached source files, one per format, made once."""
    from server.engine import formats

    data.mkdir(parents=True, exist_ok=True)
    base = data / f"events-{size_mb}mb"
    src = {"json": base.with_suffix(".json")}
    if not src["json"].exists():
        print(f"generating {src['json']} ...", file=sys.stderr)
        generate(src["json"], size_mb)
    for fmt in ("ndjson", "csv", "parquet"):
        p = base.with_suffix("." + EXT[fmt])
        if not p.exists():
            print(f"making {p} ...", file=sys.stderr)
            formats.convert(src["json"], "json", p, fmt)
        src[fmt] = p
    return src


TIME = shutil.which("time", path="/usr/bin:/bin")


def timed(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """Run a process; its wall time and the peak RSS of its largest process (MB).

    Through /usr/bin/time when present: a child forked from this (large) process would
    otherwise inherit its high-water mark across exec."""
    rss_file = None
    if TIME:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        argv = [TIME, "-f", "%M", "-o", rss_file, *map(str, argv)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, c=c: c.append(s.read())) for s, c in
               ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{b''.join(err_chunks).decode()[-2000:]}")
    peak_kb = usage.ru_maxrss
    if rss_file:
        peak_kb = int(Path(rss_file).read_text().split()[-1])
        os.unlink(rss_file)
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak_kb / 1024, 1),
            "stdout": b"".join(out_chunks).decode()}


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


FUNCTION_CODE = """
import json, sys
from server.engine.data import isolate
print(json.dumps({"count": isolate.convert_isolated(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])}))
"""


def run_function(src: Path, sf: str, df: str, out: Path) -> dict:
    r = timed([sys.executable, "-c", FUNCTION_CODE, str(src), sf, str(out), df], env=child_env())
    report = json.loads(r.pop("stdout").strip().splitlines()[-1])
    r["records"] = report["count"]
    return r


def run_exact(src: Path, sf: str, df: str, out: Path) -> dict:
    code = ("import sys\nfrom server.engine import formats\n"
            "print(formats.convert(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], exact=True))\n")
    r = timed([sys.executable, "-c", code, str(src), sf, str(out), df], env=child_env())
    r.pop("stdout")
    return r


def pipeline_workspace(root: Path, src: Path, sf: str, df: str) -> Path:
    """A workspace whose pipeline hands `src` (as `sf`) over an edge to a node that reads `df`."""
    import yaml

    ws = root / f"ws-{sf}-{df}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    doc = {"version": 1, "name": f"conv-{sf}-{df}", "nodes": [
        {"id": "make", "runtime": "command", "command": ["ln", "-f", str(src), f"rows.{EXT[sf]}"],
         "outputs": [{"name": "rows", "file": f"rows.{EXT[sf]}", "format": sf}]},
        {"id": "take", "runtime": "command", "command": ["true"],
         "inputs": [{"name": "rows", "file": f"rows.{EXT[df]}", "format": df}]},
    ], "edges": [{"from": "make.rows", "to": "take.rows"}]}
    (ws / "conv.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def run_pipeline(ws: Path) -> dict:
    r = timed([sys.executable, "-m", "server.cli", "run", "conv.pipeline.yaml", "--force", "--json"], cwd=ws,
              env=child_env())
    run = json.loads(r.pop("stdout"))
    bad = {n: s for n, s in run.get("nodes", {}).items() if s.get("status") != "succeeded"}
    if bad:
        raise RuntimeError(f"pipeline failed: {bad}")
    return r


def run_duckdb(src: Path, sf: str, df: str, out: Path, threads: int | None = None) -> dict:
    read = {"json": "read_json_auto('{p}')", "ndjson": "read_json_auto('{p}', format='newline_delimited')",
            "csv": "read_csv_auto('{p}')", "parquet": "read_parquet('{p}')"}[sf].format(p=src)
    fmt = {"json": "FORMAT json, ARRAY true", "ndjson": "FORMAT json", "csv": "FORMAT csv, HEADER true",
           "parquet": "FORMAT parquet"}[df]
    setup = f"duckdb.sql('SET threads={threads}')\n" if threads else ""
    code = f"import duckdb\n{setup}duckdb.sql(\"COPY (SELECT * FROM {read}) TO '{out}' ({fmt})\")\n"
    r = timed([sys.executable, "-c", code])
    r.pop("stdout")
    return r


PYARROW_CODE = {
    ("ndjson", "parquet"): """
import pyarrow.json as pj, pyarrow.parquet as pq, sys
r = pj.open_json(sys.argv[1]); w = None
for b in r:
    w = w or pq.ParquetWriter(sys.argv[2], b.schema)
    w.write_batch(b)
w.close()
""",
    ("csv", "parquet"): """
import pyarrow.csv as pc, pyarrow.parquet as pq, sys
r = pc.open_csv(sys.argv[1]); w = pq.ParquetWriter(sys.argv[2], r.schema)
for b in r:
    w.write_batch(b)
w.close()
""",
}


def run_pyarrow(src: Path, sf: str, df: str, out: Path) -> dict | str:
    code = PYARROW_CODE.get((sf, df))
    if code is None:
        return (f"pyarrow has no streaming {sf} reader" if sf == "json" or df == "json" else
                f"pyarrow cannot write nested columns (lists, structs) to {df}" if df == "csv" else
                f"pyarrow has no streaming {sf} reader and {df} writer pair")
    r = timed([sys.executable, "-c", code, str(src), str(out)])
    r.pop("stdout")
    return r


def gil_figures(src: Path, out_dir: Path) -> dict:
    """Rate of a pure-Python thread alone, beside an in-process conversion, and beside one in a child."""
    from server.engine import formats
    from server.engine.data import isolate

    def rate_while(work) -> tuple[float, float]:
        stop = threading.Event()
        counts = [0]

        def spin() -> None:
            n = 0
            while not stop.is_set():
                for _ in range(1000):
                    n += 1
            counts[0] = n

        t = threading.Thread(target=spin)
        t0 = time.perf_counter()
        t.start()
        work()
        stop.set()
        t.join()
        took = time.perf_counter() - t0
        return counts[0] / took, took

    alone, _ = rate_while(lambda: time.sleep(3))
    inproc, t_in = rate_while(lambda: formats.convert(src, "json", out_dir / "gil-in.csv", "csv"))
    child, t_child = rate_while(lambda: isolate.convert_isolated(src, "json", out_dir / "gil-child.csv", "csv",
                                                                 threshold=0))
    return {"source_mb": round(src.stat().st_size / 1e6, 1), "thread_rate_alone": round(alone),
            "beside_in_process": {"rate": round(inproc), "ratio_to_alone": round(inproc / alone, 3),
                                  "conversion_s": round(t_in, 2)},
            "beside_child": {"rate": round(child), "ratio_to_alone": round(child / alone, 3),
                             "conversion_s": round(t_child, 2)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="size of the generated JSON array (default 1000)")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "pipeloom-conversions-bench",
                    help="where the generated sources are cached (default: a folder under the temp dir)")
    ap.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated src:dst pairs")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the CLI pipeline runs")
    ap.add_argument("--exact", action="store_true", help="also time the record-by-record path (slow)")
    ap.add_argument("--gil", action="store_true", help="also measure the cost to other threads")
    ap.add_argument("--gil-mb", type=int, default=100, help="source size for --gil (default 100)")
    ap.add_argument("--duckdb-threads", type=int, help="duckdb's thread count (default: all cores)")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    args = ap.parse_args()

    try:
        import duckdb
        duck_version = duckdb.__version__
    except ImportError:
        duck_version = None
    import pyarrow

    src = sources(args.data, args.size_mb)
    work = Path(tempfile.mkdtemp(prefix="pipeloom-conv-out-", dir=args.data))
    figures: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "size_mb": round(src["json"].stat().st_size / 1e6, 1), "duckdb": duck_version,
                     "pyarrow": pyarrow.__version__, "pairs": {},
                     "duckdb_threads": args.duckdb_threads or os.cpu_count(), "function_processes": 1}
    if duck_version is None:
        figures["duckdb_skipped"] = "duckdb is not installed: pip install 'pipeloom[bench]'"
    baselines: dict[str, dict] = {}
    try:
        for pair in args.pairs.split(","):
            sf, df = pair.split(":")
            out = work / f"out.{EXT[df]}"
            row: dict = {"source_mb": round(src[sf].stat().st_size / 1e6, 1)}
            row["function"] = run_function(src[sf], sf, df, out)
            out.unlink(missing_ok=True)
            if args.exact:
                row["exact_path"] = run_exact(src[sf], sf, df, out)
                out.unlink(missing_ok=True)
            if not args.no_pipeline:
                if sf not in baselines:
                    baselines[sf] = run_pipeline(pipeline_workspace(work, src[sf], sf, sf))
                p = run_pipeline(pipeline_workspace(work, src[sf], sf, df))
                shutil.rmtree(work / f"ws-{sf}-{df}", ignore_errors=True)
                row["pipeline"] = {**p, "baseline_wall_s": baselines[sf]["wall_s"],
                                   "conversion_s": round(p["wall_s"] - baselines[sf]["wall_s"], 3)}
            if duck_version:
                row["duckdb"] = run_duckdb(src[sf], sf, df, out, args.duckdb_threads)
                out.unlink(missing_ok=True)
                row["function_vs_duckdb"] = round(row["duckdb"]["wall_s"] / row["function"]["wall_s"], 2)
                if "pipeline" in row:
                    row["pipeline_vs_duckdb"] = round(row["duckdb"]["wall_s"] / row["pipeline"]["conversion_s"], 2)
            pa_row = run_pyarrow(src[sf], sf, df, out)
            out.unlink(missing_ok=True)
            row["pyarrow"] = pa_row if isinstance(pa_row, dict) else {"skipped": pa_row}
            figures["pairs"][pair] = row
            print(_line(pair, row), file=sys.stderr)
        if args.gil:
            gsrc = sources(args.data, args.gil_mb)["json"]
            figures["gil"] = gil_figures(gsrc, work)
            print(f"gil: {figures['gil']}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


def _line(pair: str, row: dict) -> str:
    parts = [f"{pair:16}", f"function {row['function']['wall_s']:7.2f}s {row['function']['peak_rss_mb']:6.0f}MB"]
    if "pipeline" in row:
        parts.append(f"pipeline {row['pipeline']['conversion_s']:7.2f}s")
    if "duckdb" in row:
        parts.append(f"duckdb {row['duckdb']['wall_s']:7.2f}s {row['duckdb']['peak_rss_mb']:6.0f}MB"
                     f"  (duckdb/function {row['function_vs_duckdb']}x)")
    if "wall_s" in row.get("pyarrow", {}):
        parts.append(f"pyarrow {row['pyarrow']['wall_s']:6.2f}s")
    return "  ".join(parts)


if __name__ == "__main__":
    main()
