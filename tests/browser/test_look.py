"""What the canvas looks like: whole titles, edges that go around cards, labels that
cover nothing, failures explained in plain words, durations people can read."""

from __future__ import annotations

from .conftest import one_step_pipeline, select_node, wait_status, write, write_pipeline

# Every problem a reader would see: a cut title, a label on a card or on another
# label, an edge running under a card it does not join. Screen coordinates throughout.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const cards = [...document.querySelectorAll('.card')].map((c) => ({ id: c.dataset.nodeId, r: c.getBoundingClientRect() }));
  for (const t of document.querySelectorAll('.card-title')) {
    if (t.scrollHeight > t.clientHeight + 1) problems.push(`title cut short: ${t.textContent}`);
  }
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const labels = [...document.querySelectorAll('.edge')].map((g) => ({ key: g.dataset.edge, r: g.querySelector('.edge-label rect').getBoundingClientRect() }));
  for (const l of labels) for (const c of cards) if (meets(l.r, c.r)) problems.push(`label of ${l.key} covers ${c.id}`);
  for (let i = 0; i < labels.length; i += 1) {
    for (let j = i + 1; j < labels.length; j += 1) {
      if (meets(labels[i].r, labels[j].r)) problems.push(`labels of ${labels[i].key} and ${labels[j].key} overlap`);
    }
  }
  for (const g of document.querySelectorAll('.edge')) {
    const [from, to] = g.dataset.edge.split('->');
    const ends = [from.split('.')[0], to.split('.')[0]];
    const path = g.querySelector('.edge-line');
    const ctm = path.getScreenCTM();
    const length = path.getTotalLength();
    for (const c of cards) {
      if (ends.includes(c.id)) continue;
      for (let s = 0; s <= length; s += 6) {
        const p = new DOMPoint(path.getPointAtLength(s).x, path.getPointAtLength(s).y).matrixTransform(ctm);
        if (p.x > c.r.left && p.x < c.r.right && p.y > c.r.top && p.y < c.r.bottom) {
          problems.push(`${g.dataset.edge} runs under ${c.id}`);
          break;
        }
      }
    }
  }
  return problems;
}"""

MAKE_PY = '''\
import pipeloom
pipeloom.write("rows", [{"id": i, "value": i * 2} for i in range(1000)])
'''

KEEP_PY = '''\
import pipeloom
rows = pipeloom.read("rows")
pipeloom.write("kept", [r for r in rows if r["value"] % 3])
'''

JOIN_PY = '''\
import pipeloom
raw = pipeloom.read("raw")
kept = pipeloom.read("kept")
pipeloom.write("report", {"raw": len(raw), "kept": len(kept)})
'''


def three_in_a_row(ws) -> str:
    """make -> keep -> join, plus make -> join, which has to pass the middle card."""
    write(ws, "steps/make.py", MAKE_PY)
    write(ws, "steps/keep.py", KEEP_PY)
    write(ws, "steps/join.py", JOIN_PY)
    out = lambda name: {"name": name, "file": f"{name}.json", "format": "json"}  # noqa: E731
    return write_pipeline(ws, "row", {
        "version": 1, "name": "Row",
        "nodes": [
            {"id": "make", "runtime": "python", "title": "Make a thousand readings", "source": "steps/make.py",
             "outputs": [out("rows")], "position": {"x": 40, "y": 200}},
            {"id": "keep", "runtime": "python", "title": "Drop every third reading",
             "source": "steps/keep.py", "inputs": [out("rows")], "outputs": [out("kept")],
             "position": {"x": 400, "y": 200}},
            {"id": "join", "runtime": "python", "title": "Compare the counts", "source": "steps/join.py",
             "inputs": [out("raw"), out("kept")], "outputs": [out("report")], "position": {"x": 760, "y": 200}},
        ],
        "edges": [{"from": "make.rows", "to": "keep.rows"}, {"from": "keep.kept", "to": "join.kept"},
                  {"from": "make.rows", "to": "join.raw"}],
    })


def test_the_demo_reads_cleanly_as_stored_and_after_tidy_up(studio, workspace):
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    page = studio.open(created["id"], viewport={"width": 1600, "height": 1000})
    titles = page.eval_on_selector_all(".card-title", "ts => ts.map(t => t.textContent)")
    assert "Keep sensible readings" in titles and "Spot unusual readings" in titles
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    page.click("#auto-layout")
    page.wait_for_selector('#save-state[data-state="saved"]')
    assert page.evaluate(LAYOUT_PROBLEMS) == []


def test_record_counts_fit_between_cards_and_a_long_edge_goes_around(studio, workspace):
    pid = three_in_a_row(workspace)
    page = studio.open(pid, viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.edge.has-records').length === 3")
    assert "1,000 records" in page.text_content('[data-edge="make.rows->join.raw"] .edge-label')
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    # Dragging the middle card down moves the detour with it.
    before = page.get_attribute('[data-edge="make.rows->join.raw"] .edge-line', "d")
    page.evaluate("() => window.pipeloomStudio.canvas.moveNodes({keep: {x: 400, y: 320}})")
    assert page.get_attribute('[data-edge="make.rows->join.raw"] .edge-line', "d") != before
    assert page.evaluate(LAYOUT_PROBLEMS) == []


FAIL_PY = '''\
import pipeloom
rows = pipeloom.read("rows")
raise ValueError("the readings have no unit")
'''


def test_a_failed_step_says_why_in_plain_words(studio, workspace):
    write(workspace, "steps/make.py", MAKE_PY)
    write(workspace, "steps/check.py", FAIL_PY)
    write(workspace, "steps/send.py", "print('sent')\n")
    port = {"name": "rows", "file": "rows.json", "format": "json"}
    checked = {"name": "checked", "file": "checked.json", "format": "json"}
    pid = write_pipeline(workspace, "failing", {
        "version": 1, "name": "Failing",
        "nodes": [
            {"id": "make", "runtime": "python", "title": "Make readings", "source": "steps/make.py",
             "outputs": [port], "position": {"x": 40, "y": 60}},
            {"id": "check", "runtime": "python", "title": "Check the readings", "source": "steps/check.py",
             "inputs": [port], "outputs": [checked], "position": {"x": 400, "y": 60}},
            {"id": "send", "runtime": "python", "title": "Send them on", "source": "steps/send.py",
             "inputs": [port], "position": {"x": 760, "y": 60}},
        ],
        "edges": [{"from": "make.rows", "to": "check.rows"}, {"from": "check.checked", "to": "send.rows"}],
    })
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    assert wait_status(page, "check", ("failed", "succeeded")) == "failed"
    wait_status(page, "send", "skipped")
    page.wait_for_function("() => document.body.dataset.runStatus === 'failed'")
    # The cards say it in a few words...
    assert page.text_content('.card[data-node-id="check"] .card-reason') == "stopped by an error"
    assert page.text_content('.card[data-node-id="send"] .card-reason') == "an earlier step failed"
    # ...the inspector in a sentence, with the program's own last words.
    select_node(page, "check")
    reason = page.locator('[data-testid="run-reason"]')
    assert "The program stopped with an error (exit code 1)." in reason.inner_text()
    page.wait_for_selector('[data-testid="error-lines"]:not([hidden])')
    assert "ValueError: the readings have no unit" in page.inner_text('[data-testid="error-lines"]')
    select_node(page, "send")
    assert "Not run, because “Check the readings” failed." in page.inner_text('[data-testid="run-reason"]')
    # With nothing selected, the pipeline's summary names the step that stopped the run.
    page.keyboard.press("Escape")
    page.wait_for_selector(".stopped-list")
    summary = page.inner_text(".stopped-list")
    assert "Check the readings" in summary and "stopped with an error" in summary


def test_durations_read_as_milliseconds_under_a_second_and_seconds_above(studio, workspace):
    page = studio.page("/")
    shown = page.evaluate("""async () => {
      const { formatDuration } = await import('/static/js/dom.js');
      return [0.0002, 0.034, 0.9996, 1.26, 9.97, 42.4, 59.7, 125, 3725].map(formatDuration);
    }""")
    assert shown == ["under 1 ms", "34 ms", "1.0 s", "1.3 s", "10 s", "42 s", "1 min", "2 min 5 s", "1 h 2 min"]


# Each line of a step's source against its number in the gutter: the top of the first character of
# each, in screen pixels, for every line that has a character.
SOURCE_LINES_OFF_THEIR_NUMBERS = """() => {
  const [gutter, code] = [...document.querySelectorAll('#inspector .source td pre')];
  function tops(pre) {
    const out = [];
    const walk = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    let node; let line = 0; let atStart = true;
    while ((node = walk.nextNode())) {
      for (let i = 0; i < node.data.length; i += 1) {
        if (node.data[i] === '\\n') { line += 1; atStart = true; continue; }
        if (!atStart || node.data[i] === ' ') continue;
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        out[line] = range.getClientRects()[0].top;
        atStart = false;
      }
    }
    return out;
  }
  const numbers = tops(gutter); const lines = tops(code); const off = [];
  lines.forEach((top, i) => {
    if (numbers[i] === undefined || Math.abs(numbers[i] - top) > 1) off.push(`line ${i + 1}: ${top} beside number at ${numbers[i]}`);
  });
  return { lines: lines.filter((t) => t !== undefined).length, off };
}"""


def test_each_line_of_a_steps_source_sits_beside_its_number(studio, workspace):
    code = "".join(f"# line {i}: a comment, then some code\nvalue_{i} = {i} * 2\n" for i in range(40))
    pid = one_step_pipeline(workspace, "numbered", "make", "Make rows", code, {"name": "rows", "format": "json"})
    page = studio.open(pid)
    select_node(page, "make")
    page.wait_for_selector("#inspector .source td.code pre")
    found = page.evaluate(SOURCE_LINES_OFF_THEIR_NUMBERS)
    assert found["lines"] == 80, found
    assert found["off"] == [], found["off"][:5]
