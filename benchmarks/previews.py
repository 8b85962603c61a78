"""Preview pages of ~1 GB json, ndjson and csv outputs, over HTTP from `pipeloom serve`, against
`sed -n`, `wc -l` and a plain Python scan of the same files in the same run.

    python benchmarks/previews.py [--size-mb 1000] [--offset 5000000] [--json out.json]

A pipeline of three shell steps copies the three files into a run (`pipeloom run`, cold CLI; the run
indexes its large outputs as it publishes them, and finishes the indexes before it exits); then a fresh
`pipeloom serve` is timed over HTTP for each output, as a user meets it:

- the first page (offset 0) and the page at `--offset`, the first requests the server sees,
- the exact total (from the first request until a page says `total_known`; 0 when the first page knew it),
- the far page again, warm (median of 5), and after a server restart (the index read back from disk),
- the index build itself (the scan that gives the exact total), timed in this process into a fresh folder,
  and the compiled scanner alone (`pipeloom-convert --scan`, without the Python around it), against `wc -l`
  and a plain Python block scan of the same file: each the best of 3, taken in turns, with the file in the
  page cache for all of them,

and the server's resident memory growth over all of it (VmRSS, from after a first small preview). Figures are ratios against the
baselines measured on the same files just before.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-previews"
RECORD = ('{"id": %d, "sensor": "sensor-%d", "value": %d.5, "ok": %s, "tags": ["a", "b"], '
          '"meta": {"unit": "\\u00b0C", "zone": "Zo\\u00eb"}, "note": "reading, [%d] {ok}"}')
PAGE = 50


def write_files(d: Path, size_mb: int) -> dict[str, int]:
    """ndjson, then the same records as a JSON array, then csv rows; returns record counts."""
    target = size_mb * 1_000_000
    counts = {}
    n = size = 0
    with open(d / "big.ndjson", "w") as nd, open(d / "big.json", "w") as js:
        js.write("[\n")
        while size < target:
            chunk = "\n".join(RECORD % (i, i % 7, i, "true" if i % 2 else "false", i) for i in range(n, n + 20_000))
            nd.write(chunk + "\n")
            js.write((",\n" if n else "") + chunk.replace("}\n{", "},\n{"))
            size += len(chunk) + 1
            n += 20_000
        js.write("\n]\n")
    counts["ndjson"] = counts["json"] = n
    n = size = 0
    with open(d / "big.csv", "w", newline="") as f:
        f.write("id,sensor,value,note\n")
        while size < target:
            chunk = "".join(f'{i},sensor-{i % 7},{i}.5,"reading, number ""{i}"""\n' for i in range(n, n + 20_000))
            f.write(chunk)
            size += len(chunk)
            n += 20_000
    counts["csv"] = n
    return counts


def timed(cmd: list[str], **kw) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    return time.perf_counter() - t0, out.stdout


def python_scan(path: Path) -> float:
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return time.perf_counter() - t0


def best_of(n: int, *timers):
    """The best time of each timer over `n` rounds, the timers taken in turns (so that a busy moment of the
    machine does not fall on one of them only)."""
    best = [float("inf")] * len(timers)
    for _ in range(n):
        for i, t in enumerate(timers):
            best[i] = min(best[i], t())
    return best


def scanner_alone(path: Path, fmt: str) -> float:
    """Seconds the compiled scanner takes by itself, started as pageindex.py starts it."""
    sys.path.insert(0, str(REPO))
    from server.engine.data import native, scan

    exe = native.binary()
    if exe is None:
        return float("nan")
    return timed([exe, "--scan", str(path), fmt, str(scan.BLOCK)])[0]


