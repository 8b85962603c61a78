"""Editing on the canvas: where new steps go, stored positions that stay put,
a wire dropped on a card, and a new step's source once it is saved."""

from __future__ import annotations

import yaml

from .conftest import (
    add_step, card_boxes, overlapping, report_pipeline, select_node, wait_saved, write, write_pipeline,
)

# Points along an edge's path (in canvas coordinates) that fall inside one of its own two cards.
THROUGH_OWN_CARDS = """(key) => {
  const c = window.pipeloomStudio.canvas;
  const rec = c.edges.get(key);
  const path = rec.line;
  const length = path.getTotalLength();
  const inside = [];
  for (const id of [rec.edge.src, rec.edge.dst]) {
    const it = c.items.get(id);
    const r = { x: it.pos.x + 8, y: it.pos.y + 8, w: it.metrics.width - 16, h: it.metrics.height - 16 };
    for (let s = 0; s <= length; s += 4) {
      const p = path.getPointAtLength(s);
      if (p.x > r.x && p.x < r.x + r.w && p.y > r.y && p.y < r.y + r.h) { inside.push(id); break; }
    }
  }
  return inside;
}"""


def stored_positions(path) -> dict:
    doc = yaml.safe_load(path.read_text())
    return {n["id"]: n.get("position") for n in doc["nodes"]}


def test_a_new_step_lands_in_free_space_and_stored_positions_never_move(studio, workspace):
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    path = workspace / created["path"]
    before = stored_positions(path)
    assert len(before) == 5 and all(before.values())
    page = studio.open(created["id"])
    add_step(page, "Python", "extra")
    wait_saved(page)
    after = stored_positions(path)
    assert {k: after[k] for k in before} == before
    # On the next visit nothing is laid out again: every card is where the file says.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    boxes = card_boxes(page)
    assert {k: {"x": b["x"], "y": b["y"]} for k, b in boxes.items() if k in before} == before
    assert overlapping(boxes) == []
    assert stored_positions(path) == after
    assert "saved" in page.get_attribute("#save-state", "data-state")


def test_positions_written_by_hand_are_kept_and_only_missing_ones_are_placed(studio, workspace):
    write(workspace, "a.sh", "echo a > out.txt\n")
    port = {"name": "out", "file": "out.txt", "format": "text"}
    inp = {"name": "in", "file": "in.txt", "format": "text"}
    pid = write_pipeline(workspace, "hand", {
        "version": 1, "name": "Written by hand",
        "nodes": [
            # These two cover each other a little: the user put them there.
            {"id": "one", "runtime": "shell", "source": "a.sh", "outputs": [port], "position": {"x": 0, "y": 0}},
            {"id": "two", "runtime": "shell", "source": "a.sh", "inputs": [inp], "outputs": [port],
             "position": {"x": 120, "y": 40}},
            {"id": "three", "runtime": "shell", "source": "a.sh", "inputs": [inp]},
        ],
        "edges": [{"from": "one.out", "to": "two.in"}, {"from": "two.out", "to": "three.in"}],
    })
    page = studio.open(pid)
    boxes = card_boxes(page)
    assert (boxes["one"]["x"], boxes["one"]["y"]) == (0, 0)
    assert (boxes["two"]["x"], boxes["two"]["y"]) == (120, 40)
    # The card without a position follows the step that feeds it, clear of every card.
    assert boxes["three"]["x"] >= boxes["two"]["x"] + boxes["two"]["w"]
    assert [pair for pair in overlapping(boxes) if "three" in pair] == []
    # An edit saves the placed card; the hand-made positions stay as written.
    select_node(page, "three")
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill("Three")
    title.press("Enter")
    wait_saved(page)
    saved = stored_positions(workspace / "hand.pipeline.yaml")
    assert saved["one"] == {"x": 0, "y": 0} and saved["two"] == {"x": 120, "y": 40}
    assert saved["three"] == {"x": boxes["three"]["x"], "y": boxes["three"]["y"]}


