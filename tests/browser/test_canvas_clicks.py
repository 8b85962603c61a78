"""A click anywhere on a card selects it; only an output's dot or name starts a connection."""

from __future__ import annotations

from .conftest import one_step_pipeline


def test_a_click_on_the_output_row_selects_the_card(studio, workspace):
    pid = one_step_pipeline(workspace, "one", "only", "The only step", "print('hi')\n",
                            {"name": "out", "format": "json"})
    page = studio.open(pid)
    port = page.locator('.card[data-node-id="only"] .port-out').first
    box = port.bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + box["height"] / 2)  # the empty left part of the output's row
    page.wait_for_selector('.card[data-node-id="only"].selected')
    assert page.locator(".canvas.connecting").count() == 0 and page.locator(".port.wiring").count() == 0
    assert page.locator("#inspector .insp-title-input").input_value() == "The only step"
    # the output's name still starts a connection
    name = port.locator(".port-name").bounding_box()
    page.mouse.click(name["x"] + name["width"] / 2, name["y"] + name["height"] / 2)
    page.wait_for_selector(".port.wiring")
