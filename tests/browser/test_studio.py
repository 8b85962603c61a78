"""The studio in a real browser: open, edit, run, preview, hot reload, versions, cancel."""

from __future__ import annotations

import re
import time

import yaml

from .conftest import report_pipeline, select_node, wait_saved, wait_status, write, write_pipeline


def add_port(page, node_id: str, kind: str, name: str, fmt: str) -> None:
    """Add a port to a node with the inspector's port editor."""
    select_node(page, node_id)
    page.select_option('select[aria-label="New port kind"]', kind)
    page.fill('input[aria-label="New port name"]', name)
    page.select_option('select[aria-label="New port format"]', fmt)
    page.get_by_role("button", name="Add port").click()
    page.wait_for_selector(f'.card[data-node-id="{node_id}"] .port[data-kind={kind}][data-port="{name}"]')


def test_open_the_demo_from_an_empty_workspace(studio, workspace):
    page = studio.page("/")
    page.get_by_role("button", name="Create the sensor-alerts demo").click()
    page.wait_for_url(re.compile(r"/pipelines/"))
    page.wait_for_selector("body[data-ready=true]")
    status, doc = studio.api("GET", "/api/pipelines/sensor-alerts")
    assert status == 200, doc
    nodes = doc["document"]["nodes"]
    edges = doc["document"]["edges"]
    assert len(nodes) >= 4
    for node in nodes:
        card = page.locator(f'.card[data-node-id="{node["id"]}"]')
        assert card.count() == 1
        assert card.get_attribute("data-status") == ""
        assert card.locator(".card-title").inner_text() == (node.get("title") or node["id"])
    for edge in edges:
        assert page.locator(f'[data-edge="{edge["from"]}->{edge["to"]}"]').count() == 1
    # Every runtime badge names its language, not only a colour.
    badges = set(page.locator(".card .badge").all_inner_texts())
    assert {"Rust", "Go", "Python", "Node.js", "Shell"} <= badges
    assert page.get_by_role("button", name="Run", exact=True).is_enabled()
    assert page.get_by_role("button", name="Cancel", exact=True).is_disabled()
    assert "Run the pipeline to see its log here" in page.inner_text('[data-testid="log"]')


def test_add_a_node_and_connect_it(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Add a Python step").click()
    page.fill("#add-node-id", "count")
    page.fill("#add-node-title-input", "Count the rows")
    page.get_by_role("button", name="Add step").click()
    card = page.locator('.card[data-node-id="count"]')
    card.wait_for()
    assert list(workspace.rglob("count.py")), "the starter program was created"
    # Give it an input, then drag the report's table output onto it.
    add_port(page, "count", "inputs", "rows", "csv")
    port_in = page.locator('.card[data-node-id="count"] .port[data-kind=inputs][data-port=rows]')
    port_in.wait_for()
    page.locator('.card[data-node-id="report"] .port[data-kind=outputs][data-port=table] .port-name').drag_to(port_in)
    page.wait_for_selector('[data-edge="report.table->count.rows"]')
    wait_saved(page)
    saved = yaml.safe_load((workspace / "report.pipeline.yaml").read_text())
    assert {"from": "report.table", "to": "count.rows"} in saved["edges"]
    assert any(n["id"] == "count" and n["title"] == "Count the rows" for n in saved["nodes"])

    # An input takes one source: the engine refuses a second one, in its own words.
    page.locator('.card[data-node-id="report"] .port[data-kind=outputs][data-port=summary] .port-name').drag_to(port_in)
    toast = page.locator('[data-testid="toast"]', has_text="fed twice")
    toast.wait_for()
    assert page.locator('[data-edge="report.summary->count.rows"]').count() == 0

    # A cycle is refused too: shout gets an output, report an input, and shout -> report would loop.
    add_port(page, "shout", "outputs", "back", "json")
    add_port(page, "report", "inputs", "loop", "json")
    page.locator('.card[data-node-id="shout"] .port[data-kind=outputs][data-port=back] .port-name').drag_to(
        page.locator('.card[data-node-id="report"] .port[data-kind=inputs][data-port=loop]'))
    page.locator('[data-testid="toast"]', has_text="cycle").wait_for()
    assert page.locator('[data-edge="shout.back->report.loop"]').count() == 0

    # Undo removes the last edits; the file follows.
    select_node(page, "count")
    page.keyboard.press("Delete")
    page.wait_for_selector('.card[data-node-id="count"]', state="detached")
    page.keyboard.press("Control+z")
    page.wait_for_selector('.card[data-node-id="count"]')
    assert page.locator('[data-edge="report.table->count.rows"]').count() == 1


def test_run_and_watch_every_status_turn_succeeded(studio, workspace, require_tool):
    for tool in ("cargo", "go", "node"):
        require_tool(tool, f"the demo needs `{tool}`")
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    page = studio.open(created["id"])
    ids = page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.nodeId)")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_selector('.card[data-status="running"], .card[data-status="succeeded"]')
    for node_id in ids:
        assert wait_status(page, node_id, ("succeeded", "cached", "failed", "skipped"), timeout=240_000) in (
            "succeeded", "cached"), studio.log()
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    assert page.get_by_role("button", name="Cancel", exact=True).is_disabled()
    # Edges carry record counts once they are known.
    page.wait_for_selector(".edge.has-records")
    assert re.search(r"[\d,]+ records?", page.text_content(".edge.has-records .edge-label"))
    # The first step's log is there, and so is its output.
    select_node(page, ids[0])
    page.wait_for_function("() => document.querySelector('[data-testid=log] .log-line')")
    page.wait_for_selector('[data-testid="preview"] table, [data-testid="preview"] .jtree')


