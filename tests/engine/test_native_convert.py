"""The compiled converter writes the bytes of the record-by-record path, or leaves the input to it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import formats
from server.engine.data import native
from server.engine.formats import MalformedDataError, convert
from tests.conftest import require
from tests.engine.test_convert_exact import TRICKY, json_values, write_json

PAIRS = sorted(native.PAIRS)


@pytest.fixture(scope="module")
def exe():
    require(shutil.which("cargo") is not None, "the compiled converter needs cargo (rustup.rs)")
    path = native.binary()
    assert path, "cargo is there but the converter did not build (see the log)"
    return path


def both(tmp_path: Path, exe: str, src: Path, src_fmt: str, dst_fmt: str):
    """(native, exact): each (count, bytes), the native one "fallback: why" when it declined."""
    dst = tmp_path / f"native.{dst_fmt}"
    try:
        got = (native.convert_native(src, src_fmt, dst, dst_fmt, exe), dst.read_bytes())
    except native.Fallback as exc:
        got = f"fallback: {exc}"
        assert not dst.exists()
    want_dst = tmp_path / f"exact.{dst_fmt}"
    try:
        want = (convert(src, src_fmt, want_dst, dst_fmt, exact=True), want_dst.read_bytes())
    except (MalformedDataError, UnicodeEncodeError) as exc:
        want = ("error", str(exc))
    for p in (dst, want_dst):
        p.unlink(missing_ok=True)
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name or p.name.endswith(".pad")]
    return got, want


def sources(tmp_path: Path, rows: list, exact_csv: bool = True, **dump) -> dict[str, Path]:
    js = tmp_path / "in.json"
    js.write_text(json.dumps(rows, **dump), encoding="utf-8")
    nd = tmp_path / "in.ndjson"
    nd.write_text("".join(json.dumps(r, **{k: v for k, v in dump.items() if k != "indent"}) + "\n" for r in rows),
                  encoding="utf-8")
    cs = tmp_path / "in.csv"
    convert(js, "json", cs, "csv", exact=exact_csv)
    return {"json": js, "ndjson": nd, "csv": cs}


@pytest.mark.parametrize("ascii_only", [False, True])
@pytest.mark.parametrize(("src_fmt", "dst_fmt"), PAIRS)
def test_tricky_records_give_the_same_bytes(tmp_path, exe, src_fmt, dst_fmt, ascii_only):
    src = sources(tmp_path, TRICKY * 3, ensure_ascii=ascii_only, indent=2 if ascii_only else None)[src_fmt]
    got, want = both(tmp_path, exe, src, src_fmt, dst_fmt)
    assert got == want  # equal, and written by the converter itself (not a fallback)


def test_numbers_print_as_python_prints_them(tmp_path, exe):
    text = ('[{"a": -0, "b": -0.0, "c": 1E2, "d": 1.0e-7, "e": 0.00001, "f": 1e16, "g": 123456789012345678901234567890,'
            ' "h": 2.5E+300, "i": 5e-324, "j": 0.1, "k": -12.50, "l": [1e22, 1E-5, 0e0, -0E-0]}]')
    src = tmp_path / "in.json"
    src.write_text(text)
    for dst_fmt in ("csv", "ndjson"):
        got, want = both(tmp_path, exe, src, "json", dst_fmt)
        assert got == want
    assert got[1].startswith(b'{"a": 0, "b": -0.0, "c": 100.0, "d": 1e-07, "e": 1e-05, "f": 1e+16, ')


def test_a_float_exactly_halfway_between_two_shortest_texts_takes_the_even_digit_as_python_does(tmp_path, exe):
    """562949953421312.25 reads back from both `…312.2` and `…312.3`; Python's repr writes the even one."""
    import math
    import random

    rng = random.Random(9)
    ties = [562949953421312.25, -562949953421312.25, 123456789012345.125, 2.5, 0.125, 1e23, 2.0 ** 70]
    ties += [math.ldexp(rng.getrandbits(53), rng.randint(-8, 4)) for _ in range(3000)]  # few binary places
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"v": v} for v in ties]))
    for dst_fmt in ("csv", "ndjson"):
        got, want = both(tmp_path, exe, src, "json", dst_fmt)
        assert got == want
    assert b'{"v": 562949953421312.2}' in got[1]


def test_escapes_and_text_match(tmp_path, exe):
    src = tmp_path / "in.ndjson"
    src.write_bytes(b'{"s": "\\u00e9\\ud83d\\ude80\\u0000\\u001f\\/\\b\\f\\n\\r\\t\\"\\\\\\u2028\\u007f", '
                    b'"\\u006b": "caf\xc3\xa9, \\"q\\"", "n": {"x\\ty": ["\\r"]}}\r\n\n   \n'
                    b'  {"s": "", "k": null}  \n{"only": ""}')
    for dst_fmt in ("json", "csv"):
        got, want = both(tmp_path, exe, src, "ndjson", dst_fmt)
        assert got == want


