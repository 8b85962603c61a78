"""What changed: the inspector says what a step did to its records, with the four counts and the records."""

from __future__ import annotations

import json
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


LABEL = '''import pipeloom
out = []
for r in pipeloom.records("rows"):
    flagged = r["id"] in (3, 8)
    out.append(dict(r, label="warning" if flagged else "normal", score=round(r["id"] / 7, 2)))
pipeloom.write("labelled", out)
'''


def test_what_changed_counts_only_the_flagged_records_when_every_record_gets_a_label(studio, workspace):
    """A step that labels every record: the labels are said once, and only the records whose label is not the
    output's normal one are changed."""
    write(workspace, "make.py", MAKE)
    write(workspace, "label.py", LABEL)
    pid = write_pipeline(workspace, "labels", {"version": 1, "name": "Labels", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "outputs": [{"name": "rows", "format": "json"}],
         "position": {"x": 40, "y": 60}},
        {"id": "label", "runtime": "python", "source": "label.py", "title": "Label rows",
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "labelled", "format": "json", "key": ["id"], "normal": {"label": "normal"}}],
         "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "make.rows", "to": "label.rows"}]})
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "label", ("succeeded",))
    select_node(page, "label")
    diff = page.locator('[data-testid="diff"][data-changed]')
    diff.wait_for()
    counts = {k: diff.get_attribute(f"data-{k}") for k in ("dropped", "added", "changed", "unchanged")}
    assert counts == {"dropped": "0", "added": "0", "changed": "2", "unchanged": "10"}
    assert ("This step changed 2 of 12 records (those whose label is not normal) and added the fields label and "
            "score to every record.") in diff.inner_text()
    changed = diff.locator('.diff-item[data-kind="changed"]')
    changed.first.wait_for()
    assert [t.split("\n")[0] for t in changed.all_inner_texts()] == ["id 3", "id 8"]
    row = changed.first.locator(".diff-fields tr").first
    assert row.locator("th").inner_text() == "label" and row.locator(".diff-after").inner_text() == "warning"


def test_a_card_whose_output_changed_since_the_run_before_opens_the_comparison(studio, workspace):
    write(workspace, "make.py", MAKE)
    write(workspace, "pick.py", PICK.replace('r["id"] % 4 == 0', 'r["id"] % int(pipeloom.params().get("every", 4)) == 0'))
    pid = write_pipeline(workspace, "picks", {"version": 1, "name": "Picks", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "outputs": [{"name": "rows", "format": "json"}],
         "position": {"x": 40, "y": 60}},
        {"id": "pick", "runtime": "python", "source": "pick.py", "title": "Pick rows", "params": {"every": 4},
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "kept", "format": "json", "key": ["id"]}], "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "make.rows", "to": "pick.rows"}]})
    assert studio.api("POST", f"/api/pipelines/{pid}/runs", {})[0] in (200, 201, 202)
    page = studio.open(pid)
    wait_status(page, "pick", ("succeeded",))
    chip = page.locator('[data-node-id="pick"] .card-changed')
    assert chip.is_hidden()  # a first run has nothing to compare with
    # label every second row instead of every fourth, and run again from the page
    import yaml

    path = workspace / "picks.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["params"]["every"] = 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    page.wait_for_function("() => document.querySelector('.card[data-node-id=pick]') && "
                           "document.body.dataset.runStatus !== 'running'")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => !document.querySelector('[data-node-id=\"pick\"] .card-changed').hidden",
                           timeout=30_000)
    assert page.locator('[data-node-id="make"] .card-changed').is_hidden()  # make's output did not change
    page.reload()  # opened afresh, the studio works it out from the stored runs
    page.wait_for_function("() => !document.querySelector('[data-node-id=\"pick\"] .card-changed')?.hidden",
                           timeout=30_000)
    page.get_by_role("button", name="What changed since the run before in Pick rows?").click()
    versus = page.locator('[data-testid="versus"][data-changed]')
    versus.wait_for()
    # rows 2 and 10 gain a label (4 and 8 had one already; multiples of three were dropped both times)
    assert versus.get_attribute("data-changed") == "2" and versus.get_attribute("data-dropped") == "0"
    assert "Since the run before, kept changed 2 records" in versus.inner_text()
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], "since-the-run-before.png"))


