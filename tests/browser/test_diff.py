"""What changed: the inspector says what a step did to its records, with the four counts and the records."""

from __future__ import annotations

import os

from .conftest import select_node, wait_status, write, write_pipeline

MAKE = '''import pipeloom
pipeloom.write("rows", [{"id": i, "v": i * 10} for i in range(12)])
'''
PICK = '''import pipeloom
out = []
for r in pipeloom.records("rows"):
    if r["id"] % 3 == 0:
        print(f"dropped id={r['id']}: a multiple of three")
        continue
    out.append(dict(r, label="warning") if r["id"] % 4 == 0 else r)
out.append({"id": 100, "v": 0})
pipeloom.write("kept", out)
'''


def test_what_changed_shows_the_counts_and_the_records(studio, workspace):
    write(workspace, "make.py", MAKE)
    write(workspace, "pick.py", PICK)
    pid = write_pipeline(workspace, "picks", {"version": 1, "name": "Picks", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "outputs": [{"name": "rows", "format": "json"}],
         "position": {"x": 40, "y": 60}},
        {"id": "pick", "runtime": "python", "source": "pick.py", "title": "Pick rows",
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "kept", "format": "json", "key": ["id"]}], "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "make.rows", "to": "pick.rows"}]})
    page = studio.open(pid)
    select_node(page, "pick")
    assert "Run the pipeline to see what this step does" in page.inner_text('[data-testid="diff"]')
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",))
    diff = page.locator('[data-testid="diff"][data-dropped]')
    diff.wait_for()
    counts = {k: diff.get_attribute(f"data-{k}") for k in ("dropped", "added", "changed", "unchanged")}
    # ids 0, 3, 6, 9 dropped; 4 and 8 labelled; 100 added; 1, 2, 5, 7, 10, 11 untouched
    assert counts == {"dropped": "4", "added": "1", "changed": "2", "unchanged": "6"}
    text = diff.inner_text()
    assert "This step dropped 4 of 12 records, changed 2 and added 1." in text
    assert "declared key id" in text
    items = diff.locator('.diff-item[data-kind="dropped"]')
    assert items.count() == 4
    assert "a multiple of three" in items.first.inner_text()  # the reason the step printed
    diff.get_by_role("tab", name="2 Changed").click()
    changed = diff.locator('.diff-item[data-kind="changed"]')
    changed.first.wait_for()
    assert changed.count() == 2
    row = changed.first.locator(".diff-fields tr").first
    assert row.locator("th").inner_text() == "label"
    assert row.locator(".diff-before").inner_text() == "absent" and row.locator(".diff-after").inner_text() == "warning"
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], "what-changed.png"))
