"""The shareable page of a run carries the pipeline's sticky notes: drawn on its graph where the studio draws
them, and listed in reading order, every word escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import yaml

from .conftest import shell_pipeline


def _story(workspace, client, notes=None) -> str:
    path = shell_pipeline(workspace)
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][0]["position"] = {"x": 40, "y": 200}
    doc["nodes"][1]["position"] = {"x": 400, "y": 200}
    if notes is not None:
        doc["notes"] = notes
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert client.wait_run(run_id)["status"] == "succeeded"
    resp = client.get(f"/api/runs/{run_id}/story")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


class _Page(HTMLParser):
    """What a browser would build: the notes drawn on the graph, the list items, and any script."""

    def __init__(self):
        super().__init__()
        self.drawn: dict[str, dict] = {}  # note id -> {rect: attrs, lines: [...]}
        self.listed: list[dict] = []  # {id, words, beside}
        self.scripts = 0
        self._note = self._item = None
        self._in = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._in.append((tag, a))
        if tag == "script":
            self.scripts += 1
        if tag == "g" and a.get("class") == "note":
            self._note = self.drawn.setdefault(a["data-note-id"], {"rect": None, "lines": []})
        if self._note is not None and tag == "rect" and a.get("class") == "note-paper":
            self._note["rect"] = {k: float(a[k]) for k in ("x", "y", "width", "height")}
        if tag == "li" and (a.get("id") or "").startswith("note-"):
            self._item = {"id": a["id"][5:], "words": "", "beside": None}
            self.listed.append(self._item)
        if self._item is not None and tag == "a":
            self._item["beside"] = a.get("href")

    def handle_endtag(self, tag):
        tag_, _ = self._in.pop()
        if tag_ == "g":
            self._note = None
        if tag_ == "li":
            self._item = None

    def handle_data(self, data):
        if not self._in:
            return
        tag, a = self._in[-1]
        if self._note is not None and tag == "tspan":
            self._note["lines"].append(data)
        if self._item is not None and a.get("class") == "note-words":
            self._item["words"] += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_the_story_draws_each_note_where_the_studio_does_and_lists_them_in_reading_order(workspace, client):
    text = _story(workspace, client, [
        {"id": "later", "text": "After a run, click a step to see what it did to the records.",
         "position": {"x": 40, "y": 480}},
        {"id": "why", "text": "Copy keeps every record as it is.", "position": {"x": 400, "y": 90}},
        {"id": "start", "text": "Start here:\neach card is one small program.", "position": {"x": 40, "y": 40}},
    ])
    page = _parse(text)
    # drawn on the graph at the note's own coordinates, words wrapped to the note's width
    assert set(page.drawn) == {"later", "why", "start"}
    assert page.drawn["why"]["rect"]["x"] == 400 and page.drawn["why"]["rect"]["y"] == 90
    assert page.drawn["later"]["rect"]["width"] == 220
    assert page.drawn["later"]["lines"] == ["After a run, click a step", "to see what it did to the", "records."]
    assert page.drawn["start"]["lines"] == ["Start here:", "each card is one small", "program."]
    # the graph's frame holds the notes (the one at y=40 is above the steps at y=200)
    x0, y0, w, h = (float(v) for v in re.search(r'<svg[^>]*viewBox="([^"]+)"', text).group(1).split())
    assert y0 <= 40 and y0 + h >= 480 + page.drawn["later"]["rect"]["height"]
    # notes sit above the connections and below the steps, as in the studio
    assert text.index('class="edge"') < text.index('class="note"') < text.index('class="card"')
    # listed in reading order (rows top to bottom, each left to right), each naming the step it sits beside
    assert [n["id"] for n in page.listed] == ["start", "why", "later"]
    assert page.listed[0]["words"] == "Start here:\neach card is one small program."
    assert page.listed[1]["beside"] == "#step-copy"  # 20px above the copy step's card
    assert 'id="step-copy"' in text
    assert text.index("Notes from the authors") < text.index("Step by step")


def test_a_note_without_a_place_sits_in_a_row_above_the_steps(workspace, client):
    page = _parse(_story(workspace, client, [{"id": "a", "text": "One."}, {"id": "b", "text": "Two."}]))
    a, b = page.drawn["a"]["rect"], page.drawn["b"]["rect"]
    assert (a["x"], a["y"]) == (40, 200 - 120)  # the leftmost step's x, 120 above the top step, as notes.js does
    assert (b["x"], b["y"]) == (40 + 220 + 24, 80)
    assert [n["id"] for n in page.listed] == ["a", "b"] and page.listed[0]["beside"] is None


def test_a_note_is_user_text_and_is_escaped_everywhere(workspace, client):
    evil = 'He said "stop" & left <script>alert(1)</script> \'here\''
    text = _story(workspace, client, [{"id": "evil", "text": evil, "position": {"x": 40, "y": 40}}])
    page = _parse(text)
    assert page.scripts == 0 and "<script>" not in text
    assert page.listed[0]["words"] == evil
    assert "".join(page.drawn["evil"]["lines"]).replace(" ", "") == evil.replace(" ", "")
    assert "&lt;script&gt;" in text and "&quot;stop&quot;" in text and "&#x27;here&#x27;" in text


def test_a_long_note_is_cut_short_on_the_graph_and_whole_in_the_list(workspace, client):
    words = " ".join(f"word{i}" for i in range(200))
    page = _parse(_story(workspace, client, [{"id": "long", "text": words, "position": {"x": 40, "y": 40}}]))
    assert len(page.drawn["long"]["lines"]) == 16 and page.drawn["long"]["lines"][-1].endswith("…")
    assert page.listed[0]["words"] == words


def test_a_pipeline_without_notes_has_no_notes_on_its_page(workspace, client):
    text = _story(workspace, client)
    page = _parse(text)
    assert page.drawn == {} and page.listed == []
    assert "Notes from the authors" not in text and 'class="note' not in text
    x0, y0, w, h = (float(v) for v in re.search(r'<svg[^>]*viewBox="([^"]+)"', text).group(1).split())
    assert (x0, y0, w, h) == (40 - 30, 200 - 30, 400 + 230 + 30 - 10, 92 + 60)  # the steps' frame, as before


def test_connection_labels_are_drawn_over_every_connection_and_runtimes_read_as_in_the_studio(workspace, client):
    path = shell_pipeline(workspace)
    doc = yaml.safe_load(path.read_text())
    (workspace / "keep.sh").write_text("cp in.json out.json\n")
    doc["nodes"].append({"id": "keep", "runtime": "shell", "source": "keep.sh",
                         "inputs": [{"name": "in", "format": "json"}], "outputs": [{"name": "out", "format": "json"}]})
    doc["edges"].append({"from": "make.out", "to": "keep.in"})  # a second connection from the same port
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert client.wait_run(run_id)["status"] == "succeeded"
    text = client.get(f"/api/runs/{run_id}/story").get_data(as_text=True)
    # both leave make's port side by side: the second must not run across the first one's label
    assert text.count('class="edge"') == 2
    assert text.rindex('class="edge"') < text.index('class="edge-label"')
    runtimes = re.findall(r'class="card-runtime">([^<]*)<', text)
    assert runtimes == ["Shell", "Shell", "Shell"], runtimes
    assert re.findall(r'class="runtime">([^<]*)<', text)[0] == "Shell · step id make"


def test_a_text_that_became_the_same_number_shows_its_quotes_on_the_page(workspace, client):
    path = shell_pipeline(workspace, scripts={
        "make": "printf '[{\"n\": 1, \"v\": \"2.5\"}]' > out.json\n",
        "copy": "printf '[{\"n\": 1, \"v\": 2.5}]' > out.json\n"})
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][1]["outputs"][0]["key"] = ["n"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    assert client.wait_run(run_id)["status"] == "succeeded"
    text = client.get(f"/api/runs/{run_id}/story").get_data(as_text=True)
    assert "v: &quot;2.5&quot; → 2.5" in text, re.findall(r"<li><strong>n 1</strong>[^<]*", text)
