"""R6 (stdout): a node printing 1 GB keeps Pipeloom's memory flat and its log capped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.engine.util import shell_node, write_pipeline

pytestmark = pytest.mark.reliability

GB = 1024 ** 3
CAP = 64 * 1024 * 1024  # the default cap

# Runs the real CLI in this process and reports its resident memory once the engine is imported
# (the baseline) and at its peak (the kernel's high-water mark), so growth is what the run added.
WRAPPER = """
import atexit, json, sys
import server.cli, server.engine.runner, server.engine.store, server.engine.formats

def rss_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])

base = rss_kb("VmRSS")
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps({"base_kb": base, "peak_kb": rss_kb("VmHWM")})))
sys.argv = ["pipeloom", *sys.argv[2:]]
server.cli.main()
"""


def test_r6_one_gigabyte_of_stdout(workspace, tmp_path, figure):
    n, f = shell_node("loud", f"yes | head -c {GB}\necho '[]' > out.json\n")
    write_pipeline(workspace, {"version": 1, "name": "loud", "nodes": [n]}, f)
    mem = tmp_path / "mem.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PIPELOOM_LOG_CAP", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(mem), "run", "test.pipeline.yaml", "--json"],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    m = json.loads(mem.read_text())
    growth_mb = (m["peak_kb"] - m["base_kb"]) / 1024
    log = workspace / ".pipeloom" / "runs" / result["run_id"] / "_logs" / "loud.log"
    size = log.stat().st_size
    with open(log, "rb") as fh:
        fh.seek(max(0, size - 4096))
        tail = fh.read().decode(errors="replace")
    marked = "log truncated at" in tail and "lines were not kept" in tail

    figure("R6", "memory growth printing 1 GB of stdout (MB)", round(growth_mb, 1), target="< 100",
           ok=growth_mb < 100, detail=f"`yes | head -c 1G` in one shell node, via the CLI; {took:.1f}s")
    figure("R6", "log size on disk vs the 64 MiB cap (bytes over)", max(0, size - CAP - 4096), target="0",
           ok=size <= CAP + 4096, detail=f"{size:,} bytes, truncation marker {'present' if marked else 'MISSING'}")
    figure("R6", "run with 1 GB of stdout succeeds", result["status"], target="succeeded",
           ok=result["status"] == "succeeded")
    assert result["status"] == "succeeded"
    assert growth_mb < 100, f"the run grew Pipeloom's memory by {growth_mb:.0f} MB"
    assert size <= CAP + 4096 and marked, (size, tail[-300:])
    dropped = int(tail.rsplit("] ", 1)[1].split(" lines")[0].replace(",", ""))
    kept = sum(1 for _ in open(log, "rb")) - 2
    assert kept + dropped == GB // 2, "every line is either in the log or counted as not kept"
