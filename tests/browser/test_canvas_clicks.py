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


def test_the_whole_demo_fits_beside_the_inspector_on_a_laptop(studio):
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    page = studio.open(created["id"], viewport={"width": 1440, "height": 900})

    def all_in_view():
        canvas = page.locator("#canvas").bounding_box()
        inspector = page.locator("#inspector").bounding_box()
        assert canvas["x"] + canvas["width"] <= inspector["x"] + 1
        for card in page.locator(".card").all():
            b = card.bounding_box()
            assert canvas["x"] <= b["x"] and b["x"] + b["width"] <= canvas["x"] + canvas["width"], card.get_attribute("data-node-id")
            assert canvas["y"] <= b["y"] and b["y"] + b["height"] <= canvas["y"] + canvas["height"]
        zoom = page.evaluate("() => window.pipeloomStudio.canvas.view.k")
        assert zoom >= 0.75  # still readable

    all_in_view()
    page.get_by_role("button", name="Tidy up").click()
    page.wait_for_timeout(400)
    page.get_by_role("button", name="Fit").click()
    page.wait_for_timeout(400)
    all_in_view()