def test_late_columns_pad_the_rows_written_before_them(tmp_path, exe):
    # beyond the records held for the header (4 MB), so the rows written before `late` are padded afterwards
    rows = [{"a": i, "pad": "x" * 200, "q": 'say "hi",\nthere' if i % 1000 == 0 else ""} for i in range(30_000)]
    rows += [{"late": "here"}, {}, {"a": 1, "late2": [1]}]
    src = sources(tmp_path, rows)
    for src_fmt in ("json", "ndjson"):
        got, want = both(tmp_path, exe, src[src_fmt], src_fmt, "csv")
        assert got == want
        assert got[1].startswith(b"a,pad,q,late,late2\n")


@pytest.mark.parametrize("rows", [
    [{}, {}, {"only": ""}],
    [{"only": ""}, {"only": None}] * 3,
    [{"only": ""}] * 20_000 + [{"second": 1}],
    [{}] * 60_000 + [{"x": ""}],
])
def test_single_and_empty_columns_write_as_the_csv_module_does(tmp_path, exe, rows):
    got, want = both(tmp_path, exe, sources(tmp_path, rows)["json"], "json", "csv")
    assert got == want


@pytest.mark.parametrize("content", [
    '[{"a": 1, "a": 2}]',                  # a key twice: Python keeps the last value in the first place
    '[{"a": {"b": 1, "b": 2}}]',
    '[{"a": "\\ud800"}]',                  # a lone surrogate
    '[{"a": 1e400}]',                      # beyond a double
    '[{"a": NaN}]',
    '[{"a": 1}, 7]',                       # not an object
    '[{"a": 1}] trailing',
    '[{"a": 1},',
    '[{"a": 01}]',
    '[{"a": ' + "7" * 5000 + "}]",          # more digits than Python's int() reads
    '{"a": 1}',
    '[{"a": "caf\xe9"}]',
    "[" + '{"a":' * 600 + "1" + "}" * 600 + "]",
])
def test_what_python_decides_is_left_to_python(tmp_path, exe, content):
    src = tmp_path / "in.json"
    src.write_bytes(content.encode("utf-8", "surrogateescape") if "\xe9" not in content
                    else content.encode("latin-1"))
    for dst_fmt in ("ndjson", "csv"):
        got, want = both(tmp_path, exe, src, "json", dst_fmt)
        assert isinstance(got, str) and got.startswith("fallback: "), got


@pytest.mark.parametrize("content", [
    b'\xef\xbb\xbf{"a": 1}\n', b'{"a": 1}\n{"a": [1\n2]}\n', b'{"a": 1} {"b": 2}\n', b'{"a": 1}\n\x0b\n', b'[1]\n',
])
def test_ndjson_oddities_are_left_to_python(tmp_path, exe, content):
    src = tmp_path / "in.ndjson"
    src.write_bytes(content)
    got, _ = both(tmp_path, exe, src, "ndjson", "json")
    assert isinstance(got, str) and got.startswith("fallback: ")


def test_a_large_edge_conversion_falls_back_with_the_exact_error(tmp_path, exe):
    from server.engine.data import isolate

    src = tmp_path / "in.json"
    src.write_text("[" + '{"a": 1}, ' * 1001 + "7]")
    with pytest.raises(MalformedDataError, match=r"^in.json record 1002: expected an object, found a number"):
        isolate.convert_isolated(src, "json", tmp_path / "out.csv", "csv", threshold=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


keys = st.sampled_from(["a", "b", "c", "d,e", "f\"", "é", "", "g\nh", "i\rj"])
records = st.lists(st.dictionaries(keys, json_values, max_size=5), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=records, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_property_native_equals_exact(tmp_path_factory, exe, rows, ascii_only, indent):
    tmp_path = tmp_path_factory.mktemp("p")
    src = sources(tmp_path, rows, ensure_ascii=ascii_only, indent=indent)
    for src_fmt, dst_fmt in PAIRS:
        got, want = both(tmp_path, exe, src[src_fmt], src_fmt, dst_fmt)
        # equal, or left to Python where Python refuses the input (a NUL in csv text, say)
        assert got == want or (isinstance(got, str) and want[0] == "error"), (src_fmt, dst_fmt)
    shutil.rmtree(tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40))
def test_property_floats_print_as_python_prints_them(tmp_path_factory, exe, xs):
    tmp_path = tmp_path_factory.mktemp("f")
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps({"v": x, "n": [x]}) + "\n" for x in xs))
    for dst_fmt in ("json", "csv"):
        got, want = both(tmp_path, exe, src, "ndjson", dst_fmt)
        assert got == want
    shutil.rmtree(tmp_path)


