"""A pipeline file that does not parse: the studio says where the errors are,
offers no edits and never saves over it, and shows the pipeline again once
the file is fixed."""

from __future__ import annotations

import time

import yaml

from .conftest import report_pipeline, select_node, wait_saved, wait_status

# Line 6 is indented one space short: YAML cannot read it.
BROKEN = "version: 1\nname: Report\nnodes:\n  - id: report\n    runtime: python\n   source: steps/report.py\n"


def assert_read_only(page) -> None:
    banner = page.locator("#banner")
    text = banner.inner_text()
    assert "This file has errors, so the studio can't show it" in text
    assert "line 6:" in text
    assert "Fix it in your editor; the studio reloads it when it changes." in text
    assert page.locator(".card").count() == 0
    assert page.locator("#palette").is_hidden()
    assert "Drag a step" not in page.inner_text("#canvas")
    assert "can't show it" in page.inner_text("#canvas")
    assert page.get_by_role("button", name="Run", exact=True).is_disabled()
    assert page.locator("#auto-layout").is_disabled()


def test_a_broken_file_opens_read_only_and_shows_again_once_fixed(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    good = path.read_text()
    path.write_text(BROKEN)
    page = studio.open(pid)
    assert_read_only(page)
    # Nothing the user does here writes to the file.
    page.keyboard.press("Control+z")
    time.sleep(1)
    assert path.read_text() == BROKEN
    notes = [v["note"] for v in studio.api("GET", f"/api/pipelines/{pid}/versions")[1]]
    assert "saved in the studio" not in notes

    path.write_text(good)
    page.wait_for_selector('.card[data-node-id="report"]', timeout=10_000)
    assert page.locator("#banner").is_hidden()
    assert page.locator("#palette").is_visible()
    assert page.get_by_role("button", name="Run", exact=True).is_enabled()
    assert path.read_text() == good


def test_a_file_that_breaks_while_open_turns_read_only(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    page = studio.open(pid)
    page.wait_for_selector('.card[data-node-id="shout"]')
    path.write_text(BROKEN)
    page.wait_for_selector('#banner[data-kind="error"]:not([hidden])', timeout=10_000)
    assert_read_only(page)
    assert path.read_text() == BROKEN
    # An earlier version is a way back; nothing is left to undo afterwards.
    page.locator("#banner").get_by_role("button", name="Earlier versions").click()
    page.get_by_role("button", name="Show the changes of version 1").click()
    page.get_by_role("button", name="Restore version 1").click()
    page.wait_for_selector('.card[data-node-id="shout"]')
    assert page.locator("#banner").is_hidden()
    assert yaml.safe_load(path.read_text())["nodes"][1]["id"] == "shout"
    assert page.locator("#undo").is_disabled()


def test_unsaved_edits_over_a_file_that_broke_are_kept_until_the_user_chooses(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    page = studio.open(pid)
    select_node(page, "shout")
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill("Edited in the studio")
    title.press("Enter")
    path.write_text(BROKEN)
    banner = page.locator('#banner[data-kind="error"]')
    banner.wait_for(timeout=10_000)
    assert "the file on disk now has errors" in banner.inner_text()
    assert "line 6:" in banner.inner_text()
    time.sleep(1)
    assert path.read_text() == BROKEN, "the broken file is not replaced unasked"
    # The edit is still on the canvas; replacing the file is the user's call.
    assert page.text_content('.card[data-node-id="shout"] .card-title') == "Edited in the studio"
    banner.get_by_role("button", name="Replace it with my version").click()
    wait_saved(page)
    saved = yaml.safe_load(path.read_text())
    assert any(n.get("title") == "Edited in the studio" for n in saved["nodes"])
    assert page.locator("#banner").is_hidden()


def test_the_status_bar_counts_no_steps_while_the_file_is_broken(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "shout", ("succeeded",))
    path.write_text(BROKEN)
    page.wait_for_selector('#banner[data-kind="error"]:not([hidden])', timeout=10_000)
    summary = page.inner_text("#run-summary")
    assert "succeeded" in summary and "0 of 0" not in summary, summary
