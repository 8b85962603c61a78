"""The README's picture of the studio mid-run, taken by the tests' own browser.

Every run takes the picture; only PIPELOOM_SCREENSHOT=1 writes it to
docs/studio.png, so ordinary runs never rewrite the committed file.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO

from .conftest import select_node

SHOT = REPO / "docs" / "studio.png"

MIXED = """() => {
  const s = [...document.querySelectorAll('.card')].map(c => c.dataset.status);
  const done = s.filter(x => x === 'succeeded' || x === 'cached').length;
  return done >= 2 && s.includes('running') && document.querySelector('.edge.has-records');
}"""


def test_readme_screenshot_of_the_studio_mid_run(studio, workspace, require_tool, tmp_path):
    shot = SHOT if os.environ.get("PIPELOOM_SCREENSHOT") == "1" else tmp_path / "studio.png"
    for tool in ("cargo", "go", "node"):
        require_tool(tool, f"the demo needs `{tool}`")
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    page = studio.open(created["id"], viewport={"width": 1600, "height": 1000})
    page.click("#auto-layout")
    # A first run builds the Rust and Go programs; the picture is of a warm, forced run.
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=300_000)
    select_node(page, "filter")
    page.click("#zoom-fit")
    for _ in range(8):
        page.evaluate("() => window.pipeloomStudio.startRun({force: true})")
        try:
            page.wait_for_function(MIXED, polling="raf", timeout=15_000)
        except Exception:
            page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=60_000)
            continue
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot))
        break
    else:
        pytest.fail("never caught the demo mid-run")
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=60_000)
    assert shot.stat().st_size > 20_000