def test_share_as_a_page_downloads_a_story_that_opens_offline(studio, workspace, browser, tmp_path):
    write(workspace, "make.py", MAKE)
    write(workspace, "pick.py", PICK)
    pid = write_pipeline(workspace, "picks", {"version": 1, "name": "Picks",
        "description": "Makes twelve rows and keeps the ones worth keeping.", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "title": "Make rows",
         "outputs": [{"name": "rows", "format": "json"}], "position": {"x": 40, "y": 60}},
        {"id": "pick", "runtime": "python", "source": "pick.py", "title": "Pick rows",
         "description": "Drops multiples of three and labels multiples of four.",
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "kept", "format": "json", "key": ["id"]}], "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "make.rows", "to": "pick.rows"}]})
    page = studio.open(pid)
    share = page.get_by_role("button", name="Share as a page")
    assert share.is_disabled()  # nothing to share before a run
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",))
    page.wait_for_function("() => !document.getElementById('share-button').disabled")
    with page.expect_download() as dl:
        share.click()
    story = tmp_path / "story.html"
    dl.value.save_as(story)
    assert story.stat().st_size < 200_000
    # opened from disk with every network request refused: it needs none
    ctx = browser.new_context()
    requests = []
    ctx.on("request", lambda r: requests.append(r.url))
    ctx.route("http*://**", lambda route: route.abort())
    offline = ctx.new_page()
    offline.goto(story.as_uri())
    text = offline.inner_text("body")
    ctx.close()
    assert requests == [story.as_uri()], requests
    assert "Picks" in text and "Makes twelve rows" in text
    assert "Pick rows" in text and "Drops multiples of three and labels multiples of four." in text
    assert "it dropped 4 of 12 records, changed 2 and added 1." in text
    assert "a multiple of three" in text  # the reason the step gave, beside a dropped record
    assert "12 records" in text  # the count on the connection


def _picks(workspace):
    write(workspace, "make.py", MAKE)
    write(workspace, "pick.py", PICK)
    return write_pipeline(workspace, "picks", {"version": 1, "name": "Picks", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py", "title": "Make rows",
         "description": "Makes twelve numbered rows.", "outputs": [{"name": "rows", "format": "json"}],
         "position": {"x": 40, "y": 60}},
        {"id": "pick", "runtime": "python", "source": "pick.py", "title": "Pick rows",
         "description": "Drops multiples of three and labels multiples of four.",
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "kept", "format": "json", "key": ["id"]}], "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "make.rows", "to": "pick.rows"}]})


def test_walk_through_goes_step_by_step_with_the_keyboard(studio, workspace):
    pid = _picks(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",))
    view = "() => { const v = window.pipeloomStudio.canvas.view; return [v.x, v.y, v.k].map((n) => Math.round(n)); }"
    before = page.evaluate(view)
    page.get_by_role("button", name="Walk through", exact=True).click()
    walk = page.get_by_role("dialog", name="Make rows")
    walk.wait_for()
    assert "Step 1 of 2" in walk.inner_text() and "Makes twelve numbered rows." in walk.inner_text()
    assert page.evaluate(view) != before  # the step is brought to the middle of what the panel leaves free
    assert page.locator(".card.walk-focus").get_attribute("data-node-id") == "make"
    assert page.get_by_role("button", name="Back").is_disabled()
    walk.locator(".walk-sample").first.wait_for()  # a sample of what went out
    page.keyboard.press("ArrowRight")
    walk = page.get_by_role("dialog", name="Pick rows")
    walk.locator('[data-testid="walk-diff"]').wait_for()
    text = walk.inner_text()
    assert "Step 2 of 2" in text and "Drops multiples of three" in text
    assert "rows: 12 records from “Make rows”." in text
    assert "It dropped 4 of 12 records, changed 2 and added 1." in text
    assert "a multiple of three" in text  # the reason, among the dropped examples
    assert page.locator(".card.walk-focus").get_attribute("data-node-id") == "pick"
    assert float(page.locator('.card[data-node-id="make"]').evaluate("e => getComputedStyle(e).opacity")) < 0.5
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], "walk-through.png"))
    page.keyboard.press("ArrowLeft")
    page.get_by_role("dialog", name="Make rows").wait_for()
    page.keyboard.press("Escape")
    assert page.locator('[data-testid="walk"]').count() == 0
    assert page.locator(".card.walk-focus").count() == 0
    page.wait_for_function(f"() => JSON.stringify(({view})()) === {json.dumps(json.dumps(before, separators=(',', ':')))}")


