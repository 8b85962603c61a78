"""Sorting, filtering and searching a preview on the server: pages checked against the same query done in Python,
bad queries refused with a 400 naming the parameter, and a step's inputs listed and previewed beside its outputs."""

from __future__ import annotations

import json
import time

import yaml

from tests.web.conftest import assert_json_error, write

ROWS = 20_000
MAKE = f'''
import json
labels = ["normal", "normal", "warning", "normal", "critical"]
with open("rows.ndjson", "w") as fh:
    for i in range({ROWS}):
        r = {{"id": i, "sensor": "s%d" % (i * 7 % 13), "label": labels[i % 5], "nested": {{"k": i % 3}}}}
        if i % 11:
            r["value"] = round((i * 37 % 1000) / 10, 1)
        elif i % 2:
            r["value"] = None
        r["mixed"] = ["abc", "12", 7, "Zed", 3.5, "apple"][i % 6]
        fh.write(json.dumps(r) + "\\n")
'''
TEXT = 'open("note.txt", "w").write("hello\\n")\n'


def pipeline(ws) -> None:
    write(ws, "make.py", MAKE)
    write(ws, "take.py", "import shutil\nshutil.copy('rows.csv', 'kept.csv')\n")
    write(ws, "note.py", TEXT)
    doc = {"version": 1, "name": "q", "nodes": [
        {"id": "make", "runtime": "python", "source": "make.py",
         "outputs": [{"name": "rows", "file": "rows.ndjson", "format": "ndjson"}]},
        {"id": "take", "runtime": "python", "source": "take.py",
         "inputs": [{"name": "rows", "file": "rows.csv", "format": "csv"}],
         "outputs": [{"name": "kept", "file": "kept.csv", "format": "csv"}]},
        {"id": "note", "runtime": "python", "source": "note.py",
         "outputs": [{"name": "note", "file": "note.txt", "format": "text"}]}],
        "edges": [{"from": "make.rows", "to": "take.rows"}]}
    (ws / "q.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def records() -> list[dict]:
    """The rows make.py writes, built the same way here."""
    out = []
    scope: dict = {}
    exec(MAKE.replace('with open("rows.ndjson", "w") as fh:', 'if True:').replace(
        'fh.write(json.dumps(r) + "\\n")', 'OUT.append(r)'), {"OUT": out, **scope})
    return out


def ask(client, url: str, timeout: float = 60) -> dict:
    """A query page, asked again while the server says it is still working."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(url)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:400]
        page = resp.json
        if not page.get("working"):
            return page
        assert page["stage"] in ("reading", "sorting", "filtering", "done")
        assert time.monotonic() < deadline, page
        time.sleep(0.1)


def all_pages(client, url: str, limit: int = 1000) -> tuple[list[int], int]:
    ids, offset = [], 0
    while True:
        page = ask(client, f"{url}&offset={offset}&limit={limit}")
        ids += page["positions"]
        assert [r["id"] for r in page["items"]] == [int(x) for x in page["positions"]] or page["format"] == "csv"
        offset += len(page["items"])
        if not page["truncated"]:
            return ids, page["total"]


# ------------------------------------------------------------ a reference, in Python

def _num(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def sort_key(v):
    n = _num(v)
    if n is not None:
        return (0, n, "")
    if isinstance(v, str):
        return (1, 0.0, v.lower())
    return (3, 0.0, json.dumps(v))


def reference_sort(rows: list[dict], col: str, desc: bool) -> list[int]:
    present = [i for i, r in enumerate(rows) if r.get(col) not in (None, "")]
    missing = [i for i, r in enumerate(rows) if r.get(col) in (None, "")]
    present.sort(key=lambda i: sort_key(rows[i][col]), reverse=desc)  # stable: equal values keep file order
    return present + missing


def test_sorted_pages_match_python(workspace, client):
    pipeline(workspace)
    run_id = client.post("/api/pipelines/q/runs", json={}).json["run_id"]
    assert client.wait_run(run_id, timeout=120)["status"] == "succeeded"
    rows = records()
    base = f"/api/runs/{run_id}/nodes/make/outputs/rows?"
    for col in ("value", "mixed", "sensor"):
        for order in ("asc", "desc"):
            got, total = all_pages(client, f"{base}sort={col}&order={order}")
            assert total == ROWS
            assert got == reference_sort(rows, col, order == "desc"), (col, order)
    # a far page alone, and the answer kept under .pipeloom/query
    page = ask(client, f"{base}sort=value&order=desc&offset=15000&limit=7")
    assert page["positions"] == reference_sort(rows, "value", True)[15000:15007]
    assert page["items"][0] == rows[page["positions"][0]]
    assert page["query"] == {"sort": "value", "order": "desc", "filters": [], "q": ""}
    assert page["columns"] == ["id", "sensor", "label", "nested", "mixed", "value"]  # first seen first
    assert list((workspace / ".pipeloom" / "query").glob("*.ndjson.sqlite"))


def test_filters_and_search_match_python(workspace, client):
    pipeline(workspace)
    run_id = client.post("/api/pipelines/q/runs", json={}).json["run_id"]
    assert client.wait_run(run_id, timeout=120)["status"] == "succeeded"
    rows = records()
    base = f"/api/runs/{run_id}/nodes/make/outputs/rows?"
    cases = {
        "filter=value:gt:50": lambda r: r.get("value") is not None and r["value"] > 50,
        "filter=value:le:12.5&filter=label:eq:warning":
            lambda r: r.get("value") is not None and r["value"] <= 12.5 and r["label"] == "warning",
        "filter=label:ne:normal": lambda r: r["label"] != "normal",
        "filter=sensor:contains:S1": lambda r: "s1" in r["sensor"],
        "filter=value:empty": lambda r: r.get("value") is None,
        "filter=value:notempty&filter=mixed:lt:20": lambda r: r.get("value") is not None and (
            _num(r["mixed"]) is not None and _num(r["mixed"]) < 20 or
            _num(r["mixed"]) is None and str(r["mixed"]).lower() < "20"),
        "q=CRIT": lambda r: "crit" in json.dumps(list(r.values())).lower(),
        "q=s12&filter=label:eq:critical": lambda r: r["sensor"] == "s12" and r["label"] == "critical",
    }
    for params, keep in cases.items():
        got, total = all_pages(client, f"{base}{params}")
        want = [i for i, r in enumerate(rows) if keep(r)]
        assert got == want and total == len(want), params
        assert want, params  # every case keeps something
    got, total = all_pages(client, f"{base}filter=label:eq:critical&sort=value&order=desc")
    crit = [i for i, r in enumerate(rows) if r["label"] == "critical"]
    assert got == [i for i in reference_sort(rows, "value", True) if i in set(crit)]
    nothing = ask(client, f"{base}q=no-such-text")
    assert nothing["total"] == 0 and nothing["items"] == [] and nothing["truncated"] is False


def test_a_converted_csv_sorts_numbers_as_numbers_and_the_input_shows_what_came_in(workspace, client):
    pipeline(workspace)
    run_id = client.post("/api/pipelines/q/runs", json={}).json["run_id"]
    assert client.wait_run(run_id, timeout=120)["status"] == "succeeded"
    rows = records()
    listing = client.get(f"/api/runs/{run_id}/nodes/take/inputs").json
    (inp,) = listing["inputs"]
    assert inp["port"] == "rows" and inp["format"] == "csv" and inp["fed_by"] == "edge"
    assert inp["from"] == {"node": "make", "port": "rows"} and inp["converted_from"] == "ndjson"
    assert inp["records"] == ROWS and inp["available"] is True
    url = f"/api/runs/{run_id}/nodes/take/inputs/rows"
    first = client.get(f"{url}?limit=3").json
    assert first["format"] == "csv" and [r["id"] for r in first["items"]] == ["0", "1", "2"]
    got, _ = all_pages(client, f"{url}?sort=value&order=asc")
    assert got == reference_sort(rows, "value", False)
    assert client.get(f"{url}/raw").status_code == 200
    assert client.get(f"/api/runs/{run_id}/nodes/make/inputs").json["inputs"] == []
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/take/inputs/nope"), 404)
    assert_json_error(client.get(f"/api/runs/{run_id}/nodes/nope/inputs"), 404)


def test_bad_queries_are_refused_naming_the_parameter(workspace, client):
    pipeline(workspace)
    run_id = client.post("/api/pipelines/q/runs", json={}).json["run_id"]
    assert client.wait_run(run_id, timeout=120)["status"] == "succeeded"
    base = f"/api/runs/{run_id}/nodes/make/outputs/rows?"
    ask(client, f"{base}sort=id")  # the file is read; column names are known from here on
    for params, field, words in [
        ("sort=nope", "sort", "no column `nope`"),
        ("sort=id&order=up", "order", "asc or desc"),
        ("order=desc", "order", "needs `sort`"),
        ("filter=value:like:3", "filter", "unknown operator `like`"),
        ("filter=value", "filter", "COLUMN:OP:VALUE"),
        ("filter=value:gt", "filter", "needs a value"),
        ("filter=nope:eq:1", "filter", "no column `nope`"),
        ("filter=" + "&filter=".join(["id:gt:1"] * 9), "filter", "at most 8"),
    ]:
        body = assert_json_error(client.get(base + params), 400)
        assert body["field"] == field and words in body["error"], (params, body)
    note = f"/api/runs/{run_id}/nodes/note/outputs/note?sort=x"
    body = assert_json_error(client.get(note), 400)
    assert "text output has no records" in body["error"]
    assert client.get(f"{base}sort=id", auth=False).status_code in (401, 403)


def test_an_entry_input_shows_the_sample_file_or_the_batch_a_trigger_fed(workspace, server):
    write(workspace, "echo.py", "import json\njson.dump(json.load(open('events.json')), open('out.json', 'w'))\n")
    write(workspace, "sample.json", '[{"n": 1, "from": "sample"}]')
    doc = {"version": 1, "name": "svc", "nodes": [
        {"id": "echo", "runtime": "python", "source": "echo.py",
         "inputs": [{"name": "events", "format": "json", "path": "sample.json"}],
         "outputs": [{"name": "out", "format": "json"}]}], "edges": [],
        "triggers": [{"id": "call", "kind": "http", "to": "echo.events", "result": "echo.out", "timeout": 20}]}
    (workspace / "svc.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    status, _, body = server.request("POST", "/api/pipelines/svc/runs", {}, headers={"Origin": server.origin})
    assert status == 202, body
    by_hand = body["run_id"]
    deadline = time.monotonic() + 60
    while server.request("GET", f"/api/runs/{by_hand}")[2]["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (inp,) = server.request("GET", f"/api/runs/{by_hand}/nodes/echo/inputs")[2]["inputs"]
    assert inp["fed_by"] == "path" and inp["path"] == "sample.json" and inp["records"] == 1
    assert server.request("GET", f"/api/runs/{by_hand}/nodes/echo/inputs/events")[2]["items"] == [
        {"n": 1, "from": "sample"}]
    # the pipeline file was written while the server ran: its trigger starts once the server has noticed the file
    deadline = time.monotonic() + 30
    while not any(t["trigger_id"] == "call" and t["state"] == "running"
                  for t in server.request("GET", "/api/triggers?pipeline=svc")[2].get("triggers", [])):
        assert time.monotonic() < deadline, "the http trigger never started"
        time.sleep(0.1)
    status, headers, _ = server.request("POST", "/invoke/svc/call", [{"n": 7, "from": "call"}, {"n": 8}])
    assert status == 200
    fed = headers["X-Pipeloom-Run"]
    (inp,) = server.request("GET", f"/api/runs/{fed}/nodes/echo/inputs")[2]["inputs"]
    assert inp["fed_by"] == "trigger" and inp["trigger"] == "call" and inp["records"] == 2
    page = server.request("GET", f"/api/runs/{fed}/nodes/echo/inputs/events?sort=n&order=desc")[2]
    assert page["items"] == [{"n": 8}, {"n": 7, "from": "call"}] and page["positions"] == [1, 0]
