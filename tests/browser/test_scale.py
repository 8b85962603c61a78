"""The studio stays usable at scale: 500 nodes on the canvas, a step printing a flood of log lines."""

from __future__ import annotations

import yaml

from .conftest import one_step_pipeline, select_node, wait_saved, wait_status, write_pipeline

COLS, ROWS = 25, 20


def big_pipeline(ws) -> str:
    """500 `command` steps in 20 chains of 25, already laid out on a grid."""
    nodes, edges = [], []
    for r in range(ROWS):
        for c in range(COLS):
            node = {"id": f"n-{r}-{c}", "runtime": "command", "title": f"Step {r}.{c}",
                    "description": "Copies its settings to its output.",
                    "command": ["cp", "params.json", "out.json"],
                    "outputs": [{"name": "out", "file": "out.json", "format": "json"}],
                    "position": {"x": c * 360, "y": r * 220}}
            if c:
                node["inputs"] = [{"name": "in", "file": "in.json", "format": "json"}]
                edges.append({"from": f"n-{r}-{c - 1}.out", "to": f"n-{r}-{c}.in"})
            nodes.append(node)
    return write_pipeline(ws, "big", {"version": 1, "name": "Big", "nodes": nodes, "edges": edges})


def test_five_hundred_nodes_load_and_a_drag_completes(studio, workspace):
    pid = big_pipeline(workspace)
    page = studio.open(pid)
    assert page.locator(".card").count() == ROWS * COLS
    assert page.locator(".edge").count() == ROWS * (COLS - 1)
    target = "n-10-12"
    card = page.locator(f'.card[data-node-id="{target}"]')
    # Bring the node into view at a comfortable zoom, then drag it by its title.
    page.evaluate(f"() => {{ const c = window.pipeloomStudio.canvas; c.view.k = 0.6; c.reveal('{target}'); c.applyView(); }}")
    page.wait_for_timeout(100)
    incoming = page.locator('[data-edge="n-10-11.out->n-10-12.in"] .edge-line')
    outgoing = page.locator('[data-edge="n-10-12.out->n-10-13.in"] .edge-line')
    far = page.locator('[data-edge="n-0-0.out->n-0-1.in"] .edge-line')
    before = (card.get_attribute("style"), incoming.get_attribute("d"), outgoing.get_attribute("d"), far.get_attribute("d"))
    box = page.locator(f'.card[data-node-id="{target}"] .card-title').bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 31):
        page.mouse.move(x + i * 5, y + i * 4)
    page.mouse.up()
    page.wait_for_function(
        f"() => document.querySelector('.card[data-node-id=\"{target}\"]').getAttribute('style') !== {before[0]!r}")
    after = (card.get_attribute("style"), incoming.get_attribute("d"), outgoing.get_attribute("d"), far.get_attribute("d"))
    assert after[1] != before[1] and after[2] != before[2], "the moved node's edges follow it"
    assert after[3] == before[3], "edges elsewhere are untouched"
    wait_saved(page, timeout=30_000)
    saved = yaml.safe_load((workspace / "big.pipeline.yaml").read_text())
    moved = next(n for n in saved["nodes"] if n["id"] == target)
    assert (moved["position"]["x"], moved["position"]["y"]) != (12 * 360, 10 * 220)
    # The rest kept their places.
    other = next(n for n in saved["nodes"] if n["id"] == "n-3-3")
    assert other["position"] == {"x": 3 * 360, "y": 3 * 220}


FLOOD_PY = '''\
import sys
import pipeloom
out = sys.stdout
for i in range(200_000):
    out.write(f"line {i} of a very chatty step\\n")
out.flush()
pipeloom.write("out", {"lines": 200000})
print("finished flooding")
'''


def test_a_flood_of_log_lines_keeps_the_page_responsive(studio, workspace):
    pid = one_step_pipeline(workspace, "flood", "flood", "Print a lot", FLOOD_PY,
                            {"name": "out", "file": "out.json", "format": "json"})
    page = studio.open(pid)
    select_node(page, "flood")
    page.get_by_role("button", name="Run", exact=True).click()
    rendered = []
    while page.get_attribute('.card[data-node-id="flood"]', "data-status") not in ("succeeded", "failed"):
        # The page answers while lines pour in, and only the visible lines are in the DOM.
        rendered.append(page.evaluate("() => document.querySelectorAll('[data-testid=log] .log-line').length"))
        page.wait_for_timeout(100)
    assert wait_status(page, "flood", ("succeeded",)) == "succeeded"
    # Lines beyond what a browser can show live are dropped from the live view only, with a marker.
    page.wait_for_function(
        "() => { const t = document.querySelector('[data-testid=log]')?.textContent || '';"
        " return t.includes('finished flooding') || t.includes('not shown live'); }")
    rendered.append(page.evaluate("() => document.querySelectorAll('[data-testid=log] .log-line').length"))
    assert max(rendered) < 400, rendered
    # The whole log is on the server, paged: the full view starts at the first line.
    page.get_by_role("button", name="Open the full log").first.click()
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=log]')?.textContent || '').includes('line 0 of a very chatty step')")
    page.wait_for_function("() => document.querySelector('.drawer-notice')?.textContent.includes('1,000 lines')")
    page.get_by_role("button", name="Load more lines").click()
    page.wait_for_function("() => document.querySelector('.drawer-notice')?.textContent.includes('2,000 lines')")