def test_json_and_table_previews(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    select_node(page, "report")
    assert "Run the pipeline to see its output" in page.inner_text('[data-testid="preview"]')
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "report", ("succeeded",))
    wait_status(page, "shout", ("succeeded",))
    select_node(page, "report")
    preview = page.locator('[data-testid="preview"]')
    # A CSV output is a table, paged by the server.
    preview.locator(".port-tab[data-port=table]").click()
    preview.locator("table.data-table").wait_for()
    assert preview.locator("tbody tr").count() == 50
    assert preview.locator('[data-testid="preview-range"]').inner_text() == "rows 1–50 of 120"
    assert preview.locator("th").all_inner_texts()[1:] == ["id", "name", "even"]
    preview.get_by_role("button", name="Next").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=preview-range]')?.textContent === 'rows 51–100 of 120'")
    assert preview.locator("tbody tr").first.locator("td").nth(2).inner_text() == "row 50"
    # A JSON object is a collapsible tree.
    preview.locator(".port-tab[data-port=summary]").click()
    tree = preview.locator('[role="tree"]')
    tree.wait_for()
    assert "count" in tree.inner_text() and "120" in tree.inner_text()
    nested = tree.locator("details", has_text="nested").last
    assert nested.locator("summary").inner_text().startswith("nested")
    # The step's source is highlighted by the server, and its log is in the drawer.
    assert "pipeloom.write" in page.inner_text('[data-testid="source"]')
    assert page.locator('[data-testid="source"] .highlight').count() >= 1
    page.wait_for_function("() => (document.querySelector('[data-testid=log]')?.textContent || '').includes('wrote 120 rows')")


def test_source_change_updates_the_inspector_and_auto_run_reruns(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "shout", ("succeeded",))
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    first_run = studio.api("GET", f"/api/runs?pipeline={pid}")[1][0]["run_id"]
    select_node(page, "shout")
    page.wait_for_function("() => document.querySelector('[data-testid=source]').textContent.includes('shouted')")

    # An edit in the user's own editor shows up in the inspector.
    src = workspace / "steps" / "shout.py"
    src.write_text(src.read_text().replace('print("shouted")', 'print("shouted again")'))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=source]').textContent.includes('shouted again')", timeout=10_000)
    page.locator('[data-testid="source-updated"]').wait_for()

    # With auto-run on, the next edit re-runs that step (upstream comes from the cache).
    page.locator("label.toggle", has_text="Auto-run").click()
    page.wait_for_function("() => document.querySelector('#autorun').checked")
    time.sleep(0.3)  # let the toggle reach the server before the file changes
    assert studio.api("GET", f"/api/pipelines/{pid}")[1]["autorun"] is True
    src.write_text(src.read_text().replace('print("shouted again")', 'print("shouted a third time")'))
    page.wait_for_function(
        "() => document.body.dataset.runStatus && [...document.querySelectorAll('#run-picker option')].length >= 3",
        timeout=30_000)
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=60_000)
    runs = studio.api("GET", f"/api/runs?pipeline={pid}")[1]
    assert runs[0]["run_id"] != first_run
    rerun = studio.api("GET", f"/api/runs/{runs[0]['run_id']}")[1]
    assert rerun["nodes"]["shout"]["status"] == "succeeded"
    assert rerun["nodes"].get("report", {}).get("status") in (None, "cached")
    assert wait_status(page, "shout", ("succeeded",)) == "succeeded"
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=log]')?.textContent || '').includes('shouted a third time')")


