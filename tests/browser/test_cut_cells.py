"""A table preview shows that a huge cell was cut, how big it is, and loads the rest on request."""

from __future__ import annotations

import os

from .conftest import one_step_pipeline, select_node
from .test_studio import wait_status

CELL = 300_000
BIG_CELL_PY = f'''\
import csv
with open("rows.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "payload", "note"])
    w.writerow(["1", "start-" + "abcdefghij" * {CELL // 10}, "small"])
    w.writerow(["2", "short", "fine"])
'''


def test_a_cut_cell_shows_its_size_and_loads_in_pages(studio, workspace, tmp_path):
    pid = one_step_pipeline(workspace, "cells", "dump", "Dump rows", BIG_CELL_PY,
                            {"name": "rows", "file": "rows.csv", "format": "csv"})
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "dump", ("succeeded",))
    select_node(page, "dump")
    preview = page.locator('[data-testid="preview"]')
    cut = preview.locator("td.cell-cut")
    cut.wait_for()
    assert cut.count() == 1
    assert cut.get_attribute("data-cut-record") == "0" and cut.get_attribute("data-cut-column") == "payload"
    assert "cut (293 KB)" in cut.inner_text()
    assert "300,006 characters" in cut.get_attribute("title")
    assert preview.locator("tbody tr").first.locator("td").nth(3).inner_text() == "small"
    cut.get_by_role("button", name="Show all").click()
    viewer = preview.locator('[data-testid="cell-viewer"]')
    status = viewer.locator(".cell-viewer-status")
    page.wait_for_function("() => /showing 65,536 of 300,006/.test("
                           "document.querySelector('.cell-viewer-status')?.textContent || '')")
    assert "Row 1, column “payload”" in viewer.inner_text()
    page.evaluate("() => { document.querySelector('.preview-view').scrollLeft = 0; }")
    viewer.scroll_into_view_if_needed()
    shot = tmp_path / "cut-cell.png"
    page.screenshot(path=str(shot))
    if os.environ.get("PIPELOOM_SHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SHOT_DIR"], "cut-cell.png"))
    for _ in range(4):
        viewer.get_by_role("button", name="Load more").click()
    page.wait_for_function("() => /showing 300,006 of 300,006/.test("
                           "document.querySelector('.cell-viewer-status')?.textContent || '')")
    assert viewer.get_by_role("button", name="Load more").is_hidden()
    text = viewer.locator(".cell-viewer-text").inner_text()
    assert len(text) == CELL + 6 and text.startswith("start-abcdefghij") and "error" not in status.inner_text()
