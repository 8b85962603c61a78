"""Previews of a large output in bounded memory: building the page index of a ~200 MB JSON array (and of
the same records as ndjson), then reading pages far into it, costs a fresh process less than 50 MB of
resident memory over the same work on a small file.

Memory is the peak resident set (ru_maxrss) of a fresh process, measured by a parent that does nothing
else (RUSAGE_CHILDREN), minus the same measure for a 1 MB file: imports cost the same in both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.reliability

GROWTH_MB = 50
RECORD = '{"id": %d, "s": "a [bracket], a \\"quote\\"", "n": [%d, {"x": "}"}], "pad": "%s"}'

_WORK = r"""
import json, resource, sys
from pathlib import Path
from server.engine.data import pageindex
from server.engine.data.preview import preview_file
path, fmt, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = pageindex.PageIndexes(path.parent / "index")
got = store.get(path, fmt, "key-" + path.name)
idx = got.wait_for(10**12, 300) if isinstance(got, pageindex.Build) else got
pages = [preview_file(path, fmt, off, 200, index=idx) for off in (0, n // 2, n - 100, n * 9 // 10)]
ok = all([r["id"] for r in p["items"]] == list(range(off, min(off + 200, n)))
         for p, off in zip(pages, (0, n // 2, n - 100, n * 9 // 10)))
store.close()
print(json.dumps({"total": idx.total, "ok": ok}))
"""

_MEASURE = r"""
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr[-2000:],
                  "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measured(path: Path, fmt: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-c", _WORK, str(path), fmt, str(n)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    got = json.loads(proc.stdout)
    assert got["rc"] == 0, got["err"]
    return {**got, **json.loads(got["out"])}


def write(path: Path, fmt: str, n: int) -> None:
    with open(path, "w") as f:
        if fmt == "json":
            f.write("[\n")
        for start in range(0, n, 10_000):
            rows = [RECORD % (i, i, "p" * 60) for i in range(start, min(n, start + 10_000))]
            if fmt == "json":
                f.write((",\n" if start else "") + ",\n".join(rows))
            else:
                f.write("\n".join(rows) + "\n")
        if fmt == "json":
            f.write("\n]\n")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_page_index_of_a_large_output_in_bounded_memory(tmp_path, figure, fmt):
    big_n, small_n = 1_500_000, 7_500
    big, small = tmp_path / f"big.{fmt}", tmp_path / f"small.{fmt}"
    write(big, fmt, big_n)
    write(small, fmt, small_n)
    assert big.stat().st_size > 190_000_000
    base = measured(small, fmt, small_n)
    got = measured(big, fmt, big_n)
    big.unlink()
    assert base["ok"] and base["total"] == small_n
    assert got["total"] == big_n and got["ok"], "pages read through the index must be the records asked for"
    growth = (got["peak_kb"] - base["peak_kb"]) / 1024
    figure("R-previews", f"memory growth, {fmt} page index + far pages (MB)", round(growth, 1),
           target=f"< {GROWTH_MB}", ok=growth < GROWTH_MB,
           detail=f"{big_n:,} records, {round(got['peak_kb'] / 1024)} MB peak against {round(base['peak_kb'] / 1024)} MB")
    assert growth < GROWTH_MB
