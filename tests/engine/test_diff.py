"""Record diffs: keyed, inferred-key and keyless matching, declared keys that do not hold, and the CLI and API."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

from server.engine.data.diff import DiffError, Side, changed_fields, compute, reasons_from_log
from tests.conftest import pipeloom_cmd
from tests.web.conftest import start_server  # noqa: F401  (a fixture)


def write_json(path, records):
    path.write_text(json.dumps(records))
    return path


def side(path, fmt="json", name="input `events`", sha=None):
    return Side(path, fmt, name, sha)


def test_keyed_diff_counts_and_pages_each_kind(tmp_path):
    a = write_json(tmp_path / "a.json", [{"id": 1, "v": 1}, {"id": 2, "v": 2}, {"id": 3, "v": 3}, {"id": 5, "v": 5}])
    b = write_json(tmp_path / "b.json", [{"id": 1, "v": 1}, {"id": 3, "v": 30, "tag": "x"}, {"id": 4, "v": 4},
                                         {"id": 5, "v": 5}])
    d = compute(side(a), side(b, name="output `out`"), key=["id"])
    assert d.counts == {"dropped": 1, "added": 1, "changed": 1, "unchanged": 2}
    assert d.key == ["id"] and not d.key_inferred and d.method == "key"
    assert d.items("dropped") == [{"key": 2, "record": {"id": 2, "v": 2}}]
    assert d.items("added") == [{"key": 4, "record": {"id": 4, "v": 4}}]
    (ch,) = d.items("changed")
    assert ch["key"] == 3 and ch["after"] == {"id": 3, "v": 30, "tag": "x"}
    assert [(f["field"], f["before"], f["after"], f["was"], f["now"]) for f in ch["fields"]] == [
        ("v", 3, 30, "present", "present"), ("tag", None, "x", "absent", "present")]
    assert [it["key"] for it in d.items("unchanged")] == [1, 5]
    assert [it["key"] for it in d.items("unchanged", offset=1, limit=5)] == [5]


def test_a_key_is_inferred_and_named_when_none_is_declared(tmp_path):
    a = write_json(tmp_path / "a.json", [{"sensor": "s1", "line": i, "v": i % 3} for i in range(50)])
    b = write_json(tmp_path / "b.json", [{"sensor": "s1", "line": i, "v": i % 3, "ok": True} for i in range(0, 50, 2)])
    d = compute(side(a), side(b))
    assert d.key == ["line"] and d.key_inferred
    assert "`line`" in d.note and "key: [line]" in d.note
    # `ok` went onto every record that went through: said once, and it changes none of them
    assert d.counts == {"dropped": 25, "added": 0, "changed": 0, "unchanged": 25}
    assert d.annotations == ["ok"] and d.said == "dropped 25 of 50 records and added the field ok to every record"


def test_without_any_key_records_are_matched_by_content_as_a_multiset(tmp_path):
    a = write_json(tmp_path / "a.json", [{"v": "a"}, {"v": "a"}, {"v": "b"}])
    b = write_json(tmp_path / "b.json", [{"v": "b"}, {"v": "a"}, {"v": "c"}])
    d = compute(side(a), side(b))
    assert d.method == "content" and d.key is None
    assert d.counts == {"dropped": 1, "added": 1, "changed": 0, "unchanged": 2}
    assert d.items("dropped") == [{"key": None, "record": {"v": "a"}}]
    assert d.items("added") == [{"key": None, "record": {"v": "c"}}]
    assert "whole content" in d.note


def test_a_declared_key_that_does_not_hold_is_refused_with_the_record(tmp_path):
    a = write_json(tmp_path / "a.json", [{"id": 1}, {"id": 1}])
    b = write_json(tmp_path / "b.json", [{"id": 1}])
    with pytest.raises(DiffError, match=r"`id` is not unique in input `events`: 1 appears 2 times"):
        compute(side(a), side(b), key=["id"])
    c = write_json(tmp_path / "c.json", [{"id": 1}, {"other": 2}])
    with pytest.raises(DiffError, match=r"record 2 of output `out` has no `id`"):
        compute(side(b), side(c, name="output `out`"), key=["id"])


def test_csv_text_meets_json_numbers_by_key(tmp_path):
    a = tmp_path / "a.csv"
    with open(a, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "value"])
        w.writerows([[1, "10"], [2, "x"], [3, "30"]])
    b = write_json(tmp_path / "b.json", [{"line": 1, "value": 10.0}, {"line": 3, "value": 30.0}])
    d = compute(side(a, "csv"), side(b), key=["line"])
    assert d.counts["dropped"] == 1 and d.items("dropped")[0]["key"] == "2"
    assert d.counts["changed"] == 2  # "10" (text) became 10.0 (a number): said, not hidden


def test_a_finished_diff_is_reused_and_a_half_built_one_never_is(tmp_path):
    a = write_json(tmp_path / "a.json", [{"id": i} for i in range(10)])
    b = write_json(tmp_path / "b.json", [{"id": i} for i in range(5)])
    cache = tmp_path / "diffs"
    first = compute(side(a, sha="aa"), side(b, sha="bb"), cache_dir=cache)
    assert [p.name for p in cache.iterdir()] == [first.db_path.name]
    first.db_path.write_bytes(b"not sqlite")  # a damaged file is computed again, not trusted
    again = compute(side(a, sha="aa"), side(b, sha="bb"), cache_dir=cache)
    assert again.counts == {"dropped": 5, "added": 0, "changed": 0, "unchanged": 5}
    with pytest.raises(DiffError):
        compute(side(a, "text", sha="aa"), side(b, sha="cc"), cache_dir=cache)
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_kept_diffs_stay_under_their_cap_least_recently_used_first(tmp_path, monkeypatch):
    a = write_json(tmp_path / "a.json", [{"id": i, "v": "x" * 50} for i in range(300)])
    b = write_json(tmp_path / "b.json", [{"id": i, "v": "y" * 50} for i in range(200)])
    cache = tmp_path / "diffs"
    first = compute(side(a, sha="a1"), side(b, sha="b1"), cache_dir=cache)
    size = first.db_path.stat().st_size
    monkeypatch.setenv("PIPELOOM_DIFF_CACHE_MB", str(2.5 * size / 1024 / 1024))  # room for two diffs
    second = compute(side(a, sha="a2"), side(b, sha="b2"), cache_dir=cache)
    os.utime(second.db_path, (1, 1))  # long unused
    compute(side(a, sha="a1"), side(b, sha="b1"), cache_dir=cache)  # reused: the most recently used again
    third = compute(side(a, sha="a3"), side(b, sha="b3"), cache_dir=cache)
    kept = sorted(p.name for p in cache.iterdir())
    assert kept == sorted([first.db_path.name, third.db_path.name])
    stale = cache / ".diff-killed.sqlite.part"  # left by a process killed while building a diff
    stale.write_bytes(b"x")
    os.utime(stale, (1, 1))
    compute(side(a, sha="a4"), side(b, sha="b4"), cache_dir=cache)
    assert not stale.exists()


def test_reasons_come_from_the_steps_own_log_lines():
    lines = ["filter: kept 2 of 4", "dropped line=2: no value", "dropped line=7: value is not a number",
             "dropped id=3: other key"]
    assert reasons_from_log(lines, ["line"]) == {"2": "no value", "7": "value is not a number"}
    assert reasons_from_log(lines, ["line", "ts"]) == {}


def test_changed_fields_tell_null_from_absent():
    assert changed_fields({"a": None}, {}) == [{"field": "a", "before": None, "after": None, "was": "present",
                                               "now": "absent"}]
    assert changed_fields({"a": 1.0, "b": [1]}, {"a": 1.0, "b": [1]}) == []


def test_fields_added_to_every_record_are_said_once_and_only_a_value_that_is_not_normal_changes_a_record(tmp_path):
    """classify's rule: label, score and reason are on every record, so they are annotations; a record counts as
    changed when its label is not `normal`, or when a field it came in with changed."""
    readings = [{"line": i, "value": i * 1.5} for i in range(10)]
    labelled = [dict(r, label="warning" if r["line"] in (3, 7) else "normal", score=0.5, reason=None)
                for r in readings]
    labelled[5]["value"] = 99.0  # a value the step changed: changed whatever its label
    a = write_json(tmp_path / "a.json", readings)
    b = write_json(tmp_path / "b.json", labelled)
    d = compute(side(a), side(b), key=["line"], normal={"label": "normal"})
    assert d.annotations == ["label", "score", "reason"]
    assert d.counts == {"dropped": 0, "added": 0, "changed": 3, "unchanged": 7}
    assert d.marked == 2
    assert [it["key"] for it in d.items("changed")] == [3, 5, 7]
    warn = d.items("changed")[0]
    assert warn["fields"][0] == {"field": "label", "before": None, "after": "warning", "was": "absent",
                                 "now": "present"}
    assert d.said == ("changed 3 of 10 records (2 of them because label is not normal) and added the fields "
                      "label, score and reason to every record")
    # without `normal:` the annotations change nothing; a list of normal values is accepted too
    plain = compute(side(a), side(b), key=["line"])
    assert plain.counts["changed"] == 1 and plain.said == ("changed 1 of 10 records and added the fields label, "
                                                           "score and reason to every record")
    both = compute(side(a), side(b), key=["line"], normal={"label": ["normal", "warning"]})
    assert both.counts["changed"] == 1 and both.marked == 0
    only = write_json(tmp_path / "c.json", [r for r in labelled if r["line"] != 5])
    d = compute(side(a), side(only), key=["line"], normal={"label": "normal"})
    assert d.said == ("dropped 1 of 10 records, changed 2 (those whose label is not normal) and added the fields "
                      "label, score and reason to every record")


def test_annotations_hold_whatever_the_field_order_and_normal_values_of_every_json_kind(tmp_path):
    a = write_json(tmp_path / "a.json", [{"id": i, "v": i / 2} for i in range(6)])
    # the step writes its fields in another order, and flags with booleans, numbers and nulls
    b = write_json(tmp_path / "b.json", [{"flagged": i in (1, 4), "v": i / 2, "id": i, "level": 0 if i != 5 else 2,
                                          "note": None if i != 3 else "odd"} for i in range(6)])
    d = compute(side(a), side(b), key=["id"], normal={"flagged": False, "level": 0, "note": None})
    assert d.annotations == ["flagged", "level", "note"]
    assert [it["key"] for it in d.items("changed")] == [1, 3, 4, 5] and d.marked == 4
    assert d.said.startswith("changed 4 of 6 records (those whose flagged is not false or level is not 0 or note "
                             "is not null)")
    d = compute(side(a), side(b), key=["id"], normal={"level": [0, 2]})
    assert d.counts["changed"] == 0 and d.counts["unchanged"] == 6


def test_a_field_added_to_only_some_records_changes_them(tmp_path):
    a = write_json(tmp_path / "a.json", [{"id": i} for i in range(4)])
    b = write_json(tmp_path / "b.json", [{"id": i, **({"label": "warning"} if i == 2 else {})} for i in range(4)])
    d = compute(side(a), side(b), key=["id"], normal={"label": "normal"})
    assert d.annotations == [] and d.counts["changed"] == 1 and d.said == "changed 1 of 4 records"


def test_normal_must_name_fields_and_values_on_a_records_output(tmp_path):
    from server.engine.errors import ValidationError
    from server.engine.model import pipeline_from_document

    doc = {"version": 1, "name": "n", "nodes": [
        {"id": "a", "runtime": "shell", "command": ["true"],
         "inputs": [{"name": "i", "format": "json", "path": "x.json", "normal": {"label": "normal"}}],
         "outputs": [{"name": "out", "format": "json", "normal": ["normal"]},
                     {"name": "blob", "format": "binary", "normal": {"label": "normal"}},
                     {"name": "ok", "format": "json", "normal": {"label": ["normal", "ok"], "flagged": False}}]}],
        "edges": []}
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValidationError) as err:
        pipeline_from_document(doc, base_dir=tmp_path, workspace=tmp_path, check_env=False)
    text = err.value.report()
    assert "input `i`: unknown field `normal` (`normal` is for outputs only)" in text, text
    assert "output `out`: `normal` must map field names" in text, text
    assert "output `blob`: `normal` is for records formats" in text, text
    assert "output `ok`" not in text


def test_a_million_record_diff_stays_in_bounded_memory(tmp_path):
    """Both sides are streamed through SQLite: peak memory does not grow with the data (about 60 MB of 1 M pairs
    here, where holding both sides as objects would take well over 1 GB)."""
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).resolve().parents[2])!r})
        from server.engine.data.diff import Side, compute
        with open("a.ndjson", "w") as fa, open("b.ndjson", "w") as fb:
            for i in range(1_000_000):
                r = {{"line": i, "sensor_id": "s%d" % (i % 7), "value": i * 0.5}}
                fa.write(json.dumps(r) + "\\n")
                if i % 100:
                    fb.write(json.dumps(dict(r, label="warning") if i % 10 == 0 else r) + "\\n")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d = compute(Side("a.ndjson", "ndjson", "a"), Side("b.ndjson", "ndjson", "b"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"counts": d.counts, "key": d.key, "growth_mb": (peak - base) / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["key"] == ["line"]
    assert res["counts"] == {"dropped": 10_000, "added": 0, "changed": 90_000, "unchanged": 900_000}
    assert res["growth_mb"] < 150, res


# ------------------------------------------------------------ through the demo: CLI and API


@pytest.fixture
def demo_run(workspace, require_tool):
    from server.engine.demo import create_demo

    for tool in ("cargo", "go", "node"):
        require_tool(tool)
    create_demo(workspace)
    r = pipeloom_cmd("run", "sensor-alerts.pipeline.yaml", "--json", cwd=workspace, timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)["run_id"]


def test_the_cli_says_what_the_filter_dropped_and_why(workspace, demo_run):
    r = pipeloom_cmd("diff", demo_run, "filter", cwd=workspace)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("filter dropped 9 of 1,000 records, changed 991 and added the field unit to every "
                            "record"), first
    assert "declared key `line`" in r.stdout
    body = json.loads(pipeloom_cmd("diff", demo_run, "filter", "--kind", "dropped", "--json", cwd=workspace).stdout)
    assert body["input"] == "raw_events" and body["output"] == "events" and body["key"] == ["line"]
    assert body["counts"]["dropped"] == body["total"] == 9 and len(body["items"]) == 9
    assert all(it.get("reason") for it in body["items"]), body["items"]
    # classify labels every reading: the warnings and criticals are its changed records, the rest unchanged
    r = pipeloom_cmd("diff", demo_run, "classify", "--kind", "changed", "--limit", "1000", "--json", cwd=workspace)
    body = json.loads(r.stdout)
    labels = [it["after"]["label"] for it in body["items"]]
    assert body["counts"]["changed"] == len(labels) > 0 and set(labels) <= {"warning", "critical"}, labels
    assert body["annotations"] == ["label", "score", "reason"] and body["marked"] == body["counts"]["changed"]
    alerts = json.loads(pipeloom_cmd("diff", demo_run, "classify", "--output", "alerts", "--json", cwd=workspace).stdout)
    # the same readings make the alerts: the normal ones dropped, the rest through with their added fields
    assert alerts["counts"]["dropped"] + alerts["counts"]["unchanged"] == 991
    assert alerts["counts"]["unchanged"] == len(labels) and "expected" in alerts["annotations"]
    human = pipeloom_cmd("diff", demo_run, "classify", cwd=workspace).stdout.splitlines()[0]
    n = body["counts"]["changed"]
    assert human == (f"classify changed {n} of 991 records (those whose label is not normal) and added the fields "
                     f"label, score and reason to every record; {991 - n:,} went through unchanged."), human
    bad = pipeloom_cmd("diff", demo_run, "filter", "--output", "nope", cwd=workspace)
    assert bad.returncode == 2 and "no output `nope`" in bad.stderr and "events" in bad.stderr
    assert pipeloom_cmd("diff", "no-such-run", "filter", cwd=workspace).returncode == 2


def test_the_api_pages_the_diff_and_refuses_bad_kinds(workspace, demo_run, start_server):
    srv = start_server()
    status, _, body = srv.request("GET", f"/api/runs/{demo_run}/nodes/classify/diff?kind=changed&limit=3")
    assert status == 200, body
    assert body["input"] == "events" and body["output"] == "classified" and body["kind"] == "changed"
    assert set(body["counts"]) == {"dropped", "added", "changed", "unchanged"}
    assert len(body["items"]) == 3 and body["total"] == body["counts"]["changed"]
    assert all({"key", "before", "after", "fields"} <= set(it) for it in body["items"])
    status, _, body = srv.request("GET", f"/api/runs/{demo_run}/nodes/classify/diff?kind=nope")
    assert status == 400 and "kind" in body["error"]
    status, _, body = srv.request("GET", f"/api/runs/{demo_run}/nodes/notify/diff?input=alerts&output=outbox")
    assert status == 200 and body["method"] in ("key", "content")
    status, _, body = srv.request("GET", f"/api/runs/{demo_run}/nodes/archive/diff?output=archive")
    assert status == 400 and "binary" in body["error"]


def test_a_bad_key_is_a_validation_problem_naming_the_port(tmp_path):
    doc = {"version": 1, "name": "k", "nodes": [
        {"id": "a", "runtime": "shell", "command": ["true"],
         "outputs": [{"name": "out", "format": "json", "key": []}, {"name": "blob", "format": "binary", "key": "id"}]}],
        "edges": []}
    path = tmp_path / "k.pipeline.json"
    path.write_text(json.dumps(doc))
    r = pipeloom_cmd("validate", str(path), cwd=tmp_path)
    assert r.returncode == 2
    assert "output `out`" in r.stderr and "`key` must be a field name or a list" in r.stderr, r.stderr
    assert "output `blob`" in r.stderr and "`key` is for records formats" in r.stderr, r.stderr


def _second_run(workspace, **params):
    import yaml

    path = workspace / "sensor-alerts.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    next(n for n in doc["nodes"] if n["id"] == "classify")["params"].update(params)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = pipeloom_cmd("run", "sensor-alerts.pipeline.yaml", "--json", cwd=workspace, timeout=900)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["run_id"]


def test_two_runs_of_one_output_compared_by_cli_and_api(workspace, demo_run, start_server):
    later = _second_run(workspace, warning_z=3.0)  # a lower bar: more warnings
    r = pipeloom_cmd("diff", demo_run, later, "--node", "classify", "--port", "alerts", "--json",
                     "--kind", "added", cwd=workspace)
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    assert cli["a"] == demo_run and cli["b"] == later and cli["key"] == ["line"]
    assert cli["counts"]["added"] > 0 and cli["counts"]["dropped"] == 0
    assert all(it["record"]["label"] == "warning" for it in cli["items"])
    human = pipeloom_cmd("diff", demo_run, later, "--node", "classify", "--port", "alerts", cwd=workspace).stdout
    assert human.startswith(f"classify.alerts gained {cli['counts']['added']} record"), human
    srv = start_server()
    status, _, api = srv.request("GET", f"/api/diff?a={demo_run}&b={later}&node=classify&port=alerts&kind=added")
    assert status == 200, api
    assert api["counts"] == cli["counts"] and api["items"] == cli["items"]
    status, _, body = srv.request("GET", f"/api/diff?a={demo_run}&node=classify&port=alerts")
    assert status == 400 and "`b`" in body["error"]
    status, _, body = srv.request("GET", f"/api/diff?a={demo_run}&b={later}&node=archive&port=archive")
    assert status == 400 and "binary" in body["error"]
    status, _, body = srv.request("GET", f"/api/diff?a={demo_run}&b={later}&node=classify&port=nope")
    assert status == 404 and "no output `nope`" in body["error"]
    half = pipeloom_cmd("diff", demo_run, later, "--node", "classify", cwd=workspace)
    assert half.returncode == 2 and "give both --node NODE and --port PORT" in half.stderr


def test_story_writes_one_small_self_contained_page(workspace, demo_run, tmp_path):
    out = tmp_path / "story.html"
    r = pipeloom_cmd("story", demo_run, "--out", str(out), cwd=workspace)
    assert r.returncode == 0, r.stderr
    assert "no network needed" in r.stdout
    text = out.read_text()
    assert out.stat().st_size < 300_000
    assert "<svg" in text and "<script" not in text and "<link" not in text
    links = [m for m in __import__("re").findall(r"(?:src|href)=\"([^\"]+)\"", text)]
    assert [link for link in links if not link.startswith("#")] == [], links  # links within the page fetch nothing
    for title in ("Read the sensor log", "Keep sensible readings", "Spot unusual readings", "Alert the team"):
        assert title in text
    assert "it dropped 9 of 1,000 records, changed 991 and added the field unit to every record." in text
    assert "(those whose label is not normal) and added the fields label, score and reason to every record." in text
    assert "1,000 records" in text and "991 records" in text  # counts on the connections
    assert "Start here: each card is one small program." in text  # the demo's notes, listed
    bad = pipeloom_cmd("story", "no-such-run", "--out", str(tmp_path / "x.html"), cwd=workspace)
    assert bad.returncode == 2 and not (tmp_path / "x.html").exists()
