"""Inspecting data like a data tool: what came in beside what went out, a large table sorted, filtered and
searched on the server, nested values opened in place, records as a tree, and category labels."""

from __future__ import annotations

import os

from .conftest import select_node, wait_status, write, write_pipeline

ROWS = 200_000
MAKE_PY = f'''\
import json
labels = ["normal", "normal", "normal", "warning", "normal", "critical"]
with open("rows.ndjson", "w") as fh:
    for i in range({ROWS}):
        fh.write(json.dumps({{"id": i, "sensor": "sensor-%d" % (i * 7 % 13), "value": (i * 7919) % 100003,
                             "label": labels[i % 6], "reading": {{"unit": "°C", "raw": [i, i + 1]}}}}) + "\\n")
print("wrote {ROWS} rows")
'''
PICK_PY = '''\
import csv, json
rows = [r for r in csv.DictReader(open("rows.csv")) if r["label"] != "normal"][:500]
json.dump(rows, open("picked.json", "w"))
'''


def shot(page, tmp_path, name: str, show: str | None = None) -> None:
    if show:
        page.locator(show).first.scroll_into_view_if_needed()
        page.locator(show).first.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(tmp_path / name))
    if os.environ.get("PIPELOOM_SHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["PIPELOOM_SHOT_DIR"], name))


def big_pipeline(workspace) -> str:
    write(workspace, "make.py", MAKE_PY)
    write(workspace, "pick.py", PICK_PY)
    return write_pipeline(workspace, "big", {
        "version": 1, "name": "Big table",
        "nodes": [
            {"id": "make", "runtime": "python", "title": "Make readings", "source": "make.py",
             "outputs": [{"name": "rows", "file": "rows.ndjson", "format": "ndjson", "categories": ["label"]}],
             "position": {"x": 40, "y": 60}},
            {"id": "pick", "runtime": "python", "title": "Pick alerts", "source": "pick.py",
             "inputs": [{"name": "rows", "file": "rows.csv", "format": "csv"}],
             "outputs": [{"name": "picked", "file": "picked.json", "format": "json"}],
             "position": {"x": 420, "y": 60}},
        ],
        "edges": [{"from": "make.rows", "to": "pick.rows"}],
    })


def column(preview, name: str) -> list[str]:
    """The texts of one column of the table shown."""
    heads = [t.strip() for t in preview.locator("thead th").all_inner_texts()]
    idx = next(i for i, t in enumerate(heads) if t.split("\n")[0].strip().rstrip("↕▲▼").strip() == name)
    return [t.strip() for t in preview.locator(f"tbody tr td:nth-child({idx + 1})").all_inner_texts()]


def wait_rows(page, testid: str, predicate: str, timeout: float = 120_000) -> None:
    # columns: #, label (a category, so first), id, sensor, value, reading
    """Wait until the table of the preview `testid` satisfies a JS predicate over its rows' first data cells."""
    page.wait_for_function(
        f"""() => {{ const box = document.querySelector('[data-testid="{testid}"]');
          if (!box || box.querySelector('[data-testid="query-working"]')) return false;
          const rows = [...box.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.replace(/\\s+/g, '')));
          return rows.length > 0 && ({predicate})(rows); }}""", timeout=timeout)


def test_a_large_table_sorts_filters_and_searches_on_the_server(studio, workspace, tmp_path):
    pid = big_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",), timeout=180_000)
    select_node(page, "make")
    preview = page.locator('[data-testid="preview"]')
    preview.locator("tbody tr").first.wait_for()
    # the header sorts: ascending, then descending, with aria-sort saying which
    value_head = preview.locator('th[data-column="value"]')
    assert value_head.get_attribute("aria-sort") == "none"
    value_head.get_by_role("button").click()
    working_seen = page.locator('[data-testid="preview"] [data-testid="query-working"]')
    try:
        working_seen.wait_for(timeout=3000)
        assert "Still working" in working_seen.inner_text()
        shot(page, tmp_path, "inspect-sort-working.png", '[data-testid="went-out"]')
    except Exception:
        pass  # a fast machine may answer before the note shows
    wait_rows(page, "preview", "rows => rows[0][4] === '0'")
    assert preview.locator('th[data-column="value"]').get_attribute("aria-sort") == "ascending"
    values = [int(v.replace(",", "")) for v in column(preview, "value")]
    assert values == sorted(values) and values[0] == 0
    preview.locator('th[data-column="value"]').get_by_role("button").click()
    wait_rows(page, "preview", "rows => rows[0][4] === '100002'")
    assert preview.locator('th[data-column="value"]').get_attribute("aria-sort") == "descending"
    values = [int(v) for v in column(preview, "value")]
    assert values == sorted(values, reverse=True)
    # the file's record numbers stay beside each row; the pager counts them all
    assert "of 200,000" in preview.locator('[data-testid="preview-range"]').inner_text()
    # a filter: label is critical, still sorted
    bar = preview.locator('[data-testid="query-bar"]')
    bar.get_by_label("Filter column").select_option("label")
    bar.get_by_label("Filter condition").select_option("eq")
    bar.get_by_label("Filter value").fill("critical")
    bar.get_by_role("button", name="Filter", exact=True).click()
    wait_rows(page, "preview", "rows => rows.every(r => r[1] === '✕critical')")
    assert "of 33,333 matching" in preview.locator('[data-testid="preview-range"]').inner_text()
    values = [int(v) for v in column(preview, "value")]
    assert values == sorted(values, reverse=True)
    labels = preview.locator("tbody .cat")
    assert labels.first.get_attribute("data-tone") == "danger" and labels.first.inner_text().endswith("critical")
    shot(page, tmp_path, "inspect-sorted-filtered.png", '[data-testid="went-out"]')
    # a search over every column, on top of the filter
    bar = preview.locator('[data-testid="query-bar"]')
    bar.get_by_label("Search the rows").fill("sensor-12")
    bar.get_by_label("Search the rows").press("Enter")
    wait_rows(page, "preview", "rows => rows.every(r => r[3] === 'sensor-12' && r[1] === '✕critical')")
    want = sum(1 for i in range(ROWS) if i % 6 == 5 and i * 7 % 13 == 12)
    assert f"of {want:,} matching" in preview.locator('[data-testid="preview-range"]').inner_text()
    # removing the filter chip keeps the search
    preview.get_by_role("button", name="Remove the filter label is critical").click()
    wait_rows(page, "preview", "rows => rows.every(r => r[3] === 'sensor-12') && rows.some(r => r[1] !== '✕critical')")
    assert not studio.errors


def test_nested_values_open_in_place_and_records_show_as_a_tree(studio, workspace, tmp_path):
    pid = big_pipeline(workspace)
    page = studio.open(pid)
    page.get_by_role("button", name="Run", exact=True).click()
    wait_status(page, "pick", ("succeeded",), timeout=180_000)
    select_node(page, "make")
    preview = page.locator('[data-testid="preview"]')
    first = preview.locator("tbody tr").first
    first.wait_for()
    toggle = first.locator(".cell-disclosure")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.focus()
    page.keyboard.press("Enter")  # reachable and usable by keyboard
    assert toggle.get_attribute("aria-expanded") == "true"
    tree = first.locator(".cell-nested-tree")
    assert tree.is_visible()
    assert "unit" in tree.inner_text() and "°C" in tree.inner_text()
    preview.locator(".preview-view").evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    shot(page, tmp_path, "inspect-nested-open.png", '[data-testid="went-out"]')
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "false" and not tree.is_visible()
    # Table -> Tree
    preview.get_by_role("button", name="Tree", exact=True).click()
    records = preview.locator('[data-testid="records-tree"]')
    records.wait_for()
    assert preview.get_by_role("button", name="Tree", exact=True).get_attribute("aria-pressed") == "true"
    assert records.locator(":scope > .jt-node").count() == 50
    assert "#1" in records.locator(":scope > .jt-node").first.inner_text()
    records.locator(":scope > .jt-node > summary").first.click()
    assert "sensor-0" in records.locator(":scope > .jt-node").first.inner_text()
    label = records.locator(":scope > .jt-node").first.locator(".cat")  # the category field, as a label here too
    assert label.get_attribute("data-tone") == "ok" and label.inner_text().endswith("normal")
    shot(page, tmp_path, "inspect-tree.png", '[data-testid="went-out"]')
    preview.get_by_role("button", name="Table", exact=True).click()
    preview.locator("tbody tr").first.wait_for()
    # what came in beside what went out, for the step fed through a csv conversion
    select_node(page, "pick")
    came = page.locator('[data-testid="came-in"]')
    came.locator("tbody tr").first.wait_for()
    assert "200,000 records" in came.inner_text()
    assert came.locator('[data-testid="preview-range"]').inner_text() == "rows 1–50 of 200,000"
    assert "converted from ndjson to csv" in came.inner_text()
    assert came.locator("tbody .cat").first.inner_text().endswith("normal")  # the feeding output's categories
    went = page.locator('[data-testid="went-out"]')
    went.locator("tbody tr").first.wait_for()
    assert "500 records" in page.locator('[data-testid="went-out-count"]').inner_text()
    shot(page, tmp_path, "inspect-came-in-went-out.png", '[data-testid="came-in"]')
    assert not studio.errors


def test_the_demo_shows_what_came_in_and_labels_classify_output(studio, workspace, require_tool, tmp_path):
    for tool in ("cargo", "go", "node"):
        require_tool(tool, f"the demo needs `{tool}`")
    status, created = studio.api("POST", "/api/demo", {})
    assert status == 201, created
    page = studio.open(created["id"])
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => document.body.dataset.runStatus === 'succeeded'", timeout=600_000)
    select_node(page, "classify")
    came = page.locator('[data-testid="came-in"]')
    came.locator("tbody tr").first.wait_for(timeout=60_000)
    assert "991 records" in page.locator('[data-testid="came-in-count"]').inner_text()
    assert "From “Keep sensible readings” (its output events)" in came.inner_text()
    went = page.locator('[data-testid="went-out"]')
    went.locator("tbody tr").first.wait_for()
    # the classified output marks `label` as a category: filter to the critical ones and see their labels
    bar = went.locator('[data-testid="query-bar"]')
    bar.get_by_label("Filter column").select_option("label")
    bar.get_by_label("Filter condition").select_option("ne")
    bar.get_by_label("Filter value").fill("normal")
    bar.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_function("""() => { const labels = [...document.querySelectorAll('[data-testid="went-out"] tbody .cat')];
      return labels.length && labels.every(l => ['warning', 'danger'].includes(l.dataset.tone)); }""")
    assert went.locator("thead th").nth(1).get_attribute("data-column") == "label"  # a category column comes first
    tones = set(went.locator("tbody .cat").evaluate_all("els => els.map(e => e.dataset.tone + ':' + e.innerText.replace(/\\s+/g, ''))"))
    assert tones <= {"warning:!warning", "danger:✕critical"} and tones
    shot(page, tmp_path, "inspect-demo-classify.png", '[data-testid="went-out"]')
    # an entry input fed by a sample file shows that file
    select_node(page, "ingest")
    came = page.locator('[data-testid="came-in"]')
    came.get_by_role("tab", name="log").click()
    came.locator(".text-line").first.wait_for()
    assert "The file sensor-alerts/sensors.log, given in the pipeline." in came.inner_text()
    shot(page, tmp_path, "inspect-demo-ingest.png", '[data-testid="came-in"]')
    assert not studio.errors


CONTRAST = """els => els.map(el => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const st = getComputedStyle(el);
  const a = lum(rgb(st.color)), b = lum(rgb(st.backgroundColor));
  return [el.dataset.tone, el.innerText.replace(/\\s+/g, ''), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
})"""


def test_category_labels_have_their_tones_a_word_and_enough_contrast_in_both_themes(studio, workspace, tmp_path):
    write(workspace, "tickets.py", '''import json
states = ["open", "blocked", "done", "fyi", "later", "warning"]
json.dump([{"id": i, "state": states[i % 6], "note": "n%d" % i} for i in range(12)], open("tickets.json", "w"))
''')
    pid = write_pipeline(workspace, "tickets", {"version": 1, "name": "Tickets", "nodes": [
        {"id": "tickets", "runtime": "python", "source": "tickets.py", "title": "Tickets",
         "outputs": [{"name": "tickets", "format": "json",
                      "categories": {"state": {"open": "warning", "blocked": "danger", "done": "ok", "fyi": "info"}}}],
         "position": {"x": 40, "y": 60}}], "edges": []})
    for scheme in ("light", "dark"):
        page = studio.open(pid, color_scheme=scheme)
        if scheme == "light":
            page.get_by_role("button", name="Run", exact=True).click()
        wait_status(page, "tickets", ("succeeded",))
        select_node(page, "tickets")
        labels = page.locator('[data-testid="preview"] tbody .cat')
        labels.first.wait_for()
        got = labels.evaluate_all(CONTRAST)
        assert [(tone, word) for tone, word, _ in got[:6]] == [
            ("warning", "!open"), ("danger", "✕blocked"), ("ok", "✓done"), ("info", "ifyi"), ("neutral", "•later"),
            ("warning", "!warning")]
        assert min(ratio for _, _, ratio in got) >= 4.5, got
        shot(page, tmp_path, f"inspect-labels-{scheme}.png", '[data-testid="went-out"]')