def test_convert_takes_the_compiled_path_for_large_files_and_can_be_turned_off(tmp_path, exe, monkeypatch):
    rows = TRICKY * 4000
    src = write_json(tmp_path / "in.json", rows)
    assert src.stat().st_size >= formats.NATIVE_MIN_BYTES
    calls = []
    real = native.run
    monkeypatch.setattr(native, "run", lambda *a: calls.append(a) or real(*a))
    assert convert(src, "json", tmp_path / "a.csv", "csv") == len(rows)
    assert len(calls) == 1
    monkeypatch.setenv(native.ENV, "0")
    assert convert(src, "json", tmp_path / "b.csv", "csv") == len(rows)
    assert len(calls) == 1
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.timeout(240)
def test_a_large_conversion_stays_in_bounded_memory(tmp_path, exe):
    from tests.engine.test_formats import generate_json_array

    src = tmp_path / "big.json"
    n = generate_json_array(src, 60_000_000)  # its last record brings a new column: the csv is padded
    nd = tmp_path / "big.ndjson"
    # The child reports the peak RSS of the converter it ran (ru_maxrss of its children).
    code = ("import json, resource, sys\nfrom pathlib import Path\nfrom server.engine.data import native\n"
            "n = native.convert_native(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4])\n"
            "print(json.dumps({'count': n, 'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    for src_path, src_fmt, dst, dst_fmt in ((src, "json", nd, "ndjson"), (src, "json", tmp_path / "o.csv", "csv"),
                                           (nd, "ndjson", tmp_path / "o.json", "json"),
                                           (nd, "ndjson", tmp_path / "o2.csv", "csv")):
        out = subprocess.run([sys.executable, "-c", code, str(src_path), src_fmt, str(dst), dst_fmt],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
        report = json.loads(out.stdout)
        assert report["count"] == n
        assert report["peak_kb"] < 40 * 1024, f"{src_fmt} -> {dst_fmt}: peak RSS {report['peak_kb'] // 1024} MB"
    with open(tmp_path / "o.csv", encoding="utf-8", newline="") as f:
        import csv

        reader = csv.reader(f)
        assert next(reader) == ["id", "sensor", "kind", "value", "ok", "ts", "tags", "meta", "late"]
        assert next(reader)[-1] == ""
    assert (tmp_path / "o.csv").read_bytes() == (tmp_path / "o2.csv").read_bytes()


# ---------------------------------------------------------------------------
# csv sources


def write_csv(path: Path, header: list[str], rows: list[list[str]], lineterminator: str = "\n") -> Path:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator=lineterminator)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize("dst_fmt", ["json", "ndjson"])
def test_csv_written_by_pipeloom_reads_back_the_same(tmp_path, exe, dst_fmt):
    src = tmp_path / "in.csv"
    convert(sources(tmp_path, TRICKY * 3)["json"], "json", src, "csv", exact=True)
    got, want = both(tmp_path, exe, src, "csv", dst_fmt)
    assert got == want


@pytest.mark.parametrize("content", [
    b'\xef\xbb\xbfa,b\r\n1,2\r\n\r\n"x\r\ny",""\r\n3\r\n',   # BOM, CRLF, an empty line, CRLF inside quotes, a short row
    b"a,b\n1,2",                                           # no line end at the end
    b'\n\na,"b ""q"""\n"",\n , \n\n',                       # blank lines first, a quoted header, spaces kept
    b'h\n"multi\nline\ttab\\back"\n"\x01"\n',
    b"a,b\n",
    b"a\n\xc3\xa9t\xc3\xa9\n",
    b"",
    b"\n\r\n",
])
def test_csv_oddities_read_as_the_csv_module_reads_them(tmp_path, exe, content):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    for dst_fmt in ("json", "ndjson"):
        got, want = both(tmp_path, exe, src, "csv", dst_fmt)
        assert got == want


@pytest.mark.parametrize("content", [
    b"a,b\r1,2\r",                 # bare CR line ends
    b'a,b\n1,x"y"\n',              # a quote inside an unquoted field
    b'a,b\n"1"x,2\n',              # text after a closing quote
    b"a,b\n1,2,3\n",               # longer than the header
    b"a,a\n1,2\n",                 # a column twice
    b"a,b\n1,\x002\n",             # NUL
    b"a,b\n1,\xe9\n",              # not UTF-8
    b'a,b\n1,"open\n',             # the file ends inside quotes
])
def test_what_the_csv_reader_decides_is_left_to_python(tmp_path, exe, content):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    got, _ = both(tmp_path, exe, src, "csv", "json")
    assert isinstance(got, str) and got.startswith("fallback: "), got


