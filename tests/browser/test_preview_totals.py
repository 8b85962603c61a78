"""A large output's exact record count, counted by the server after the run, reaches the edge label and
the preview pager; the pager's Last button jumps to the end of the file."""

from __future__ import annotations

import os

from .conftest import select_node, write, write_pipeline
from .test_studio import wait_status

ROWS = 150_000  # about 8 MB: too big for the runner to count while the run goes on
MAKE_PY = f'''\
import json
with open("rows.ndjson", "w") as fh:
    for i in range({ROWS}):
        fh.write(json.dumps({{"id": i, "sensor": f"sensor-{{i % 7}}", "note": "a [bracket], a comma"}}) + "\\n")
print("wrote {ROWS} rows")
'''
TALLY_SH = 'wc -l < rows.ndjson > count.txt\n'


def test_the_exact_total_shows_on_the_edge_and_in_the_pager(studio, workspace, tmp_path):
    write(workspace, "make.py", MAKE_PY)
    write(workspace, "tally.sh", TALLY_SH)
    pid = write_pipeline(workspace, "totals", {
        "version": 1, "name": "Totals",
        "nodes": [
            {"id": "make", "runtime": "python", "title": "Make rows", "source": "make.py",
             "outputs": [{"name": "rows", "file": "rows.ndjson", "format": "ndjson"}]},
            {"id": "tally", "runtime": "shell", "title": "Count them", "source": "tally.sh",
             "inputs": [{"name": "rows", "file": "rows.ndjson", "format": "ndjson"}],
             "outputs": [{"name": "count", "file": "count.txt", "format": "text"}]},
        ],
        "edges": [{"from": "make.rows", "to": "tally.rows"}],
    })
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "tally", ("succeeded",))
    label = '[data-edge="make.rows->tally.rows"] .edge-label'
    page.wait_for_function(f"() => /150,000 records/.test(document.querySelector('{label}')?.textContent || '')",
                           timeout=60_000)
    select_node(page, "make")
    preview = page.locator('[data-testid="preview"]')
    rng = preview.locator('[data-testid="preview-range"]')
    page.wait_for_function("() => /of 150,000$/.test(document.querySelector("
                           "'[data-testid=\"preview\"] [data-testid=\"preview-range\"]')?.textContent || '')",
                           timeout=60_000)
    assert rng.inner_text() == "rows 1–50 of 150,000"
    assert "150,000 records" in preview.locator('[data-testid="preview-facts"]').inner_text()
    preview.get_by_role("button", name="Last page").click()
    page.wait_for_function("() => /rows 149,951–150,000 of 150,000/.test(document.querySelector("
                           "'[data-testid=\"preview\"] [data-testid=\"preview-range\"]')?.textContent || '')")
    last_row = preview.locator("tbody tr").last
    assert last_row.locator("td").first.inner_text() == "150,000"
    assert last_row.locator("td").nth(1).inner_text() == "149999"
    shot = tmp_path / "preview-totals.png"
    page.screenshot(path=str(shot))
    if os.environ.get("PIPELOOM_SHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SHOT_DIR"], "preview-totals.png"))
    assert not studio.errors
