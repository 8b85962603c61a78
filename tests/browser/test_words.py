"""What the studio says: one word for a step, plurals that agree, statuses that
tell "left out of this run" from "never run", cached steps that show the log of the
run whose outputs they reuse, and a console free of errors."""

from __future__ import annotations

from .conftest import add_step, report_pipeline, select_node, wait_status, write_pipeline

CARD_WORD = "(id) => document.querySelector(`.card[data-node-id='${id}'] .status-word`).textContent"


def test_the_console_stays_clean_on_load_and_on_run(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    page.wait_for_timeout(300)
    assert studio.console_errors == []
    # The step id field's pattern is valid for the browser (an invalid one is ignored, with a console error).
    page.get_by_role("button", name="Add a Python step").click()
    valid = page.evaluate("""() => {
      const el = document.getElementById('add-node-id');
      const check = (v) => { el.value = v; return el.checkValidity(); };
      return [check('count-rows_2'), check('Count rows')];
    }""")
    assert valid == [True, False]
    page.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "shout", "succeeded")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    select_node(page, "report")
    page.wait_for_selector('[data-testid="preview"] .jtree, [data-testid="preview"] table')
    page.wait_for_timeout(300)
    assert studio.console_errors == []


def test_steps_say_step_and_badges_are_capitalised(studio, workspace):
    pid = write_pipeline(workspace, "empty", {"version": 1, "name": "Empty", "nodes": [], "edges": []})
    page = studio.open(pid)
    assert page.inner_text(".canvas-empty-title") == "Drag a step from the palette"
    assert "node" not in page.inner_text(".canvas-empty").lower()
    assert page.inner_text('.palette-item[data-runtime="command"] .badge') == "Command"
    add_step(page, "Command", "copy")
    assert page.inner_text('.card[data-node-id="copy"] .badge') == "Command"
    assert page.get_by_role("button", name="Run this step").is_visible()
    assert page.get_by_role("button", name="Run from here").is_visible()
    assert page.get_by_role("button", name="Run node").count() == 0
    # One step, one connection, one record: no stray plurals.
    page.wait_for_function("() => document.getElementById('doc-summary').textContent.startsWith('1 step · 0 connections')")
    shown = page.evaluate("""async () => {
      const { describeRange } = await import('/static/js/preview.js');
      const { formatRecords } = await import('/static/js/dom.js');
      return [describeRange({ format: 'csv', offset: 0, items: [{ a: 1 }], total: 1 }),
              describeRange({ format: 'text', kind: 'text', offset: 4, items: ['x'], total: 5 }), formatRecords(1)];
    }""")
    assert shown == ["row 1 of 1", "line 5 of 5", "1 record"]


def test_left_out_never_run_and_cached_steps_each_say_so(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    assert page.evaluate(CARD_WORD, "shout") == "Not run yet"
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "shout", "succeeded")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    first_run = studio.api("GET", f"/api/runs?pipeline={pid}")[1][0]["run_id"]

    # Nothing changed, so the second run reuses both outputs and runs no program.
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "report", "cached")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    select_node(page, "report")
    log = page.locator('[data-testid="log"]')
    expected = f"Cached: nothing changed since run {first_run}, so no program ran."
    assert expected in page.inner_text('[data-testid="cached-note"]')
    # the log is the one of the run that made the outputs, in view without following a link
    page.wait_for_function("() => document.querySelector('[data-testid=log]').textContent.includes('wrote 120 rows')")
    assert "printed nothing" not in log.inner_text()
    assert first_run in page.inner_text(".drawer-notice")

    # A run of one step leaves the other out: the default view shows that step's latest result, from
    # the run that made it; the run itself, picked in "Showing", says "not in this run".
    page.get_by_role("button", name="Run this step").click()
    page.wait_for_function(f"(f) => document.body.dataset.runStatus === 'succeeded' && window.pipeloomStudio.run.run_id !== f", arg=first_run)
    page.wait_for_selector('.card[data-node-id="shout"] .card-from')
    assert page.evaluate(CARD_WORD, "shout") == "Succeeded"
    one_step = studio.api("GET", f"/api/runs?pipeline={pid}")[1][0]["run_id"]
    page.select_option("#run-picker", one_step)
    page.wait_for_function(f"() => ({CARD_WORD})('shout') === 'Not in this run'")
    # A step added since has never been in any run.
    page.select_option("#run-picker", "")
    page.keyboard.press("Escape")
    add_step(page, "Python", "later")
    page.wait_for_function(f"() => ({CARD_WORD})('later') === 'Not run yet'")
    assert page.evaluate(CARD_WORD, "shout") == "Succeeded"


def test_a_reused_step_shows_its_earlier_log_even_before_the_run_record_names_that_run(studio, workspace):
    """The live status of a cached step carries the run it reuses only in its message; the stored record
    (with `source_run`) comes a moment later. Selected in between, the step still shows that run's log."""
    import json
    import re

    pid = report_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "shout", "succeeded")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    first_run = studio.api("GET", f"/api/runs?pipeline={pid}")[1][0]["run_id"]

    def without_source_run(route):  # every record of a later run arrives as if `source_run` were not known yet
        response = route.fetch()
        body = response.json()
        if body.get("run_id") != first_run:
            for info in (body.get("nodes") or {}).values():
                info.pop("source_run", None)
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(r".*/api/runs/[^/?]+$"), without_source_run)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "report", "cached")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'")
    select_node(page, "report")
    page.wait_for_function("() => document.querySelector('[data-testid=log]').textContent.includes('wrote 120 rows')")
    assert first_run in page.inner_text(".drawer-notice")
