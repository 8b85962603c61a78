"""Run views that tell the truth: a past run drawn from its own document, every step's latest
result by default, a status bar that agrees with the cards, build time apart from a step's own
time, and problems marked where they are, with Run off and saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from server.engine.paths import Layout
from tests.conftest import REPO, require

from .conftest import report_pipeline, select_node, wait_saved, wait_status, write, write_pipeline


CARD_WORD = "(id) => document.querySelector(`.card[data-node-id='${id}'] .status-word`).textContent"
CARD_FOOT = "(id) => document.querySelector(`.card[data-node-id='${id}'] .card-foot`).textContent"
# the status bar's "N of M steps finished", and the same counted from the cards: a card whose result
# is from an earlier run (.card-from) is not a step of the run on show
AGREE = """() => {
  const m = /(\\d+) of (\\d+) steps? finished/.exec(document.getElementById('run-summary').textContent);
  const cards = [...document.querySelectorAll('.card')].filter((c) => !c.querySelector('.card-from') && c.dataset.status);
  const done = cards.filter((c) => ['succeeded', 'cached'].includes(c.dataset.status)).length;
  return m ? [Number(m[1]), Number(m[2]), done, cards.length] : null;
}"""


def shot(page, name: str) -> None:
    """A screenshot to look at, when PIPELOOM_SCREENSHOT_DIR names a folder for them."""
    if os.environ.get("PIPELOOM_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SCREENSHOT_DIR"], f"{name}.png"))


def run_and_wait(page, status: str = "succeeded") -> None:
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("(s) => document.body.dataset.runStatus === s && !document.getElementById('run-button').disabled",
                           arg=status, timeout=120_000)


def runs_of(studio, pid: str) -> list[str]:
    return [r["run_id"] for r in studio.api("GET", f"/api/runs?pipeline={pid}")[1]]


def test_a_past_run_is_drawn_from_its_own_document(studio, workspace):
    pid = keyed_pipeline(workspace)
    page = studio.open(pid)
    run_and_wait(page)
    first = runs_of(studio, pid)[0]

    # After the run, a step is added and fed from `gen`: today's graph has it, the run did not.
    write(workspace, "steps/later.py", "import pipeloom\npipeloom.write('out', pipeloom.read('rows'))\n")
    path = workspace / "keyed.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"].append({"id": "later", "runtime": "python", "title": "Later step", "source": "steps/later.py",
                         "inputs": [{"name": "rows", "file": "rows.json", "format": "json"}],
                         "outputs": [{"name": "out", "file": "out.json", "format": "json"}],
                         "position": {"x": 420, "y": 300}})
    doc["edges"].append({"from": "gen.rows", "to": "later.rows"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # as an editor would: the studio reloads it
    page.wait_for_selector('.card[data-node-id="later"]')
    # the default view: the new step has never run, and its connection carries no count
    assert page.evaluate(CARD_WORD, "later") == "Not run yet"
    edge = '.edge[data-edge="gen.rows->later.rows"]'
    page.wait_for_selector('.edge[data-edge="gen.rows->filt.rows"].has-records', state="attached")
    assert "has-records" not in page.get_attribute(edge, "class")

    page.select_option("#run-picker", first)
    page.wait_for_selector('.card[data-node-id="later"][data-since="added"]')
    assert page.evaluate(CARD_WORD, "later") == "Not in this run"
    assert "added since" in page.evaluate(CARD_FOOT, "later")
    assert page.get_attribute(edge, "data-since") == "added"
    assert "has-records" not in page.get_attribute(edge, "class")
    assert "added since" in page.text_content(f"{edge} .edge-label")
    assert page.locator('.card[data-node-id="later"] .port-count:not([hidden])').count() == 0
    # the steps that ran keep their counts from that run
    assert page.inner_text('.card[data-node-id="filt"] [data-testid="count-in-rows"]') == "50 in"
    assert "50" in page.text_content('.edge[data-edge="gen.rows->filt.rows"] .edge-label')
    assert "drawn as it ran" in page.inner_text("#run-summary")
    assert page.evaluate("() => window.pipeloomStudio.canvas.readOnly") is True
    shot(page, "past-run-as-it-ran")

    # back to the latest: today's graph, editable
    page.select_option("#run-picker", "")
    page.wait_for_selector('.card[data-node-id="later"][data-since=""]')
    assert page.evaluate("() => window.pipeloomStudio.canvas.readOnly") is False

    # a run recorded before runs kept their pipeline is drawn on today's graph, and says so
    path = Layout(workspace).run_dir(first) / "run.json"
    old = json.loads(path.read_text())
    old.pop("document")
    path.write_text(json.dumps(old))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#run-picker", first)
    page.wait_for_function("() => document.getElementById('run-summary').textContent.includes(\"drawn on today's pipeline\")")


def test_latest_results_after_running_one_step(studio, workspace):
    pid = report_pipeline(workspace)
    page = studio.open(pid)
    run_and_wait(page)
    first = runs_of(studio, pid)[0]
    select_node(page, "report")
    page.get_by_role("button", name="Run this step").click()
    page.wait_for_function("(f) => document.body.dataset.runStatus === 'succeeded' && "
                           "window.pipeloomStudio.run.run_id !== f", arg=first)
    # `shout` was not in that run: it shows its latest result, and where it is from
    page.wait_for_selector('.card[data-node-id="shout"][data-status="succeeded"] .card-from')
    assert page.evaluate(CARD_WORD, "shout") == "Succeeded"
    assert "from" in page.inner_text('.card[data-node-id="shout"] .card-from')
    assert first in page.get_attribute('.card[data-node-id="shout"] .card-from', "title")
    select_node(page, "shout")
    assert first in page.inner_text('[data-testid="result-from"]')
    page.wait_for_selector('[data-testid="preview"] .jtree, [data-testid="preview"] table')
    assert "FIRST" in page.inner_text('[data-testid="preview"]')
    page.wait_for_function("() => document.querySelector('[data-testid=log]').textContent.includes('shouted')")
    assert first in page.inner_text(".drawer-notice")
    # the status bar counts the step of that run, and says one shows an earlier result
    summary = page.inner_text("#run-summary")
    assert "1 of 1 step finished" in summary and "1 step shows its result from an earlier run" in summary
    agree = page.evaluate(AGREE)
    assert agree[0] == agree[2] and agree[1] == agree[3], agree
    shot(page, "latest-results-after-one-step")

    # a run picked in "Showing" still shows exactly that run
    second = runs_of(studio, pid)[0]
    page.select_option("#run-picker", second)
    page.wait_for_function(f"() => ({CARD_WORD})('shout') === 'Not in this run'")


FILTER_PY = '''\
import pipeloom
rows = pipeloom.read("rows")
kept = [r for r in rows if r["n"] % 10]
for r in rows:
    if not r["n"] % 10:
        print(f"dropped n={r['n']}: a round number")
pipeloom.write("kept", kept)
print(f"filter: kept {len(kept)} of {len(rows)} records, dropped {len(rows) - len(kept)}")
'''


def keyed_pipeline(ws: Path) -> str:
    write(ws, "steps/gen.py", "import pipeloom\npipeloom.write('rows', [{'n': i, 'v': i * 2} for i in range(50)])\n")
    write(ws, "steps/filt.py", FILTER_PY)
    return write_pipeline(ws, "keyed", {
        "version": 1, "name": "Keyed",
        "nodes": [
            {"id": "gen", "runtime": "python", "source": "steps/gen.py",
             "outputs": [{"name": "rows", "file": "rows.json", "format": "json", "key": ["n"]}],
             "position": {"x": 40, "y": 60}},
            {"id": "filt", "runtime": "python", "title": "Drop round numbers", "source": "steps/filt.py",
             "inputs": [{"name": "rows", "file": "rows.json", "format": "json"}],
             "outputs": [{"name": "kept", "file": "kept.json", "format": "json", "key": ["n"]}],
             "position": {"x": 420, "y": 60}},
        ],
        "edges": [{"from": "gen.rows", "to": "filt.rows"}],
    })


def test_after_an_all_cached_cli_run_the_filter_summary_is_in_view(studio, workspace):
    pid = keyed_pipeline(workspace)
    cli = [sys.executable, "-m", "server.cli", "run", str(workspace / "keyed.pipeline.yaml"), "--workspace", str(workspace)]
    for _ in range(2):
        done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    runs = runs_of(studio, pid)
    assert len(runs) == 2
    page = studio.open(pid)
    wait_status(page, "filt", "cached")
    select_node(page, "filt")
    # its drop counts, from the run whose program made its output, with no link to follow
    page.wait_for_selector('[data-testid="diff"][data-dropped="5"]')
    page.wait_for_function("() => document.querySelector('[data-testid=log]').textContent.includes('filter: kept 45 of 50 records, dropped 5')")
    assert runs[1] in page.inner_text(".drawer-notice")
    # the whole log is there: its lines are counted, not "so far"
    page.wait_for_function("() => /\\(\\d+ lines?\\)/.test(document.querySelector('.drawer-notice').textContent)")
    assert "so far" not in page.inner_text(".drawer-notice")
    assert "Cached" in page.inner_text('[data-testid="cached-note"]')
    shot(page, "all-cached-cli-run")


def check_agreement(page, until_done: int) -> list:
    """Read the status bar and the cards together until `until_done` steps finished; every reading agrees."""
    seen = []
    for _ in range(80):
        agree = page.evaluate(AGREE)
        if agree:
            seen.append(agree)
            assert agree[0] == agree[2] and agree[1] == agree[3], seen
        if page.evaluate("() => document.body.dataset.runStatus") == "succeeded" and agree and agree[0] == until_done:
            break
        page.wait_for_timeout(100)
    return seen


def test_status_bar_agrees_with_the_cards_while_and_after_running(studio, workspace):
    pid = report_pipeline(workspace)
    write(workspace, "steps/shout.py", "import time, pipeloom\ntime.sleep(2)\n"
          "pipeloom.write('out', {'shout': str(pipeloom.read('summary')['label']).upper()})\n")
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    seen = check_agreement(page, 2)
    assert seen and seen[-1] == [2, 2, 2, 2], seen
    # a second page opened while a run goes starts from the snapshot, then the stored run: it agrees too
    write(workspace, "steps/shout.py", "import time, pipeloom\ntime.sleep(3)\n"
          "pipeloom.write('out', {'shout': 'AGAIN'})\n")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_selector('.card[data-node-id="shout"][data-status="running"]')
    other = studio.open(pid)
    seen = check_agreement(other, 2)
    assert seen and seen[-1] == [2, 2, 2, 2], seen
    assert "2 of 2 steps finished" in other.inner_text("#run-summary")


def test_a_first_build_is_timed_apart_from_the_step(studio, workspace):
    require(subprocess.run(["which", "go"], capture_output=True).returncode == 0, "the go toolchain is not installed")
    # a program of its own, so the build cache cannot already hold it
    write(workspace, "steps/hello.go", f'package main\n\nimport "os"\n\n// {uuid.uuid4().hex}\n'
          'func main() { os.WriteFile("out.json", []byte("[1, 2, 3]"), 0o644) }\n')
    pid = write_pipeline(workspace, "build", {
        "version": 1, "name": "Build",
        "nodes": [{"id": "hello", "runtime": "go", "title": "Say hello", "source": "steps/hello.go",
                   "outputs": [{"name": "out", "file": "out.json", "format": "json"}], "position": {"x": 40, "y": 60}}],
        "edges": []})
    page = studio.open(pid)
    run_and_wait(page)
    run = studio.api("GET", f"/api/runs/{runs_of(studio, pid)[0]}")[1]
    node = run["nodes"]["hello"]
    assert node["build_s"] and node["build_s"] > 0 and node["duration_s"] is not None
    duration = page.locator('.card[data-node-id="hello"] .card-duration')
    assert duration.inner_text().startswith("ran "), duration.inner_text()
    assert "Built in" in duration.get_attribute("title") and "ran in" in duration.get_attribute("title")
    assert "built in" in page.get_attribute('.card[data-node-id="hello"]', "aria-label")
    select_node(page, "hello")
    facts = page.inner_text(".insp-run .facts")
    assert "Built in" in facts and "Ran in" in facts
    shot(page, "build-time-apart")


def test_a_problem_is_marked_on_its_step_and_run_says_why_it_is_off(studio, workspace):
    pid = report_pipeline(workspace)
    path = workspace / "report.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["inputs"].append({"name": "extra", "file": "extra.json", "format": "json"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    page = studio.open(pid)
    card = '.card[data-node-id="shout"]'
    page.wait_for_selector(f"{card}.has-problem")
    assert page.locator(f'{card} .port.port-problem[data-port="extra"]').count() == 1
    badge = page.locator(f"{card} .card-problem")
    assert badge.is_visible()
    assert "fed by nothing" in badge.get_attribute("data-tip")  # shown on hover and focus
    assert "fed by nothing" in badge.get_attribute("aria-label")
    run = page.locator("#run-button")
    assert run.is_disabled()
    assert "fed by nothing" in run.get_attribute("title")
    assert "fed by nothing" in page.inner_text("#run-blocked")
    assert page.locator('.card[data-node-id="report"].has-problem').count() == 0
    badge.focus()
    assert "Run is off" in page.inner_text("#run-summary")
    shot(page, "problem-on-the-canvas")

    # removing the port in the studio fixes it: the mark goes, Run comes back
    select_node(page, "shout")
    page.get_by_role("button", name="Remove input extra").click()
    wait_saved(page)
    page.wait_for_selector(f"{card}:not(.has-problem)")
    page.wait_for_function("() => !document.getElementById('run-button').disabled")
    assert "fed by nothing" not in (run.get_attribute("title") or "")

    # an edit the server refuses to save (a new input fed by nothing) is marked the same way, and Run
    # says the change is not saved
    page.select_option('select[aria-label="New port kind"]', "inputs")
    page.fill('input[aria-label="New port name"]', "more")
    page.get_by_role("button", name="Add port").click()
    page.wait_for_selector('#save-state[data-state="invalid"]')
    page.wait_for_selector(f'{card} .port.port-problem[data-port="more"]')
    assert run.is_disabled()
    assert "not saved yet" in run.get_attribute("title") and "fed by nothing" in run.get_attribute("title")


def test_the_demo_after_running_one_step_keeps_every_latest_result(studio, workspace, require_tool):
    for tool in ("cargo", "go", "node"):
        require_tool(tool, f"the demo needs `{tool}`")
    status, made = studio.api("POST", "/api/demo", {})
    assert status == 201, made
    pid = made["id"]
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded' && "
                           "!document.getElementById('run-button').disabled", timeout=600_000)
    first = runs_of(studio, pid)[0]
    select_node(page, "filter")
    page.get_by_role("button", name="Run this step").click()
    page.wait_for_function("(f) => document.body.dataset.runStatus === 'succeeded' && "
                           "window.pipeloomStudio.run.run_id !== f", arg=first, timeout=120_000)
    # notify and archive were not in that run: they keep their result, saying which run made it
    for step in ("notify", "archive"):
        page.wait_for_selector(f'.card[data-node-id="{step}"][data-status="succeeded"] .card-from')
        assert first in page.get_attribute(f'.card[data-node-id="{step}"] .card-from', "title")
        assert page.locator(f'.card[data-node-id="{step}"] .port-count:not([hidden])').count() > 0
    select_node(page, "notify")
    assert first in page.inner_text('[data-testid="result-from"]')
    page.wait_for_selector('[data-testid="preview"] .jtree, [data-testid="preview"] table')
    page.wait_for_selector('[data-testid="diff"][data-dropped="35"]')  # what it did, from the run that made it
    shot(page, "demo-after-running-one-step")
