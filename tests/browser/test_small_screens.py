"""Laptop screens: card text stays readable, the top bar keeps its labels, the
palette makes the canvas narrower without hiding cards, and the inspector can
be made wider for tables and source."""

from __future__ import annotations

from .conftest import one_step_pipeline, report_pipeline, select_node, wait_status

# Cards whose rectangle leaves the canvas (screen coordinates).
CARDS_CUT = """() => {
  const canvas = document.getElementById('canvas').getBoundingClientRect();
  return [...document.querySelectorAll('.card')].filter((c) => {
    const r = c.getBoundingClientRect();
    return r.left < canvas.left - 1 || r.right > canvas.right + 1 || r.top < canvas.top - 1 || r.bottom > canvas.bottom + 1;
  }).map((c) => c.dataset.nodeId);
}"""

ZOOM = "() => window.pipeloomStudio.canvas.view.k"

WIDE_PY = '''\
import pipeloom
rows = [{f"column_{c:02d}": f"row {r} value {c}" for c in range(24)} for r in range(80)]
pipeloom.write("wide", rows)
'''


def test_a_laptop_screen_starts_at_a_readable_zoom(studio, workspace):
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    for size in ({"width": 1024, "height": 768}, {"width": 1280, "height": 800}):
        page = studio.open(created["id"], viewport=size)
        assert page.evaluate(ZOOM) >= 0.75, size
        # The pipeline's first step is in view, its title at a readable size.
        box = page.locator('.card[data-node-id="ingest"]').bounding_box()
        canvas = page.locator("#canvas").bounding_box()
        assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"]
        font = page.evaluate("""() => {
          const t = document.querySelector('.card[data-node-id=ingest] .card-title');
          return parseFloat(getComputedStyle(t).fontSize) * window.pipeloomStudio.canvas.view.k;
        }""")
        assert font >= 10, font
        # "Showing" still labels the run picker.
        assert page.locator("label.picker-label").is_visible()
        assert page.get_by_text("Showing", exact=True).is_visible()


def test_opening_the_palette_narrows_the_canvas_without_hiding_cards(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid, viewport={"width": 1024, "height": 768})
    assert page.locator("#palette.collapsed").count() == 1
    assert page.evaluate(CARDS_CUT) == []
    page.click("#palette-toggle")
    page.wait_for_selector("#palette:not(.collapsed)")
    page.wait_for_timeout(200)
    canvas = page.locator("#canvas-wrap").bounding_box()
    inspector = page.locator("#inspector").bounding_box()
    assert canvas["x"] + canvas["width"] <= inspector["x"] + 1
    assert page.evaluate(CARDS_CUT) == []
    assert page.evaluate(ZOOM) >= 0.75


def test_a_wide_table_scrolls_sideways_with_its_row_numbers_and_the_inspector_widens(studio, workspace):
    pid = one_step_pipeline(workspace, "wide", "wide", "Make a wide table", WIDE_PY,
                            {"name": "wide", "file": "wide.csv", "format": "csv"})
    page = studio.open(pid, viewport={"width": 1280, "height": 800})
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "wide", "succeeded")
    select_node(page, "wide")
    view = page.locator('[data-testid="preview"] .preview-view')
    page.wait_for_selector('[data-testid="preview"] table.data-table tbody tr')
    assert view.evaluate("v => v.scrollWidth > v.clientWidth + 100")
    # Scrolled sideways and down, the row numbers and the header stay in view.
    view.evaluate("v => { v.scrollLeft = 600; v.scrollTop = 400; }")
    page.wait_for_timeout(100)
    box = view.bounding_box()
    rownum = page.locator('[data-testid="preview"] tbody tr:nth-child(20) td.rownum').bounding_box()
    header = page.locator('[data-testid="preview"] thead th:nth-child(5)').bounding_box()
    assert abs(rownum["x"] - box["x"]) <= 2, (rownum, box)
    assert abs(header["y"] - box["y"]) <= 2, (header, box)

    # The inspector's edge can be dragged wider; the width is kept for the next visit.
    before = page.locator("#inspector").bounding_box()["width"]
    handle = page.locator("#inspector-resizer").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + 200
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 80, y)
    page.mouse.move(x - 160, y)
    page.mouse.up()
    wider = page.locator("#inspector").bounding_box()["width"]
    assert abs(wider - (before + 160)) <= 4, (before, wider)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert abs(page.locator("#inspector").bounding_box()["width"] - wider) <= 2
    # The keyboard moves it too.
    page.focus("#inspector-resizer")
    page.keyboard.press("ArrowRight")
    assert abs(page.locator("#inspector").bounding_box()["width"] - (wider - 16)) <= 2


# Labels in the top bar that run over more than one line (screen coordinates of each line of their text).
TOPBAR_WRAPPED = """() => [...document.querySelectorAll('.topbar button, .topbar label, .topbar h1')]
  .filter((el) => el.offsetParent !== null && el.textContent.trim())
  .filter((el) => {
    const tops = [];
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walk.nextNode())) {
      if (!node.data.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) if (r.width > 1) tops.push(r.top);
    }
    return tops.length && Math.max(...tops) - Math.min(...tops) > 6;
  }).map((el) => el.textContent.trim())"""


def test_the_top_bar_keeps_each_label_on_one_line_when_the_pipeline_has_problems(studio, workspace):
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    path = workspace / "sensor-alerts.pipeline.yaml"
    # an edge to a misspelt port: two problems, "Saved · version 1 · 2 problems", beside the demo's triggers
    path.write_text(path.read_text().replace("to: classify.events}", "to: classify.evnts}"))
    for width in (1440, 1400, 1280):
        page = studio.open(created["id"], viewport={"width": width, "height": 900})
        page.wait_for_selector('#save-state[data-state="problems"]')
        assert "2 problems" in page.inner_text("#save-state")
        assert page.evaluate(TOPBAR_WRAPPED) == [], width
        # and nothing is pushed past the window's right edge
        assert page.evaluate("() => document.querySelector('.topbar').scrollWidth") <= width, width
        assert page.locator("#autorun").evaluate("e => e.closest('label').getBoundingClientRect().right") <= width
