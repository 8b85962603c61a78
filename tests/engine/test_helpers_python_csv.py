"""The Python helper reads CSV as strictly as the engine does, naming the true line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.test_helpers_python import run_node

READ = """
    import pipeloom
    try:
        print(len(list(pipeloom.records("rows"))))
    except pipeloom.PipeloomError as exc:
        print("ERROR", exc)
"""


def read_csv(tmp_path: Path, data: bytes) -> str:
    (tmp_path / "rows.csv").write_bytes(data)
    proc = run_node(tmp_path, READ, inputs={"rows": ("rows.csv", "csv")})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("data,line,words", [
    (b'a,b\n1,x\n2,"never closed\n3,y\n', 3, "never closed"),
    (b"a,b\n1,x\n2,y\x00z\n", 3, "NUL byte"),
    (b"a,b\n" + b"".join(b"%d,caf\xc3\xa9\n" % i for i in range(5000)) + b"9,\xff\n", 5002, "not valid UTF-8"),
])
def test_bad_csv_is_refused_on_its_line(tmp_path, data, line, words):
    out = read_csv(tmp_path, data)
    assert out.startswith("ERROR input `rows`") and f"line {line}:" in out and words in out, out


def test_good_csv_still_reads(tmp_path):
    assert read_csv(tmp_path, b'\xef\xbb\xbfa,b\r\n1,"x\r\ny"\r\n2,z\r\n') == "2"
    assert read_csv(tmp_path, b"a,b\r1,x\r2,y\r") == "2"


@pytest.mark.parametrize("fmt,text,call", [
    ("json", "[" * 20000 + "]" * 20000, "pipeloom.read('rows')"),
    ("json", "[" * 20000 + "]" * 20000, "list(pipeloom.records('rows'))"),
    ("json", "[1, " + "[" * 20000 + "]" * 20000 + "]", "list(pipeloom.records('rows'))"),
    ("ndjson", '{"a": 1}\n' + "[" * 20000 + "]" * 20000 + "\n", "list(pipeloom.records('rows'))"),
])
def test_deep_json_is_a_clear_error_in_the_helper(tmp_path, fmt, text, call):
    (tmp_path / f"rows.{fmt}").write_text(text)
    proc = run_node(tmp_path, f"""
        import pipeloom
        try:
            {call}
        except pipeloom.PipeloomError as exc:
            print("ERROR", exc)
    """, inputs={"rows": (f"rows.{fmt}", fmt)})
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.startswith("ERROR input `rows`") and "nested too deeply" in proc.stdout, proc.stdout
