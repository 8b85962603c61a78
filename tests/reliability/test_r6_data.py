"""R6 (data): a 20,000-deep JSON output and a 10 MB CSV cell, through a real `pipeloom run`, an edge
conversion and the preview, in bounded memory and with clear errors.

Memory is the peak resident set (ru_maxrss) of a fresh process doing the work, measured by a parent
that does nothing else (RUSAGE_CHILDREN), minus the same measure for the same work on a small file:
imports and start-up cost the same in both, so the difference is what the data costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.reliability

DEPTH = 20_000
CELL = 10 * 1024 * 1024
GROWTH_MB = 100
# A safety net for the machine: a reader that regresses to memory in the square of the depth fails
# here with MemoryError instead of taking gigabytes from everyone else.
ADDRESS_SPACE = 3 << 30

_MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
    p = subprocess.run(sys.argv[1:], capture_output=True, text=True, preexec_fn=cap)
    print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr,
                      "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
""") % (ADDRESS_SPACE, ADDRESS_SPACE)


def measured(argv: list[str], cwd: Path) -> dict:
    """Run argv in a fresh process; its exit code, output and peak RSS (its own or its children's) in MB."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    out["peak_mb"] = out["peak_kb"] / 1024
    return out


def cli_run(ws: Path, pipeline: Path) -> dict:
    """`pipeloom run --json --force` in a fresh process; the measure plus the parsed run."""
    m = measured([sys.executable, "-m", "server.cli", "run", "--json", "--force", "-w", str(ws), str(pipeline)], ws)
    assert m["out"].strip(), m["err"][-3000:]
    m["run"] = json.loads(m["out"])
    return m


def preview_run(path: Path, fmt: str, cell: tuple[int, str] | None = None) -> dict:
    """preview_file (and cell_value when asked) in a fresh process: the measure plus page sizes and errors."""
    code = textwrap.dedent(f"""
        import json
        from server.engine import preview
        page = preview.preview_file({str(path)!r}, {fmt!r})
        out = {{"page_bytes": len(json.dumps(page)), "error": page.get("error"), "cut": page.get("cut_cells")}}
        cell = {cell!r}
        if cell:
            part = preview.cell_value({str(path)!r}, {fmt!r}, cell[0], cell[1])
            out["cell_page_bytes"] = len(json.dumps(part))
            out["cell_chars"] = part["chars"]
        print(json.dumps(out))
    """)
    m = measured([sys.executable, "-c", code], path.parent)
    assert m["rc"] == 0, m["err"][-3000:]
    m["result"] = json.loads(m["out"])
    return m


def two_nodes(ws: Path, name: str, make_code: str, out_file: str, out_fmt: str, in_fmt: str) -> Path:
    """`make` writes out_file; `take` reads it across an edge as in_fmt (a conversion) and counts bytes."""
    (ws / f"{name}_make.py").write_text(make_code)
    (ws / f"{name}_take.py").write_text(
        "import os\nn = os.path.getsize(os.environ['PIPELOOM_INPUT_DATA'])\nopen('n.txt', 'w').write(str(n))\n")
    doc = {"version": 1, "name": name, "nodes": [
        {"id": "make", "runtime": "python", "source": f"{name}_make.py",
         "outputs": [{"name": "data", "file": out_file, "format": out_fmt}]},
        {"id": "take", "runtime": "python", "source": f"{name}_take.py",
         "inputs": [{"name": "data", "format": in_fmt}],
         "outputs": [{"name": "n", "file": "n.txt", "format": "text"}]},
    ], "edges": [{"from": "make.data", "to": "take.data"}]}
    path = ws / f"{name}.pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def output_path(run: dict, node: str, port: str, ws: Path) -> Path:
    outputs = run["nodes"][node]["outputs"]
    return Path(outputs[port]) if Path(outputs[port]).is_absolute() else ws / outputs[port]


def test_r6_a_twenty_thousand_deep_json_output(workspace, figure):
    flat = "open('deep.json', 'w').write('[{\"v\": [[1]]}]')\n"
    write = "open('deep.json', 'w').write('[' * {n} + ']' * {n})\n"
    small = cli_run(workspace, two_nodes(workspace, "flat", flat, "deep.json", "json", "ndjson"))
    deep = cli_run(workspace, two_nodes(workspace, "deep", write.format(n=DEPTH), "deep.json", "json", "ndjson"))
    assert small["run"]["nodes"]["take"]["status"] == "succeeded", small["run"]
    growth = round(deep["peak_mb"] - small["peak_mb"], 1)
    make, take = deep["run"]["nodes"]["make"], deep["run"]["nodes"]["take"]
    figure("R6", "20,000-deep JSON through `pipeloom run` and an edge: memory growth (MB)", growth,
           target=f"< {GROWTH_MB}", ok=growth < GROWTH_MB,
           detail=f"peak RSS {deep['peak_mb']:.0f} MB vs {small['peak_mb']:.0f} MB for a one-record file")
    consumer_msg = take.get("message") or ""
    clear = (take["status"] == "failed" and "deep.json" in consumer_msg and "nested too deeply" in consumer_msg
             and "1,000" in consumer_msg and "edge make.data → take.data (json → ndjson)" in consumer_msg)
    producer_msg = make.get("message") or ""
    figure("R6", "20,000-deep JSON: the consumer's error names the edge, the file and the limit", clear,
           target="True", ok=clear, detail=consumer_msg[:160])
    assert growth < GROWTH_MB
    assert clear, take
    assert make["status"] == "succeeded" and "nested too deeply" in producer_msg and "deep.json" in producer_msg

    file = output_path(deep["run"], "make", "data", workspace)
    base = preview_run(output_path(small["run"], "make", "data", workspace), "json")
    seen = preview_run(file, "json")
    pgrowth = round(seen["peak_mb"] - base["peak_mb"], 1)
    error = seen["result"]["error"] or ""
    figure("R6", "20,000-deep JSON through the preview: memory growth (MB)", pgrowth, target=f"< {GROWTH_MB}",
           ok=pgrowth < GROWTH_MB, detail=f"error shown: {error[:120]}")
    assert pgrowth < GROWTH_MB
    assert "deep.json" in error and "nested too deeply" in error and "1,000" in error


def test_r6_a_ten_megabyte_csv_cell(workspace, figure):
    write = ("import csv\nw = csv.writer(open('wide.csv', 'w', newline=''))\nw.writerow(['id', 'blob'])\n"
             "w.writerow(['1', 'x' * {n}])\nw.writerow(['2', 'y'])\n")
    small = cli_run(workspace, two_nodes(workspace, "thin", write.format(n=10), "wide.csv", "csv", "json"))
    wide = cli_run(workspace, two_nodes(workspace, "wide", write.format(n=CELL), "wide.csv", "csv", "json"))
    for m in (small, wide):
        assert m["run"]["nodes"]["take"]["status"] == "succeeded", m["run"]
    converted = int(output_path(wide["run"], "take", "n", workspace).read_text())
    growth = round(wide["peak_mb"] - small["peak_mb"], 1)
    figure("R6", "10 MB CSV cell through `pipeloom run` and a csv → json edge: memory growth (MB)", growth,
           target=f"< {GROWTH_MB}", ok=growth < GROWTH_MB,
           detail=f"peak RSS {wide['peak_mb']:.0f} MB vs {small['peak_mb']:.0f} MB; {converted:,} bytes of JSON")
    assert growth < GROWTH_MB
    assert converted > CELL

    base = preview_run(output_path(small["run"], "make", "data", workspace), "csv", (0, "blob"))
    seen = preview_run(output_path(wide["run"], "make", "data", workspace), "csv", (0, "blob"))
    pgrowth = round(seen["peak_mb"] - base["peak_mb"], 1)
    res = seen["result"]
    biggest = max(res["page_bytes"], res["cell_page_bytes"])
    figure("R6", "10 MB CSV cell through the preview and the cell route: memory growth (MB)", pgrowth,
           target=f"< {GROWTH_MB}", ok=pgrowth < GROWTH_MB, detail="one preview page and one cell page")
    figure("R6", "10 MB CSV cell: largest page sent (bytes)", biggest, target="< 100,000", ok=biggest < 100_000,
           detail=f"preview page {res['page_bytes']:,} B (cell cut at 4 KiB), cell page {res['cell_page_bytes']:,} B"
                  " (64 KiB of text)")
    assert pgrowth < GROWTH_MB and biggest < 100_000
    assert res["error"] is None and res["cut"] == [
        {"record": 0, "column": "blob", "type": "string", "chars": CELL, "bytes": CELL}]
    assert res["cell_chars"] == CELL
