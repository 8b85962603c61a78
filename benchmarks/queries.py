"""Sorting, filtering and searching a large output (the preview queries), in-process, against `wc -l` and a
plain Python parse of the same file in the same run.

    python benchmarks/queries.py [--size-mb 1000] [--format ndjson|csv] [--json out.json]

For one file of about --size-mb it times:

- the first sorted page (the file streamed into its query database, then sorted on disk),
- a second query on the same file (a filter plus a search: the database is already there),
- a far page of the kept sorted answer (median of 5),

and the process's peak memory growth over all of it (ru_maxrss), against the file's size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RECORD = ('{"id": %d, "sensor": "sensor-%d", "value": %d.5, "label": "%s", "tags": ["a", "b"], '
          '"meta": {"unit": "\\u00b0C", "zone": "Zo\\u00eb"}, "note": "reading, [%d] {ok}"}')
LABELS = ["normal", "normal", "warning", "normal", "critical"]


def write_file(path: Path, fmt: str, size_mb: int) -> int:
    target, n, size = size_mb * 1_000_000, 0, 0
    with open(path, "w", newline="") as f:
        if fmt == "csv":
            f.write("id,sensor,value,label,note\n")
        while size < target:
            if fmt == "csv":
                chunk = "".join(f'{i},sensor-{i % 7},{(i * 7919) % 1000003}.5,{LABELS[i % 5]},"reading, [{i}]"\n'
                                for i in range(n, n + 20_000))
            else:
                chunk = "\n".join(RECORD % (i, i % 7, (i * 7919) % 1000003, LABELS[i % 5], i)
                                  for i in range(n, n + 20_000)) + "\n"
            f.write(chunk)
            size += len(chunk)
            n += 20_000
    return n


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1000)
    ap.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    from server.engine.data.query import Queries, Query

    with tempfile.TemporaryDirectory(prefix="pipeloom-bench-") as d:
        path = Path(d) / f"big.{args.format}"
        n = write_file(path, args.format, args.size_mb)
        size = path.stat().st_size
        wc_s, _ = timed(lambda: subprocess.run(["wc", "-l", str(path)], check=True, capture_output=True))

        def parse_all():
            if args.format == "csv":
                import csv
                with open(path, newline="") as f:
                    return sum(1 for _ in csv.DictReader(f))
            with open(path, "rb") as f:
                return sum(1 for line in f if json.loads(line) is not None)

        parse_s, _ = timed(parse_all)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        qs = Queries(Path(d) / "query")
        by_value = Query(sort="value", order="desc")
        first_s, page = timed(lambda: qs.page(path, args.format, "bench", by_value, 0, 50, wait=3600))
        assert page["total"] == n, page.get("total")
        filt = Query(sort="id", filters=(("label", "eq", "critical"),), q="sensor-3")
        second_s, fpage = timed(lambda: qs.page(path, args.format, "bench", filt, 0, 50, wait=3600))
        far = []
        for _ in range(5):
            s, p = timed(lambda: qs.page(path, args.format, "bench", by_value, n - 100, 50, wait=3600))
            far.append(s)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        db = sum(p.stat().st_size for p in (Path(d) / "query").glob("*"))
        figures = {
            "format": args.format, "size_mb": round(size / 1e6), "records": n,
            "wc_l_s": round(wc_s, 2), "python_parse_s": round(parse_s, 2),
            "first_sorted_page_s": round(first_s, 1), "second_query_s": round(second_s, 1),
            "far_page_warm_ms": round(statistics.median(far) * 1000, 1),
            "first_page_vs_python_parse": round(first_s / parse_s, 2),
            "peak_growth_mb": round((peak - base) / 1024, 1), "query_db_mb": round(db / 1e6),
            "filtered_total": fpage["total"],
        }
        print(json.dumps(figures, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