def test_a_step_added_after_the_selected_one_and_fed_by_a_wire_dropped_on_its_card(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    # Watch the source panel from the start: a new step must never show the server's "no node" answer.
    page.evaluate("""() => {
      window.sourceTexts = [];
      new MutationObserver(() => {
        const el = document.querySelector('[data-testid=source]');
        if (el) window.sourceTexts.push(el.textContent);
      }).observe(document.getElementById('inspector'), { subtree: true, childList: true, characterData: true });
    }""")
    select_node(page, "shout")
    add_step(page, "Python", "count")
    boxes = card_boxes(page)
    assert boxes["count"]["x"] >= boxes["shout"]["x"] + boxes["shout"]["w"], "placed after the selected step"
    assert overlapping(boxes) == []
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=source]')?.textContent || '').includes('import pipeloom')")
    texts = page.evaluate("() => window.sourceTexts")
    assert not [t for t in texts if "has no node" in t or "no node" in t], texts

    page.click("#zoom-fit")
    # Dropped on the card body (not on a port): the card gets an input named after the output.
    # `count` already has an output called `out`, so the new input is `out-2`.
    page.locator('.card[data-node-id="shout"] .port[data-kind=outputs][data-port=out] .port-name').drag_to(
        page.locator('.card[data-node-id="count"] .card-title'))
    page.wait_for_selector('[data-edge="shout.out->count.out-2"]')
    page.wait_for_selector('.card[data-node-id="count"] .port[data-kind=inputs][data-port="out-2"][data-format=json]')
    wait_saved(page)
    saved = yaml.safe_load((workspace / "report.pipeline.yaml").read_text())
    count = next(n for n in saved["nodes"] if n["id"] == "count")
    assert [(p["name"], p["format"]) for p in count["inputs"]] == [("out-2", "json")]
    assert {"from": "shout.out", "to": "count.out-2"} in saved["edges"]
    # One edit: a single undo takes away both the edge and the new input.
    page.click("#undo")
    page.wait_for_selector('[data-edge="shout.out->count.out-2"]', state="detached")
    assert page.locator('.card[data-node-id="count"] .port[data-kind=inputs]').count() == 0
    page.click("#redo")
    page.wait_for_selector('[data-edge="shout.out->count.out-2"]')

    # Refused by the engine (it would make a cycle): its own words, and nothing changes.
    page.locator('.card[data-node-id="count"] .port[data-kind=outputs][data-port=out] .port-name').drag_to(
        page.locator('.card[data-node-id="report"] .card-title'))
    page.locator('[data-testid="toast"]', has_text="cycle").wait_for()
    assert page.locator('.card[data-node-id="report"] .port[data-kind=inputs]').count() == 0


def test_an_edge_to_a_step_on_its_left_loops_around_instead_of_cutting_through(studio, workspace):
    write(workspace, "a.sh", "echo a > out.txt\n")
    port = {"name": "out", "file": "out.txt", "format": "text"}
    inp = {"name": "in", "file": "in.txt", "format": "text"}
    pid = write_pipeline(workspace, "back", {
        "version": 1, "name": "Backwards",
        "nodes": [
            {"id": "later", "runtime": "shell", "source": "a.sh", "inputs": [inp], "position": {"x": 40, "y": 80}},
            {"id": "first", "runtime": "shell", "source": "a.sh", "outputs": [port], "position": {"x": 520, "y": 120}},
        ],
        "edges": [{"from": "first.out", "to": "later.in"}],
    })
    page = studio.open(pid)
    assert page.evaluate(THROUGH_OWN_CARDS, "first.out->later.in") == []
    # Moving the source right over its target still routes around both cards.
    page.evaluate("() => window.pipeloomStudio.canvas.moveNodes({first: {x: 120, y: 40}})")
    assert page.evaluate(THROUGH_OWN_CARDS, "first.out->later.in") == []
