"""Sticky notes on the canvas, versions that say what they change, and an inspector that folds away."""

from __future__ import annotations

import os

import yaml

from .conftest import report_pipeline, select_node, wait_saved

SHOTS = os.environ.get("PIPELOOM_SCREENSHOT_DIR")


def notes_on_disk(workspace) -> list[dict]:
    return yaml.safe_load((workspace / "report.pipeline.yaml").read_text()).get("notes") or []


def wait_notes(page, workspace, predicate, timeout=15_000):
    """Wait until the file on disk holds notes that satisfy `predicate` (saving is a little later than the edit)."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while time.monotonic() < deadline:
        wait_saved(page)
        notes = notes_on_disk(workspace)
        if predicate(notes):
            return notes
        page.wait_for_timeout(100)
    raise AssertionError(f"the file's notes never matched: {notes_on_disk(workspace)}")


def test_a_note_is_added_edited_dragged_and_deleted_and_kept_in_the_file(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Add a note").click()
    box = page.get_by_role("textbox", name="Note text")
    box.fill("Read me first:\nthe report makes a table.")
    box.press("Control+Enter")
    notes = wait_notes(page, workspace, lambda n: len(n) == 1)
    assert notes[0]["text"] == "Read me first:\nthe report makes a table."
    assert notes[0]["id"] == "note-1" and set(notes[0]["position"]) == {"x", "y"}
    assert "text: |-" in (workspace / "report.pipeline.yaml").read_text()  # several lines stay several lines
    note = page.get_by_role("note", name="Note: Read me first: the report makes a table.")
    assert note.get_attribute("data-note-id") == "note-1"

    # edit in place: a double-click opens the words, a click on the canvas keeps them
    note.dblclick()
    page.get_by_role("textbox", name="Note text").fill("Start here.")
    page.mouse.click(700, 820)
    wait_notes(page, workspace, lambda n: n and n[0]["text"] == "Start here.")

    # drag it by its body; the new place is saved, and undo puts it back
    note = page.locator('.note[data-note-id="note-1"]')
    before = notes_on_disk(workspace)[0]["position"]
    b = note.bounding_box()
    page.mouse.move(b["x"] + 40, b["y"] + 20)
    page.mouse.down()
    page.mouse.move(b["x"] + 140, b["y"] + 100, steps=6)
    page.mouse.up()
    moved = wait_notes(page, workspace, lambda n: n and n[0]["position"] != before)[0]["position"]
    assert moved["x"] > before["x"] + 50 and moved["y"] > before["y"] + 40
    page.keyboard.press("Control+z")
    wait_notes(page, workspace, lambda n: n and n[0]["position"] == before)

    # the keyboard path: N adds a note, Escape keeps it, arrows move it, Delete removes it
    page.locator("#canvas").focus()
    page.keyboard.press("n")
    page.keyboard.type("Second note")
    page.keyboard.press("Escape")
    wait_notes(page, workspace, lambda n: [x["text"] for x in n] == ["Start here.", "Second note"])
    second = page.get_by_role("note", name="Note: Second note")
    assert second.evaluate("el => el === document.activeElement")
    start = notes_on_disk(workspace)[1]["position"]
    page.keyboard.press("ArrowRight")
    wait_notes(page, workspace, lambda n: len(n) == 2 and n[1]["position"]["x"] == start["x"] + 16)
    # notes sit above the connections and below the steps
    order = page.evaluate("() => [...document.querySelector('.viewport').children].map((e) => e.className.baseVal ?? e.className)")
    assert order.index("notes") > order.index("edges") and order.index("notes") < order.index("cards")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "notes.png"))
    page.get_by_role("note", name="Note: Second note").focus()
    page.keyboard.press("Delete")
    wait_notes(page, workspace, lambda n: [x["text"] for x in n] == ["Start here."])
    # and the × button
    page.get_by_role("note", name="Note: Start here.").hover()
    page.get_by_role("button", name="Delete note").click()
    wait_notes(page, workspace, lambda n: n == [])
    assert "notes" not in yaml.safe_load((workspace / "report.pipeline.yaml").read_text())


def test_notes_read_well_in_the_dark_theme(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["notes"] = [{"id": "hello", "text": "This pipeline makes a report.\nClick a step to see its output.",
                     "position": {"x": 40, "y": -60}}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    for scheme in ("light", "dark"):
        page = studio.open(pid, color_scheme=scheme)
        note = page.get_by_role("note", name="Note: This pipeline makes a report. Click a step to see its output.")
        note.wait_for()
        fg, bg = note.evaluate("el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]")
        assert contrast(fg, bg) >= 7, (scheme, fg, bg)
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, f"notes-{scheme}.png"))


def contrast(a: str, b: str) -> float:
    def lum(css: str) -> float:
        r, g, b_ = (int(float(x)) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        f = (lambda c: c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b_)
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_burst_of_edits_makes_one_version_that_says_what_it_changed(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    before = studio.api("GET", f"/api/pipelines/{pid}/versions")[1]
    select_node(page, "shout")
    card = page.locator('.card[data-node-id="shout"]')
    for _ in range(4):  # four moves, each saved on its own (the studio saves 0.6 s after an edit)
        card.press("ArrowDown")
        wait_saved(page)
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill("Shout it")
    title.press("Enter")
    page.wait_for_function("() => document.querySelector('.card[data-node-id=shout] .card-title').textContent === 'Shout it'")
    wait_saved(page)
    after = studio.api("GET", f"/api/pipelines/{pid}/versions")[1]
    assert len(after) == len(before) + 1, after  # five saves, one version
    assert after[0]["note"] == "saved in the studio (5 edits)"
    page.click("#save-state")
    newest = after[0]["version"]
    page.get_by_role("button", name=f"Show the changes of version {newest}").click()
    diff = page.locator('[data-testid="version-diff"][data-changes]')
    diff.wait_for()
    assert diff.get_attribute("data-against") == "previous"  # the current version: what its save changed
    assert "Step “Shout it”: title Shout the label → Shout it; moved on the canvas" in diff.inner_text()
    first = before[-1]["version"]
    page.get_by_role("button", name=f"Show the changes of version {first}").click()
    diff = page.locator(f'.version-item[data-version="{first}"] [data-testid="version-diff"][data-changes]')
    diff.wait_for()
    assert diff.get_attribute("data-against") == "current"
    assert "What restoring it would do: 1 step changed." in diff.inner_text()
    assert page.get_by_role("button", name=f"Restore version {first}").is_visible()
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "versions-diff.png"))


def test_the_inspector_folds_away_and_stays_folded(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    canvas = page.locator("#canvas")
    narrow = canvas.bounding_box()["width"]
    page.get_by_role("button", name="Hide inspector").click()
    assert page.locator("#inspector").is_hidden()
    page.wait_for_function(f"() => document.getElementById('canvas').getBoundingClientRect().width > {narrow + 250}")
    assert page.get_by_role("button", name="Show inspector").get_attribute("aria-expanded") == "false"
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "inspector-folded.png"))
    # the whole pipeline is in view of the wider canvas after Tidy up
    page.get_by_role("button", name="Tidy up").click()
    page.wait_for_timeout(300)
    wide = canvas.bounding_box()
    for card in page.locator(".card").all():
        b = card.bounding_box()
        assert wide["x"] <= b["x"] and b["x"] + b["width"] <= wide["x"] + wide["width"] + 1
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#inspector").is_hidden()  # remembered
    page.locator("#canvas").focus()
    page.keyboard.press("i")
    page.locator("#inspector").wait_for(state="visible")
    assert page.get_by_role("button", name="Hide inspector").get_attribute("aria-expanded") == "true"


def test_tidy_up_takes_each_note_along_with_the_step_it_explains_and_undo_puts_all_back(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["position"] = {"x": 720, "y": 400}  # `shout` far off, below and to the right
    doc["notes"] = [
        {"id": "loud", "text": "This step shouts the label.\nIt reads only the summary.",
         "position": {"x": 720, "y": 560}},
        {"id": "intro", "text": "A report in two steps.", "position": {"x": 40, "y": -200}},
    ]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def state():
        d = yaml.safe_load(path.read_text())
        return ({n["id"]: n["position"] for n in d["nodes"]}, {n["id"]: n["position"] for n in d.get("notes") or []})

    page = studio.open(pid, viewport={"width": 1400, "height": 900})
    page.get_by_role("note", name="Note: This step shouts the label. It reads only the summary.").wait_for()
    steps0, notes0 = state()
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "tidy-before.png"))
    page.get_by_role("button", name="Tidy up").click()
    wait_notes(page, workspace, lambda n: n[0]["position"] != notes0["loud"])
    steps1, notes1 = state()
    assert steps1["shout"] != steps0["shout"]
    # the note below `shout` is still below it, at the same offset from its corner
    offset = lambda note, step, s, n: (n[note]["x"] - s[step]["x"], n[note]["y"] - s[step]["y"])  # noqa: E731
    assert offset("loud", "shout", steps1, notes1) == offset("loud", "shout", steps0, notes0)
    # the note far from every step moved as the whole drawing moved (the steps' top-left corner)
    corner = lambda s: (min(p["x"] for p in s.values()), min(p["y"] for p in s.values()))  # noqa: E731
    shift = (corner(steps1)[0] - corner(steps0)[0], corner(steps1)[1] - corner(steps0)[1])
    assert (notes1["intro"]["x"] - notes0["intro"]["x"], notes1["intro"]["y"] - notes0["intro"]["y"]) == shift
    # what the page shows is what the file says, and no note covers a card
    loud = page.locator('.note[data-note-id="loud"]').bounding_box()
    card = page.locator('.card[data-node-id="shout"]').bounding_box()
    assert abs((loud["x"] - card["x"]) - (notes0["loud"]["x"] - steps0["shout"]["x"]) * page.evaluate(
        "() => window.pipeloomStudio.canvas.view.k")) < 2
    for note in page.locator(".note").all():
        n = note.bounding_box()
        for c in page.locator(".card").all():
            b = c.bounding_box()
            assert n["x"] + n["width"] <= b["x"] or b["x"] + b["width"] <= n["x"] or \
                n["y"] + n["height"] <= b["y"] or b["y"] + b["height"] <= n["y"], (note.get_attribute("data-note-id"))
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "tidy-after.png"))
    # one edit: a single undo puts the steps and the notes back together
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    wait_notes(page, workspace, lambda n: n[0]["position"] == notes0["loud"])
    assert state() == (steps0, notes0)


def test_after_tidy_up_a_note_that_would_cover_a_step_finds_a_free_spot(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    # stacked in one column, `shout` above `report`; a note to the right of `report`, where Tidy up puts `shout`
    doc["nodes"][0]["position"] = {"x": 40, "y": 400}
    doc["nodes"][1]["position"] = {"x": 40, "y": 60}
    doc["notes"] = [{"id": "side", "text": "The table has 120 rows.", "position": {"x": 300, "y": 400}}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    page = studio.open(pid, viewport={"width": 1400, "height": 900})
    page.get_by_role("note", name="Note: The table has 120 rows.").wait_for()
    page.get_by_role("button", name="Tidy up").click()
    wait_notes(page, workspace, lambda n: n[0]["position"] != {"x": 300, "y": 400})
    n = page.locator('.note[data-note-id="side"]').bounding_box()
    for c in page.locator(".card").all():
        b = c.bounding_box()
        assert n["x"] + n["width"] <= b["x"] or b["x"] + b["width"] <= n["x"] or \
            n["y"] + n["height"] <= b["y"] or b["y"] + b["height"] <= n["y"], c.get_attribute("data-node-id")