def index_build(path: Path, fmt: str, root: Path) -> tuple[float, int | None]:
    """Seconds to build the page index of `path` into a fresh folder (what gives the exact total), and the total."""
    sys.path.insert(0, str(REPO))
    from server.engine.data import pageindex

    store = pageindex.PageIndexes(root)
    t0 = time.perf_counter()
    got = store.get(path, fmt, f"bench-{fmt}")
    idx = got.wait_for(10**15, 600) if isinstance(got, pageindex.Build) else got
    took = time.perf_counter() - t0
    store.close()
    return took, idx.total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, ws: Path):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workspace", str(ws), "--port",
                                      str(self.port), "--token", TOKEN], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/api/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def get(self, path: str) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{self.port}"})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
        finally:
            conn.close()

    def timed_get(self, path: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        status, body = self.get(path)
        took = time.perf_counter() - t0
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body}")
        return took, body

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_run(ws: Path) -> str:
    nodes = []
    for fmt in ("json", "ndjson", "csv"):
        (ws / f"copy_{fmt}.sh").write_text(f'cp "$PIPELOOM_WORKSPACE_DATA/big.{fmt}" out.{fmt}\n')
        nodes.append({"id": f"make_{fmt}", "runtime": "shell", "source": f"copy_{fmt}.sh",
                      "outputs": [{"name": "out", "format": fmt, "file": f"out.{fmt}"}]})
    (ws / "small.sh").write_text("printf '[{\"n\": 1}]' > out.json\n")
    nodes.append({"id": "small", "runtime": "shell", "source": "small.sh",
                  "outputs": [{"name": "out", "format": "json", "file": "out.json"}]})
    (ws / "previews.pipeline.json").write_text(json.dumps({"version": 1, "name": "previews", "nodes": nodes,
                                                           "edges": []}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIPELOOM_WORKSPACE_DATA": str(ws / "data")}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "server.cli", "run", "previews.pipeline.json", "--json"], cwd=ws,
                         env=env, capture_output=True, text=True)
    print(f"pipeloom run (3 copies and their page indexes): {time.perf_counter() - t0:.2f} s")
    if out.returncode != 0:
        raise SystemExit(f"pipeloom run failed:\n{out.stderr}\n{out.stdout}")
    return json.loads(out.stdout)["run_id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="size of each file (default 1000)")
    ap.add_argument("--offset", type=int, default=5_000_000, help="the far page's offset (default 5,000,000)")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="pipeloom-previews-bench-"))
    figures: dict = {"size_mb": args.size_mb, "machine": f"{os.cpu_count()} cores", "formats": {}}
    try:
        (ws / "data").mkdir()
        t0 = time.perf_counter()
        counts = write_files(ws / "data", args.size_mb)
        print(f"wrote 3 files of ~{args.size_mb} MB in {time.perf_counter() - t0:.0f} s: {counts}")
        run_id = make_run(ws)
        shutil.rmtree(ws / "data")
        run_dir = ws / ".pipeloom" / "runs" / run_id
        srv = Server(ws)
        srv.timed_get(f"/api/runs/{run_id}/nodes/small/outputs/out")  # the preview code loaded, as in use
        rss0 = srv.rss_mb()
        peak = rss0
        for fmt in ("json", "ndjson", "csv"):
            path = run_dir / f"make_{fmt}" / f"out.{fmt}"
            total = counts[fmt]
            offset = min(args.offset, total - PAGE)
            line = offset + 2 if fmt != "ndjson" else offset + 1  # the record's first physical line
            for _ in range(2):  # the page cache holds the file for baselines and server alike
                python_scan(path)
            sed_s, _ = timed(["sed", "-n", f"{line},{line + PAGE - 1}p;{line + PAGE}q", str(path)])
            builds = iter(range(3))

            def build() -> float:
                took, built_total = index_build(path, fmt, ws / f"fresh-index-{fmt}-{next(builds)}")
                assert built_total == total, (fmt, built_total, total)
                return took

            wc_s, scan_s, scanner_s, build_s = best_of(3, lambda: timed(["wc", "-l", str(path)])[0],
                                                       lambda: python_scan(path), lambda: scanner_alone(path, fmt),
                                                       build)
            gb = path.stat().st_size / 1e9
            url = f"/api/runs/{run_id}/nodes/make_{fmt}/outputs/out"
            t_start = time.perf_counter()
            first_s, first = srv.timed_get(f"{url}?offset=0&limit={PAGE}")
            far_cold_s, far = srv.timed_get(f"{url}?offset={offset}&limit={PAGE}")
            ids = [int(r["id"]) for r in far["items"]]
            assert ids == list(range(offset, offset + PAGE)), (fmt, ids[:3])
            page = far
            while not page.get("total_known"):
                time.sleep(0.02)
                _, page = srv.timed_get(f"{url}?offset=0&limit=1")
            total_s = time.perf_counter() - t_start
            assert page["total"] == total, (fmt, page["total"], total)
            warm = [srv.timed_get(f"{url}?offset={offset}&limit={PAGE}")[0] for _ in range(5)]
            peak = max(peak, srv.rss_mb())
            figures["formats"][fmt] = {
                "records": total, "bytes": path.stat().st_size, "offset": offset,
                "first_page_s": round(first_s, 4), "far_page_cold_s": round(far_cold_s, 4),
                "far_page_warm_s": round(statistics.median(warm), 4), "exact_total_s": round(total_s, 3),
                "sed_far_page_s": round(sed_s, 4), "wc_l_s": round(wc_s, 4), "python_scan_s": round(scan_s, 4),
                "total_known_at_first_page": bool(first.get("total_known")),
                "index_build_s": round(build_s, 3), "index_build_vs_wc_l": round(build_s / wc_s, 2),
                "index_build_s_per_gb": round(build_s / gb, 3), "wc_l_s_per_gb": round(wc_s / gb, 3),
                "scanner_alone_s": round(scanner_s, 3), "scanner_alone_vs_wc_l": round(scanner_s / wc_s, 2),
                "index_build_vs_python_scan": round(build_s / scan_s, 2),
                "total_vs_wc_l": round(total_s / wc_s, 2), "total_vs_python_scan": round(total_s / scan_s, 2),
                "warm_far_page_vs_sed": round(statistics.median(warm) / sed_s, 3),
            }
            print(f"{fmt:7} {total:>11,} records  first page {first_s * 1000:7.1f} ms  far page cold "
                  f"{far_cold_s * 1000:7.0f} ms, warm {statistics.median(warm) * 1000:6.1f} ms (sed -n "
                  f"{sed_s * 1000:6.0f} ms)  exact total {total_s:5.2f} s after the first request"
                  f"{' (known at once)' if first.get('total_known') else ''}")
            print(f"{'':7} index build {build_s / gb:.3f} s/GB = {build_s / wc_s:.2f}× wc -l ({wc_s / gb:.3f} s/GB), "
                  f"{build_s / scan_s:.2f}× a Python block scan ({scan_s / gb:.3f} s/GB); the scanner alone "
                  f"{scanner_s / gb:.3f} s/GB = {scanner_s / wc_s:.2f}× wc -l")
        figures["server_rss_growth_mb"] = round(peak - rss0, 1)
        print(f"server RSS: {rss0:.0f} MB at start, {peak:.0f} MB at most: growth {peak - rss0:.1f} MB")
        srv.stop()
        srv = Server(ws)
        for fmt in ("json", "ndjson", "csv"):
            offset = figures["formats"][fmt]["offset"]
            url = f"/api/runs/{run_id}/nodes/make_{fmt}/outputs/out"
            took, page = srv.timed_get(f"{url}?offset={offset}&limit={PAGE}")
            assert page["total_known"], fmt
            figures["formats"][fmt]["far_page_after_restart_s"] = round(took, 4)
            print(f"{fmt:7} after a restart (index from disk): far page {took * 1000:.1f} ms, total known")
        srv.stop()
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
