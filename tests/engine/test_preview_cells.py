"""Table previews cut long cells; the full value is fetched by pages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from server.engine import preview
from server.engine.errors import NotFoundError
from server.engine.preview import CELL_CHARS, PreviewError, cell_value, preview_file

BIG = 10 * 1024 * 1024


def big_csv(path: Path, n: int = BIG) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "blob", "note"])
        w.writerow(["1", "é" + "x" * (n - 1), "small"])
        w.writerow(["2", "short", "ok"])
    return path


def test_a_ten_megabyte_cell_is_cut_and_marked(tmp_path):
    p = big_csv(tmp_path / "big.csv")
    page = preview_file(p, "csv")
    assert len(json.dumps(page)) < 64 * 1024
    assert page["items"][0]["blob"] == ("é" + "x" * (BIG - 1))[:CELL_CHARS]
    assert page["items"][0]["note"] == "small" and page["items"][1] == {"id": "2", "blob": "short", "note": "ok"}
    assert page["cut_cells"] == [{"record": 0, "column": "blob", "type": "string", "chars": BIG, "bytes": BIG + 1}]
    assert page["cell_chars"] == CELL_CHARS


def test_cut_cells_use_record_numbers_of_the_file(tmp_path):
    p = tmp_path / "rows.ndjson"
    p.write_text("".join(json.dumps({"i": i, "v": "y" * (5000 if i == 7 else 3)}) + "\n" for i in range(10)))
    page = preview_file(p, "ndjson", offset=5, limit=3)
    assert page["cut_cells"] == [{"record": 7, "column": "v", "type": "string", "chars": 5000, "bytes": 5000}]


def test_nested_values_are_cut_as_json_text(tmp_path):
    p = tmp_path / "rows.json"
    nested = {"k": list(range(3000))}
    p.write_text(json.dumps([{"a": nested, "b": [1, 2]}]))
    page = preview_file(p, "json")
    text = json.dumps(nested, separators=(",", ":"))
    assert page["items"][0] == {"a": text[:CELL_CHARS], "b": [1, 2]}
    assert page["cut_cells"][0]["type"] == "json" and page["cut_cells"][0]["chars"] == len(text)
    full = cell_value(p, "json", 0, "a", limit=1_000_000)
    assert json.loads(full["text"]) == nested and full["next"] is None


def test_the_full_value_comes_back_page_by_page(tmp_path):
    p = big_csv(tmp_path / "big.csv")
    want = "é" + "x" * (BIG - 1)
    got, offset = [], 0
    while offset is not None:
        part = cell_value(p, "csv", 0, "blob", offset=offset, limit=preview.CELL_MAX_CHARS)
        assert part["chars"] == BIG and part["bytes"] == BIG + 1 and part["type"] == "string"
        assert len(part["text"]) <= preview.CELL_MAX_CHARS
        got.append(part["text"])
        offset = part["next"]
    assert "".join(got) == want and len(got) == 10


@pytest.mark.parametrize("fmt", ["json", "ndjson", "parquet"])
def test_cell_value_in_every_table_format(tmp_path, fmt):
    rows = [{"a": "z" * 9000, "b": 1}, {"a": "q", "b": 2}]
    p = tmp_path / f"rows.{fmt}"
    if fmt == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(rows), p)
    elif fmt == "json":
        p.write_text(json.dumps(rows))
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert preview_file(p, fmt)["cut_cells"][0]["chars"] == 9000
    assert cell_value(p, fmt, 0, "a", offset=8990)["text"] == "z" * 10
    assert cell_value(p, fmt, 1, "b")["text"] == "2"


def test_cell_value_refuses_what_is_not_there(tmp_path):
    p = big_csv(tmp_path / "big.csv", 10)
    with pytest.raises(NotFoundError, match="no record 5"):
        cell_value(p, "csv", 5, "blob")
    with pytest.raises(NotFoundError, match="no column `nope`"):
        cell_value(p, "csv", 0, "nope")
    with pytest.raises(PreviewError, match="limit"):
        cell_value(p, "csv", 0, "blob", limit=0)
    with pytest.raises(PreviewError, match="offset must be at most 10"):
        cell_value(p, "csv", 0, "blob", offset=11)
    (tmp_path / "doc.json").write_text('{"a": 1}')
    with pytest.raises(PreviewError, match="not a table"):
        cell_value(tmp_path / "doc.json", "json", 0, "a")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(PreviewError, match="no table cells"):
        cell_value(tmp_path / "t.txt", "text", 0, "a")
