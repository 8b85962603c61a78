"""The query engine on its own: a large file sorted in bounded memory (a child reports its own peak), and
parsing of the query parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.engine.data.query import Query, QueryError, parse_query

REPO = Path(__file__).resolve().parents[2]


def test_sorting_a_large_file_stays_in_bounded_memory(tmp_path):
    """About 170 MB of ndjson (600,000 records of ~280 bytes) sorted by a float and filtered: the child's peak
    memory grows by a small fraction of the file, since the file is streamed into SQLite and sorted on disk."""
    script = textwrap.dedent(f"""
        import json, resource, sys, threading
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from server.engine.data.query import Query, Queries
        pad = "x" * 200
        with open("big.ndjson", "w") as fh:
            for i in range(600_000):
                fh.write(json.dumps({{"id": i, "value": (i * 7919) % 600_000 / 3, "sensor": "s%d" % (i % 13),
                                      "pad": pad}}) + "\\n")
        size = Path("big.ndjson").stat().st_size
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        qs = Queries("query")
        q = Query(sort="value", order="desc")
        page = qs.page("big.ndjson", "ndjson", "k", q, 0, 5, wait=600)
        far = qs.page("big.ndjson", "ndjson", "k", q, 599_995, 5, wait=600)
        filt = qs.page("big.ndjson", "ndjson", "k", Query(sort="id", filters=(("sensor", "eq", "s3"),)), 0, 3,
                       wait=600)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"size_mb": size / 2**20, "growth_mb": (peak - base) / 1024,
                          "first": [r["value"] for r in page["items"]], "last": [r["value"] for r in far["items"]],
                          "total": page["total"], "filtered": filt["total"], "filtered_ids": far and filt["positions"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    values = sorted(((i * 7919) % 600_000 / 3 for i in range(600_000)), reverse=True)
    assert res["first"] == values[:5] and res["last"] == values[-5:]
    assert res["total"] == 600_000
    assert res["filtered"] == sum(1 for i in range(600_000) if i % 13 == 3)
    assert res["filtered_ids"] == [3, 16, 29]
    assert res["size_mb"] > 140
    print(f"peak memory grew by {res['growth_mb']:.1f} MB sorting {res['size_mb']:.0f} MB")
    assert res["growth_mb"] < 60, res  # holding the records would take well over 1 GB


def test_query_parameters_parse_and_refuse_clearly():
    assert parse_query({}) is None
    assert parse_query({"q": "  "}) is None
    q = parse_query({"sort": "value", "order": "DESC", "filter": ["label:eq:a:b", "v:empty"], "q": " x "})
    assert q == Query("value", "desc", (("label", "eq", "a:b"), ("v", "empty", "")), "x")
    assert parse_query({"sort": "a"}).key != parse_query({"sort": "a", "order": "desc"}).key
    for args, field in [({"sort": "a", "order": "sideways"}, "order"), ({"filter": "a:zz:1"}, "filter"),
                        ({"filter": ":eq:1"}, "filter"), ({"q": "x" * 1001}, "q")]:
        with pytest.raises(QueryError) as err:
            parse_query(args)
        assert err.value.field == field


def test_a_query_still_at_work_says_how_far_it_got_then_answers(tmp_path):
    from server.engine.data.query import Queries

    src = tmp_path / "rows.ndjson"
    src.write_text("".join(json.dumps({"id": i, "v": -i}) + "\n" for i in range(100_000)))
    qs = Queries(tmp_path / "query")
    q = Query(sort="v")
    first = qs.page(src, "ndjson", "k", q, 0, 3, wait=0, expected=100_000)
    assert first["working"] is True and first["stage"] in ("reading", "sorting") and first["items"] == []
    assert first["records"] == 100_000 and first["total"] is None
    done = qs.page(src, "ndjson", "k", q, 0, 3, wait=120)
    assert done["working"] is False and done["positions"] == [99_999, 99_998, 99_997] and done["total"] == 100_000
    with pytest.raises(QueryError) as err:  # the file is known now: a bad column is refused at once
        qs.page(src, "ndjson", "k", Query(sort="nope"), 0, 3, wait=0)
    assert err.value.field == "sort" and "no column `nope`" in str(err.value)
    qs.close()


def test_ndjson_lines_that_are_not_objects_or_not_json(tmp_path):
    from server.engine.data.query import Queries
    from server.engine.errors import PipeloomError

    src = tmp_path / "mixed.ndjson"
    src.write_text('{"b": 2, "a": "Éclair"}\n\n3\n"x"\n{"a": "zed", "c": [1, 2]}\n')
    qs = Queries(tmp_path / "query")
    page = qs.page(src, "ndjson", "m", Query(sort="value"), 0, 10, wait=60)
    assert page["columns"] == ["b", "a", "value", "c"]
    assert page["items"][:2] == [{"value": 3}, {"value": "x"}] and page["positions"][:2] == [1, 2]
    found = qs.page(src, "ndjson", "m", Query(q="éCLAIR"), 0, 10, wait=60)
    assert found["positions"] == [0]  # the search ignores case beyond A-Z too
    assert qs.page(src, "ndjson", "m", Query(q="[1,2]"), 0, 10, wait=60)["positions"] == [3]
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(PipeloomError) as err:
        qs.page(bad, "ndjson", "b", Query(sort="a"), 0, 10, wait=60)
    assert "line 2" in str(err.value)
    qs.close()


def test_csv_rows_become_records_of_text(tmp_path):
    from server.engine.data.query import Queries
    from server.engine.errors import PipeloomError

    src = tmp_path / "t.csv"
    src.write_text('id,"it\'s",note\n10,a,"x, y"\n9,B\n100,c,Zürich\n')
    qs = Queries(tmp_path / "query")
    page = qs.page(src, "csv", "t", Query(sort="id", order="desc"), 0, 10, wait=60)
    assert page["columns"] == ["id", "it's", "note"]
    assert page["items"] == [{"id": "100", "it's": "c", "note": "Zürich"}, {"id": "10", "it's": "a", "note": "x, y"},
                             {"id": "9", "it's": "B", "note": ""}]  # numbers in text sort as numbers
    assert qs.page(src, "csv", "t", Query(q="ZÜR"), 0, 10, wait=60)["positions"] == [2]
    assert qs.page(src, "csv", "t", Query(filters=(("note", "empty", ""),)), 0, 10, wait=60)["positions"] == [1]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(PipeloomError) as err:
        qs.page(bad, "csv", "b", Query(sort="a"), 0, 10, wait=60)
    assert "line 3" in str(err.value)
    qs.close()


def test_the_query_folder_is_kept_under_its_size(tmp_path):
    import os
    import time as _time

    from server.engine.data.query import Queries

    qs = Queries(tmp_path / "query", cache_bytes=1)  # room for the newest file only
    files = []
    for name in ("a", "b", "c"):
        src = tmp_path / f"{name}.ndjson"
        src.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(100)))
        files.append(src)
        assert qs.page(src, "ndjson", name, Query(sort="id"), 0, 1, wait=60)["total"] == 100
        _time.sleep(0.01)
    left = sorted(p.name for p in (tmp_path / "query").glob("*.sqlite"))
    assert left == ["c.ndjson.sqlite"]
    # a removed one is simply built again
    assert qs.page(files[0], "ndjson", "a", Query(sort="id", order="desc"), 0, 1, wait=60)["positions"] == [99]
    assert sorted(p.name for p in (tmp_path / "query").glob("*.sqlite")) == ["a.ndjson.sqlite"]
    assert not [p for p in os.listdir(tmp_path / "query") if p.endswith(".part")]
    qs.close()


def test_a_json_array_of_anything_sorts_and_a_json_document_is_refused(tmp_path):
    from server.engine.data.query import Queries

    arr = tmp_path / "arr.json"
    arr.write_text('[{"x": 2}, {"x": 1}, 5]')
    qs = Queries(tmp_path / "query")
    assert qs.page(arr, "json", "a", Query(sort="x"), 0, 5, wait=60)["items"] == [{"x": 1}, {"x": 2}, {"value": 5}]
    doc = tmp_path / "doc.json"
    doc.write_text('{"x": 1}')
    with pytest.raises(QueryError) as err:
        qs.page(doc, "json", "d", Query(sort="x"), 0, 5, wait=60)
    assert err.value.field == "sort" and "a JSON document, not an array" in str(err.value)
    qs.close()