def test_restore_an_earlier_version(studio, workspace):
    pid = report_pipeline(workspace)
    original = (workspace / "report.pipeline.yaml").read_text()
    page = studio.open(pid)
    select_node(page, "shout")
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill("Shout it loudly")
    title.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.card[data-node-id=shout] .card-title').textContent === 'Shout it loudly'")
    wait_saved(page)
    assert "Shout it loudly" in (workspace / "report.pipeline.yaml").read_text()
    page.click("#save-state")
    page.get_by_role("button", name="Show the changes of version 1").click()
    diff = page.locator('[data-testid="version-diff"][data-changes]')
    diff.wait_for()  # what restoring it would change, before it is restored
    assert "Step “Shout the label”: title Shout it loudly → Shout the label" in diff.inner_text()
    page.get_by_role("button", name="Restore version 1").click()
    page.wait_for_function(
        "() => document.querySelector('.card[data-node-id=shout] .card-title').textContent === 'Shout the label'")
    text = (workspace / "report.pipeline.yaml").read_text()
    assert "Shout it loudly" not in text
    assert yaml.safe_load(text) == yaml.safe_load(original)
    versions = studio.api("GET", f"/api/pipelines/{pid}/versions")[1]
    assert versions[0]["version"] == 3 and "1" in (versions[0]["note"] or "")


def test_a_pipeline_file_changed_on_disk_reloads_the_canvas(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["title"] = "Shout, edited by hand"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    page.wait_for_function(
        "() => document.querySelector('.card[data-node-id=shout] .card-title').textContent === 'Shout, edited by hand'",
        timeout=10_000)


def test_an_edit_racing_a_change_on_disk_asks_before_overwriting(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    select_node(page, "shout")
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill("Edited in the studio")
    title.press("Enter")
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["title"] = "Edited on disk"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    banner = page.locator("#banner")
    banner.wait_for()
    assert "The file changed on disk" in banner.inner_text()
    # Nothing was overwritten behind the user's back.
    assert "Edited on disk" in path.read_text()
    banner.get_by_role("button", name="Reload").click()
    page.wait_for_function(
        "() => document.querySelector('.card[data-node-id=shout] .card-title').textContent === 'Edited on disk'")
    assert banner.is_hidden()
    wait_saved(page)


def test_cancel_a_run(studio, workspace):
    write(workspace, "slow.sh", 'echo "starting a long job"\nsleep 120\necho done > out.txt\n')
    pid = write_pipeline(workspace, "slow", {
        "version": 1, "name": "Slow",
        "nodes": [{"id": "wait", "runtime": "shell", "title": "Wait a long time", "source": "slow.sh",
                   "outputs": [{"name": "out", "file": "out.txt", "format": "text"}]}],
        "edges": [],
    })
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "wait", ("running",))
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    assert cancel.is_enabled()
    started = time.monotonic()
    cancel.click()
    assert wait_status(page, "wait", ("cancelled", "failed"), timeout=20_000) == "cancelled"
    page.wait_for_function("() => document.body.dataset.runStatus === 'cancelled'")
    assert time.monotonic() - started < 20
    # A cancelled step did not finish, and one step is one step.
    page.wait_for_function("() => document.getElementById('run-summary').textContent.includes('cancelled · 0 of 1 step finished')")
    assert page.get_by_role("button", name="Run", exact=True).is_enabled()
    assert page.get_by_role("button", name="Cancel", exact=True).is_disabled()
