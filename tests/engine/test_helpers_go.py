"""The Go adapter helper (module `pipeloom.local/pipeloom`): its own `go test`
suite, and a real program built against it the way the go runtime builds nodes
(a go.mod with require + replace), run with PIPELOOM_PORTS."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.engine.util import HELPER_EXPECTED, port_env

REPO = Path(__file__).resolve().parents[2]
HELPER_DIR = REPO / "server" / "engine" / "helpers" / "go"

PROGRAM = """
package main

import (
	"fmt"
	"log"
	"strings"

	"pipeloom.local/pipeloom"
)

type reading struct {
	Sensor string  `json:"sensor_id"`
	Value  float64 `json:"value"`
	Note   string  `json:"note"`
}

func main() {
	var p struct {
		Scale float64 `json:"scale"`
	}
	if err := pipeloom.Params(&p); err != nil {
		log.Fatal(err)
	}
	var all []reading
	for _, port := range []string{"from_json", "from_ndjson"} {
		err := pipeloom.EachRecord(port, func(r reading) error {
			r.Value *= p.Scale
			all = append(all, r)
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	rows, err := pipeloom.ReadRecords("from_csv")
	if err != nil {
		log.Fatal(err)
	}
	for _, port := range []string{"to_json", "to_ndjson", "to_csv"} {
		w, err := pipeloom.NewRecordWriter(port)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range all {
			if err := w.Write(r); err != nil {
				log.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
	}
	if err := pipeloom.WriteRecords("rows_copy", rows); err != nil {
		log.Fatal(err)
	}
	text, err := pipeloom.ReadText("notes")
	if err != nil {
		log.Fatal(err)
	}
	if err := pipeloom.WriteText("shout", strings.ToUpper(text)); err != nil {
		log.Fatal(err)
	}
	if err := pipeloom.WriteJSON("summary", map[string]any{"readings": len(all), "rows": len(rows)}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d readings, %d rows\\n", len(all), len(rows))
}
"""

NOTES = 'She said "hi", then left.\nsecond line\n'


@pytest.fixture
def go(require_tool):
    return require_tool("go", "`go` is not installed on this machine")


def go_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELOOM_") or k == "PIPELOOM_TEST_TAG"}
    env["GOFLAGS"] = "-mod=mod"
    env["CGO_ENABLED"] = "0"
    return env


def test_go_helper_unit_tests(go):
    proc = subprocess.run([go, "test", "-count=1", "./..."], cwd=HELPER_DIR, env=go_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout and "pipeloom.local/pipeloom" in proc.stdout


def test_go_program_reads_and_writes_every_format(go, tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "main.go").write_text(PROGRAM)
    (build / "go.mod").write_text(textwrap.dedent(f"""\
        module gotest

        go 1.21

        require pipeloom.local/pipeloom v0.0.0
        replace pipeloom.local/pipeloom => {HELPER_DIR}
    """))
    proc = subprocess.run([go, "build", "-o", str(tmp_path / "prog"), "."], cwd=build, env=go_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    work = tmp_path / "work"
    work.mkdir()
    (work / "a.json").write_text(json.dumps([{"sensor_id": "alpha", "value": 1.5, "note": "x, y"}]))
    (work / "b.ndjson").write_text('{"sensor_id": "bravo", "value": 2, "note": "say \\"hi\\""}\n\n'
                                   '{"sensor_id": "charlie", "value": -4, "note": "two\\nlines"}\n')
    (work / "c.csv").write_text('id,comment\r\n1,"multi\r\nline, with ""quotes"""\r\n2,plain\r\n', newline="")
    (work / "notes.txt").write_text(NOTES)
    ports = {
        "inputs": {"from_json": "a.json:json", "from_ndjson": "b.ndjson:ndjson", "from_csv": "c.csv:csv",
                   "notes": "notes.txt:text"},
        "outputs": {"to_json": "out.json:json", "to_ndjson": "out.ndjson:ndjson", "to_csv": "out.csv:csv",
                    "rows_copy": "rows.ndjson:ndjson", "shout": "shout.txt:text", "summary": "summary.json:json"},
    }
    env = port_env(work, ports.get("inputs"), ports.get("outputs"), {"scale": 10}, base=go_env())
    proc = subprocess.run([str(tmp_path / "prog")], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "3 readings, 2 rows"

    expected = HELPER_EXPECTED
    assert json.loads((work / "out.json").read_text()) == expected
    assert [json.loads(x) for x in (work / "out.ndjson").read_text().splitlines()] == expected
    with open(work / "out.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert got == [{k: str(v) for k, v in r.items()} for r in expected]
    assert (work / "out.csv").read_text().splitlines()[0] == "sensor_id,value,note"
    rows = [json.loads(x) for x in (work / "rows.ndjson").read_text().splitlines()]
    # encoding/csv turns a quoted CRLF into LF, as its documentation says.
    assert rows == [{"id": "1", "comment": 'multi\nline, with "quotes"'}, {"id": "2", "comment": "plain"}]
    assert (work / "shout.txt").read_text() == NOTES.upper()
    assert json.loads((work / "summary.json").read_text()) == {"readings": 3, "rows": 2}
    assert not [p.name for p in work.iterdir() if ".tmp-" in p.name]

    # A missing input fails the program with a message naming the port and file.
    (work / "a.json").unlink()
    proc = subprocess.run([str(tmp_path / "prog")], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "input `from_json`" in proc.stderr and "a.json" in proc.stderr and "file not found" in proc.stderr
