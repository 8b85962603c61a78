"""A batch of event values becomes the entry input's file; bad values are set aside with the reason."""

from __future__ import annotations

import json

import pytest

from server.engine.formats import iter_records
from server.triggers.batch import write_batch


def test_ndjson_keeps_each_value_as_one_line_and_sets_aside_bad_ones(tmp_path):
    values = [b'{"a": 1}', b'not json', b'{\n "b": 2\n}', None, b'\xff\xfe{}', b"[1, 2]"]
    n, rejected = write_batch(values, "ndjson", tmp_path / "in.ndjson")
    assert n == 3
    lines = (tmp_path / "in.ndjson").read_bytes().splitlines()
    assert lines == [b'{"a": 1}', b'{"b":2}', b"[1, 2]"]
    reasons = {r.index: r.reason for r in rejected}
    assert set(reasons) == {1, 3, 4}
    assert "not valid JSON" in reasons[1] and "no value" in reasons[3] and "UTF-8" in reasons[4]


def test_json_is_an_array_of_the_values(tmp_path):
    n, rejected = write_batch([b'{"a": 1}', b'2', b'"x"'], "json", tmp_path / "in.json")
    assert (n, rejected) == (3, [])
    assert json.loads((tmp_path / "in.json").read_text()) == [{"a": 1}, 2, "x"]
    n, _ = write_batch([], "json", tmp_path / "empty.json")
    assert n == 0 and json.loads((tmp_path / "empty.json").read_text()) == []


def test_text_is_one_line_per_value(tmp_path):
    n, rejected = write_batch([b"2026-01-01 a 1\n", b"line two", b"bad\x00nul", b"\xc3"], "text", tmp_path / "in.txt")
    assert n == 2
    assert (tmp_path / "in.txt").read_text() == "2026-01-01 a 1\nline two\n"
    assert [r.index for r in rejected] == [2, 3]


def test_csv_takes_objects_with_the_union_of_their_fields(tmp_path):
    n, rejected = write_batch([b'{"a": 1}', b'{"b": "x,y"}', b'[1]'], "csv", tmp_path / "in.csv")
    assert n == 2 and [r.index for r in rejected] == [2]
    assert list(iter_records(tmp_path / "in.csv", "csv")) == [{"a": "1", "b": ""}, {"a": "", "b": "x,y"}]


def test_a_binary_input_cannot_take_a_batch(tmp_path):
    with pytest.raises(ValueError, match="cannot feed a `binary` input"):
        write_batch([b"x"], "binary", tmp_path / "in.bin")