cells = st.text(alphabet=st.characters(blacklist_characters="\x00\r", blacklist_categories=("Cs",)), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 4), rows=st.lists(st.lists(cells, min_size=1, max_size=4), max_size=10),
       crlf=st.booleans())
def test_property_csv_sources_read_as_python_reads_them(tmp_path_factory, exe, width, rows, crlf):
    tmp_path = tmp_path_factory.mktemp("c")
    rows = [r[:width] for r in rows]
    src = write_csv(tmp_path / "in.csv", [f"c{i}" for i in range(width)], rows, "\r\n" if crlf else "\n")
    for dst_fmt in ("json", "ndjson"):
        got, want = both(tmp_path, exe, src, "csv", dst_fmt)
        assert got == want
    shutil.rmtree(tmp_path)


def test_without_cargo_conversions_run_in_python_with_the_same_bytes(tmp_path, monkeypatch):
    from server.engine import toolchains

    src = write_json(tmp_path / "in.json", TRICKY * 4000)
    convert(src, "json", tmp_path / "want.csv", "csv", exact=True)
    real = toolchains.resolve
    monkeypatch.setattr(toolchains, "resolve", lambda tool: None if tool == "cargo" else real(tool))
    assert native.binary() is None and native.usable("json", "csv") is None
    assert convert(src, "json", tmp_path / "got.csv", "csv") == len(TRICKY) * 4000
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "want.csv").read_bytes()


def test_a_converter_that_does_not_build_leaves_conversions_to_python(tmp_path, monkeypatch):
    require(shutil.which("cargo") is not None, "needs cargo")
    broken = tmp_path / "native"
    (broken / "src").mkdir(parents=True)
    (broken / "Cargo.toml").write_text((native.SOURCE / "Cargo.toml").read_text())
    (broken / "src" / "main.rs").write_text("fn main() { this does not compile }\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    monkeypatch.setenv("PIPELOOM_CACHE_DIR", str(tmp_path / "cache"))
    assert native.binary() is None
    src = write_json(tmp_path / "in.json", TRICKY * 4000)
    assert convert(src, "json", tmp_path / "got.ndjson", "ndjson") == len(TRICKY) * 4000


def test_the_build_key_covers_every_source_file_under_src(tmp_path, monkeypatch):
    # a change to any module, one in a folder of its own too, makes a new converter
    require(shutil.which("cargo") is not None, "needs cargo")
    copy = tmp_path / "native"
    shutil.copytree(native.SOURCE, copy, ignore=shutil.ignore_patterns("target", "Cargo.lock"))
    monkeypatch.setattr(native, "SOURCE", copy)
    monkeypatch.setenv("PIPELOOM_CACHE_DIR", str(tmp_path / "cache"))
    assert len(list((copy / "src").glob("*.rs"))) > 1
    assert native.binary() is not None
    assert native.binary(build=False) is not None
    module = copy / "src" / "csv_write.rs"
    module.write_text(module.read_text() + "// changed\n")
    assert native.binary(build=False) is None
    module.write_text(module.read_text().removesuffix("// changed\n"))
    assert native.binary(build=False) is not None
    (copy / "src" / "more").mkdir()
    (copy / "src" / "more" / "mod.rs").write_text("// a module in a folder\n")
    assert native.binary(build=False) is None


def test_records_longer_than_the_read_buffer(tmp_path, exe):
    # the converter reads 8 MB at a time: a record of 10 MB makes it grow its buffer, and records cross reads.
    # The reference is the batch path (fast.py; equal to the record-by-record path, see test_convert_exact.py),
    # which reads a 10 MB string far sooner than the record-by-record reader.
    from server.engine.data import fast

    rows = [{"id": i, "s": "é" * 1000} for i in range(3000)] + [{"big": 'x"y' * 3_000_000, "n": [1.5] * 1000}]
    rows += [{"id": i} for i in range(3000)]
    src = sources(tmp_path, rows, exact_csv=False)
    for src_fmt, dst_fmt in (("json", "csv"), ("ndjson", "json"), ("csv", "ndjson")):
        n = native.convert_native(src[src_fmt], src_fmt, tmp_path / "n.out", dst_fmt, exe)
        m = fast.convert_fast(src[src_fmt], src_fmt, tmp_path / "f.out", dst_fmt)
        assert n == m == len(rows)
        assert (tmp_path / "n.out").read_bytes() == (tmp_path / "f.out").read_bytes(), (src_fmt, dst_fmt)
