"""The Triggers panel: what starts a pipeline by itself, its state, pause/resume, and calling it from the page."""

from __future__ import annotations

import os

from .conftest import write, write_pipeline

ECHO = '''import json
data = json.load(open("events.json"))
json.dump([{"got": x} for x in (data if isinstance(data, list) else [data])], open("out.json", "w"))
'''


def _pipeline(ws) -> str:
    write(ws, "echo.py", ECHO)
    (ws / "inbox").mkdir()
    return write_pipeline(ws, "svc", {"version": 1, "name": "svc", "nodes": [
        {"id": "echo", "runtime": "python", "source": "echo.py", "title": "Echo",
         "inputs": [{"name": "events", "format": "json"}], "outputs": [{"name": "out", "format": "json"}]}],
        "edges": [],
        "triggers": [
            {"id": "call", "kind": "http", "to": "echo.events", "result": "echo.out",
             "description": "Other programs post readings here."},
            {"id": "inbox", "kind": "folder", "path": "inbox", "pattern": "*.json", "to": "echo.events"},
            {"id": "stream", "kind": "kafka", "brokers": "${PIPELOOM_TEST_UNSET_BROKERS}", "topic": "t",
             "to": "echo.events"}]})


def test_the_panel_shows_each_trigger_lets_you_call_and_pause_it(studio, workspace, tmp_path):
    pid = _pipeline(workspace)
    page = studio.open(pid)
    button = page.locator("#triggers-button")
    button.wait_for()
    assert button.inner_text() == "Triggers · 3"
    button.click()
    panel = page.get_by_role("dialog", name="Triggers")
    cards = panel.locator(".trigger-card")
    assert cards.count() == 3
    call = panel.locator('[data-trigger-id="call"]')
    page.wait_for_function("() => document.querySelector('[data-trigger-id=\"call\"]')?.dataset.state === 'running'")
    assert "Other programs post readings here." in call.inner_text()
    stream = panel.locator('[data-trigger-id="stream"]')
    page.wait_for_function("() => document.querySelector('[data-trigger-id=\"stream\"]')?.dataset.state === 'off'")
    assert "set PIPELOOM_TEST_UNSET_BROKERS" in stream.inner_text()
    # call the http trigger from the form
    call.locator("textarea").fill('[{"n": 1}, {"n": 2}]')
    call.get_by_role("button", name="Send").click()
    status = call.locator(".invoke-status")
    status.wait_for()
    page.wait_for_function("() => document.querySelector('[data-trigger-id=\"call\"] .invoke-status')?.dataset.status === '200'")
    assert '"got"' in call.locator(".invoke-output").inner_text()
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], "triggers-panel.png"))
    # the run it started is in the picker, said to come from the trigger
    page.wait_for_function("() => [...document.querySelectorAll('#run-picker option')]"
                           ".some(o => o.dataset.origin === 'trigger call')", timeout=15_000)
    call.get_by_role("button", name="Open the run").click()
    page.wait_for_function("() => document.querySelector('[data-node-id=\"echo\"]')?.dataset.status === 'succeeded'")
    # pause and resume: the state changes on the page and on the server
    button.click()
    call = page.get_by_role("dialog", name="Triggers").locator('[data-trigger-id="call"]')
    call.get_by_role("button", name="Pause trigger call").click()
    page.wait_for_function("() => document.querySelector('[data-trigger-id=\"call\"]')?.dataset.state === 'paused'")
    _, body = studio.api("GET", f"/api/triggers?pipeline={pid}")
    assert {t["trigger_id"]: t["state"] for t in body["triggers"]}["call"] == "paused"
    call.get_by_role("button", name="Resume trigger call").click()
    page.wait_for_function("() => document.querySelector('[data-trigger-id=\"call\"]')?.dataset.state === 'running'")
    # a file dropped in the folder runs the pipeline; the panel counts it live
    (tmp_path / "drop.json").write_text('{"n": 9}')
    os.rename(tmp_path / "drop.json", workspace / "inbox" / "drop.json")
    page.wait_for_function("() => /Runs started\\s*1/.test(document.querySelector('[data-trigger-id=\"inbox\"]')"
                           "?.innerText || '')", timeout=30_000)
    assert studio.console_errors == []
