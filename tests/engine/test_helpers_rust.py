"""The Rust adapter helper (crate `pipeloom`): its own `cargo test` suite, and a
real program built against it by path, run with PIPELOOM_PORTS."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.engine.util import HELPER_EXPECTED, port_env

from server.engine.paths import cache_root

REPO = Path(__file__).resolve().parents[2]
HELPER_DIR = REPO / "server" / "engine" / "helpers" / "rust"

PROGRAM = r"""
use pipeloom::json::{json, Value};
use pipeloom::serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
#[serde(crate = "pipeloom::serde")]
struct Reading {
    sensor_id: String,
    value: f64,
    note: String,
}

fn main() -> pipeloom::Result<()> {
    let scale = pipeloom::params()["scale"].as_f64().unwrap_or(1.0);
    let mut all: Vec<Reading> = Vec::new();
    for port in ["from_json", "from_ndjson"] {
        pipeloom::each_record(port, |mut r: Reading| {
            r.value *= scale;
            all.push(r);
            Ok(())
        })?;
    }
    let rows = pipeloom::read_records("from_csv")?;
    for port in ["to_json", "to_ndjson", "to_csv"] {
        let mut w = pipeloom::record_writer(port)?;
        for r in &all {
            w.write(r)?;
        }
        w.finish()?;
    }
    pipeloom::write_records("rows_copy", &rows)?;
    let text = pipeloom::read_text("notes")?;
    pipeloom::write_text("shout", &text.to_uppercase())?;
    let bytes = pipeloom::read_bytes("blob")?;
    pipeloom::write_bytes("blob_copy", &bytes.iter().rev().copied().collect::<Vec<u8>>())?;
    let cfg: Value = pipeloom::read_json("cfg")?;
    pipeloom::write_json("summary", &json!({"readings": all.len(), "rows": rows.len(), "cfg": cfg}))?;
    println!("{} readings, {} rows", all.len(), rows.len());
    Ok(())
}
"""

NOTES = 'She said "hi", then left.\nsecond line\n'


@pytest.fixture
def cargo(require_tool):
    return require_tool("cargo", "`cargo` (Rust) is not installed on this machine")


def cargo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELOOM_") or k == "PIPELOOM_TEST_TAG"}
    env["CARGO_TARGET_DIR"] = str(cache_root() / "cargo-target")
    env["CARGO_TERM_COLOR"] = "never"
    return env


def test_rust_helper_unit_tests(cargo):
    proc = subprocess.run([cargo, "test", "--manifest-path", str(HELPER_DIR / "Cargo.toml")], env=cargo_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test result: ok" in proc.stdout and " 0 failed" in proc.stdout


def test_rust_program_reads_and_writes_every_format(cargo, tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.rs").write_text(PROGRAM)
    (proj / "Cargo.toml").write_text(textwrap.dedent(f"""\
        [package]
        name = "helper-check"
        version = "0.0.0"
        edition = "2021"

        [dependencies]
        pipeloom = {{ path = "{HELPER_DIR}" }}

        [workspace]
    """))
    proc = subprocess.run([cargo, "build", "--manifest-path", str(proj / "Cargo.toml")], env=cargo_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    binary = cache_root() / "cargo-target" / "debug" / "helper-check"

    work = tmp_path / "work"
    work.mkdir()
    (work / "a.json").write_text(json.dumps([{"sensor_id": "alpha", "value": 1.5, "note": "x, y"}]))
    (work / "b.ndjson").write_text('{"sensor_id": "bravo", "value": 2, "note": "say \\"hi\\""}\n\n'
                                   '{"sensor_id": "charlie", "value": -4, "note": "two\\nlines"}\n')
    (work / "c.csv").write_text('id,comment\r\n1,"multi\r\nline, with ""quotes"""\r\n2,plain\r\n', newline="")
    (work / "notes.txt").write_text(NOTES)
    (work / "blob.bin").write_bytes(bytes(range(256)))
    (work / "cfg.json").write_text('{"threshold": 3.5}')
    ports = {
        "inputs": {"from_json": "a.json:json", "from_ndjson": "b.ndjson:ndjson", "from_csv": "c.csv:csv",
                   "notes": "notes.txt:text", "blob": "blob.bin:binary", "cfg": "cfg.json:json"},
        "outputs": {"to_json": "out.json:json", "to_ndjson": "out.ndjson:ndjson", "to_csv": "out.csv:csv",
                    "rows_copy": "rows.ndjson:ndjson", "shout": "shout.txt:text", "blob_copy": "r.bin:binary",
                    "summary": "summary.json:json"},
    }
    env = port_env(work, ports.get("inputs"), ports.get("outputs"), {"scale": 10}, base=cargo_env())
    proc = subprocess.run([str(binary)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "3 readings, 2 rows"

    expected = HELPER_EXPECTED
    assert json.loads((work / "out.json").read_text()) == expected
    assert [json.loads(x) for x in (work / "out.ndjson").read_text().splitlines()] == expected
    with open(work / "out.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == [{"sensor_id": r["sensor_id"], "value": f"{r['value']:.1f}",
                                             "note": r["note"]} for r in expected]
    assert (work / "out.csv").read_text().splitlines()[0] == "sensor_id,value,note"
    rows = [json.loads(x) for x in (work / "rows.ndjson").read_text().splitlines()]
    assert rows == [{"id": "1", "comment": 'multi\r\nline, with "quotes"'}, {"id": "2", "comment": "plain"}]
    assert (work / "shout.txt").read_text() == NOTES.upper()
    assert (work / "r.bin").read_bytes() == bytes(range(255, -1, -1))
    assert json.loads((work / "summary.json").read_text()) == {"readings": 3, "rows": 2, "cfg": {"threshold": 3.5}}
    assert not [p.name for p in work.iterdir() if ".tmp-" in p.name]

    # A missing input fails the program with a message naming the port and file.
    (work / "b.ndjson").unlink()
    proc = subprocess.run([str(binary)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "input `from_ndjson`" in proc.stderr and "b.ndjson" in proc.stderr and "file not found" in proc.stderr