def test_walk_through_fits_a_phone(studio, workspace):
    pid = _picks(workspace)
    assert studio.api("POST", f"/api/pipelines/{pid}/runs", {})[0] in (200, 201, 202)
    page = studio.page(f"/pipelines/{pid}", viewport={"width": 390, "height": 844})
    wait_status(page, "pick", ("succeeded",))
    page.get_by_role("button", name="Walk through", exact=True).click()
    panel = page.locator('[data-testid="walk"]')
    panel.wait_for()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
    page.get_by_role("button", name="Next").click()
    page.get_by_role("dialog", name="Pick rows").wait_for()
    card = page.locator('.card[data-node-id="pick"]').bounding_box()
    # the step stays in sight above the panel, and nothing makes the page wider than the phone
    assert card["y"] >= 0 and card["y"] + card["height"] <= box["y"] + 2, (card, box)
    assert card["x"] >= 0 and card["x"] + card["width"] <= 390, card
    wide = page.evaluate("() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 392)"
                         ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, wide
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], "walk-through-phone.png"))
    page.get_by_role("button", name="Finish").click()
    assert panel.count() == 0


def test_cards_say_how_many_records_went_in_and_out(studio, workspace):
    pid = _picks(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",))
    page.wait_for_function("() => !document.querySelector('[data-testid=\"count-out-kept\"]').hidden")
    pick = page.locator('.card[data-node-id="pick"]')
    assert pick.locator('[data-testid="count-in-rows"]').inner_text() == "12 in"
    assert pick.locator('[data-testid="count-out-kept"]').inner_text() == "9 out"
    assert page.locator('.card[data-node-id="make"] [data-testid="count-out-rows"]').inner_text() == "12 out"


WIDE = '''import pipeloom
pipeloom.write("graded", [{"a": i, "b": i, "c": i, "d": i, "e": i, "f": i, "g": i,
                           "grade": "critical" if i == 0 else "normal"} for i in range(3)])
'''


def test_walk_through_samples_show_a_ports_categories_first_as_labels(studio, workspace):
    write(workspace, "grade.py", WIDE)
    pid = write_pipeline(workspace, "graded", {"version": 1, "name": "Graded", "nodes": [
        {"id": "grade", "runtime": "python", "source": "grade.py", "title": "Grade rows",
         "outputs": [{"name": "graded", "format": "json", "categories": ["grade"]}]}], "edges": []})
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "grade", ("succeeded",))
    page.get_by_role("button", name="Walk through", exact=True).click()
    sample = page.get_by_role("dialog", name="Grade rows").locator(".walk-sample").first
    sample.wait_for()
    # eight fields, six shown: the declared category is among them, first, as a label with its word
    assert sample.locator("th").all_inner_texts()[0] == "grade"
    first = sample.locator("tbody tr").first.locator("td").first
    assert first.locator(".cat").get_attribute("data-tone") == "danger"
    assert "critical" in first.inner_text()


TEXTS = '''import pipeloom
pipeloom.write("rows", [{"id": i, "v": f"{i}.5"} for i in range(3)])
'''
NUMBERS = '''import pipeloom
pipeloom.write("typed", [dict(r, v=float(r["v"])) for r in pipeloom.records("rows")])
'''


def test_a_text_that_became_the_same_number_shows_its_quotes(studio, workspace):
    write(workspace, "texts.py", TEXTS)
    write(workspace, "numbers.py", NUMBERS)
    pid = write_pipeline(workspace, "typed", {"version": 1, "name": "Typed", "nodes": [
        {"id": "texts", "runtime": "python", "source": "texts.py", "outputs": [{"name": "rows", "format": "json"}],
         "position": {"x": 40, "y": 60}},
        {"id": "numbers", "runtime": "python", "source": "numbers.py", "title": "Type the values",
         "inputs": [{"name": "rows", "format": "json"}],
         "outputs": [{"name": "typed", "format": "json", "key": ["id"]}], "position": {"x": 400, "y": 60}}],
        "edges": [{"from": "texts.rows", "to": "numbers.rows"}]})
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "numbers", ("succeeded",))
    select_node(page, "numbers")
    diff = page.locator('[data-testid="diff"][data-changed="3"]')
    diff.wait_for()
    diff.get_by_role("tab", name="3 Changed").click()
    row = diff.locator('.diff-item[data-kind="changed"] .diff-fields tr').first
    row.wait_for()
    assert (row.locator(".diff-before").inner_text(), row.locator(".diff-after").inner_text()) == ('"0.5"', "0.5")
    # the walk-through says it the same way
    page.get_by_role("button", name="Walk through", exact=True).click()
    page.keyboard.press("ArrowRight")
    walk = page.get_by_role("dialog", name="Type the values")
    walk.locator(".walk-examples").first.wait_for()
    assert 'v "0.5" → 0.5' in walk.inner_text()
