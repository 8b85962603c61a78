package pipeloom

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// declare points PIPELOOM_PORTS at files in a fresh folder and returns that folder.
func declare(t *testing.T, inputs, outputs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	doc := map[string]map[string]portEntry{"inputs": {}, "outputs": {}}
	for name, spec := range inputs {
		parts := strings.SplitN(spec, ":", 2)
		doc["inputs"][name] = portEntry{Path: filepath.Join(dir, parts[0]), Format: parts[1]}
	}
	for name, spec := range outputs {
		parts := strings.SplitN(spec, ":", 2)
		doc["outputs"][name] = portEntry{Path: filepath.Join(dir, parts[0]), Format: parts[1]}
	}
	data, _ := json.Marshal(doc)
	t.Setenv("PIPELOOM_PORTS", string(data))
	t.Setenv("PIPELOOM_WORKDIR", dir)
	return dir
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

var tricky = []map[string]any{
	{"id": "1", "note": "plain"},
	{"id": "2", "note": "has, comma"},
	{"id": "3", "note": "has \"quotes\""},
	{"id": "4", "note": "two\nlines"},
	{"id": "5", "note": ""},
}

func TestRecordsRoundTripEveryFormat(t *testing.T) {
	for _, format := range []string{"json", "ndjson", "csv"} {
		t.Run(format, func(t *testing.T) {
			file := "data." + format
			dir := declare(t, map[string]string{"in": file + ":" + format}, map[string]string{"out": file + ":" + format})
			if err := WriteRecords("out", tricky); err != nil {
				t.Fatal(err)
			}
			got, err := ReadRecords("in")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tricky) {
				t.Fatalf("round trip changed the records:\n got %v\nwant %v", got, tricky)
			}
			noTempFiles(t, dir)
		})
	}
}

func TestCSVFileIsRFC4180(t *testing.T) {
	dir := declare(t, nil, map[string]string{"out": "t.csv:csv"})
	w, err := NewRecordWriter("out", "id", "note")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tricky[1:4] {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "t.csv"))
	want := "id,note\n2,\"has, comma\"\n3,\"has \"\"quotes\"\"\"\n4,\"two\nlines\"\n"
	if string(data) != want {
		t.Fatalf("csv text:\n%q\nwant\n%q", data, want)
	}
}

type reading struct {
	Sensor string  `json:"sensor_id"`
	Value  float64 `json:"value"`
}

func TestEachRecordDecodesStructs(t *testing.T) {
	dir := declare(t, map[string]string{"events": "events.json:json"}, nil)
	writeFile(t, filepath.Join(dir, "events.json"), "\ufeff[ {\"sensor_id\": \"a\", \"value\": 1.5},\n{\"sensor_id\": \"b\", \"value\": -2} ]")
	var got []reading
	err := EachRecord("events", func(r reading) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []reading{{"a", 1.5}, {"b", -2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestCSVRowsIntoStructsAndReadJSONFromNDJSON(t *testing.T) {
	dir := declare(t, map[string]string{"rows": "rows.csv:csv", "lines": "lines.ndjson:ndjson"}, nil)
	writeFile(t, filepath.Join(dir, "rows.csv"), "sensor_id,extra\r\nalpha,x\r\n")
	writeFile(t, filepath.Join(dir, "lines.ndjson"), "{\"sensor_id\":\"a\",\"value\":3}\n\n{\"sensor_id\":\"b\",\"value\":4}\n")
	type row struct {
		Sensor string `json:"sensor_id"`
	}
	var rows []row
	if err := EachRecord("rows", func(r row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Sensor != "alpha" {
		t.Fatalf("csv rows: %v", rows)
	}
	var lines []reading
	if err := ReadJSON("lines", &lines); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lines, []reading{{"a", 3}, {"b", 4}}) {
		t.Fatalf("ndjson as JSON: %v", lines)
	}
}

func TestWriteJSONToNDJSONAndCSVOutputs(t *testing.T) {
	dir := declare(t, nil, map[string]string{"nd": "o.ndjson:ndjson", "c": "o.csv:csv", "doc": "o.json:json"})
	data := []reading{{"a", 1}, {"b<&>", 2.25}}
	for _, port := range []string{"nd", "c", "doc"} {
		if err := WriteJSON(port, data); err != nil {
			t.Fatal(err)
		}
	}
	nd, _ := os.ReadFile(filepath.Join(dir, "o.ndjson"))
	if string(nd) != "{\"sensor_id\":\"a\",\"value\":1}\n{\"sensor_id\":\"b<&>\",\"value\":2.25}\n" {
		t.Fatalf("ndjson: %q", nd)
	}
	c, _ := os.ReadFile(filepath.Join(dir, "o.csv"))
	if string(c) != "sensor_id,value\na,1\nb<&>,2.25\n" {
		t.Fatalf("csv: %q", c)
	}
	var back []reading
	t.Setenv("PIPELOOM_PORTS", `{"inputs": {"doc": {"path": "`+filepath.Join(dir, "o.json")+`", "format": "json"}}}`)
	if err := ReadJSON("doc", &back); err != nil || !reflect.DeepEqual(back, data) {
		t.Fatalf("json: %v %v", back, err)
	}
}

func TestAbortPublishesNothing(t *testing.T) {
	dir := declare(t, nil, map[string]string{"out": "out.ndjson:ndjson"})
	w, err := NewRecordWriter("out")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(map[string]any{"a": 1})
	w.Abort()
	if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); !os.IsNotExist(err) {
		t.Fatalf("aborted output exists: %v", err)
	}
	noTempFiles(t, dir)
}

func TestCSVRejectsFieldOutsideHeader(t *testing.T) {
	declare(t, nil, map[string]string{"out": "out.csv:csv"})
	w, _ := NewRecordWriter("out")
	defer w.Abort()
	if err := w.Write(map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	err := w.Write(map[string]any{"a": 2, "b": 3})
	if err == nil || !strings.Contains(err.Error(), "`b`") || !strings.Contains(err.Error(), "output `out`") {
		t.Fatalf("want an error naming the field and port, got %v", err)
	}
}

func TestParamsFromEnvironmentThenFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PIPELOOM_WORKDIR", dir)
	t.Setenv("PIPELOOM_PARAMS", `{"window": 50, "name": "x"}`)
	var p struct {
		Window int    `json:"window"`
		Name   string `json:"name"`
	}
	if err := Params(&p); err != nil || p.Window != 50 || p.Name != "x" {
		t.Fatalf("env params: %+v %v", p, err)
	}
	os.Unsetenv("PIPELOOM_PARAMS")
	writeFile(t, filepath.Join(dir, "params.json"), `{"window": 7}`)
	p.Window = 0
	if err := Params(&p); err != nil || p.Window != 7 {
		t.Fatalf("file params: %+v %v", p, err)
	}
}

func TestFallbacksWithoutPorts(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PIPELOOM_PORTS", "")
	t.Setenv("PIPELOOM_WORKDIR", dir)
	writeFile(t, filepath.Join(dir, "readings.csv"), "a\n1\n")
	p, err := Input("readings")
	if err != nil || p.Format != "csv" || p.Path != filepath.Join(dir, "readings.csv") {
		t.Fatalf("guessed input: %+v %v", p, err)
	}
	_, err = Input("missing")
	if err == nil || !strings.Contains(err.Error(), "input `missing` not found") {
		t.Fatalf("missing input error: %v", err)
	}
	envPath := filepath.Join(dir, "elsewhere.ndjson")
	t.Setenv("PIPELOOM_OUTPUT_MY_OUT", envPath)
	o, err := Output("my-out")
	if err != nil || o.Path != envPath || o.Format != "ndjson" {
		t.Fatalf("env output: %+v %v", o, err)
	}
	if err := WriteText("notes", "hello\n"); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadText("notes.txt"); err != nil || s != "hello\n" {
		t.Fatalf("text: %q %v", s, err)
	}
	if err := WriteBytes("blob", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadBytes("blob"); err != nil || !reflect.DeepEqual(b, []byte{0, 1, 2}) {
		t.Fatalf("bytes: %v %v", b, err)
	}
}

func TestErrorsNameThePortAndFile(t *testing.T) {
	dir := declare(t, map[string]string{"events": "events.json:json", "bad": "bad.json:json"}, nil)
	_, err := ReadRecords("events")
	if err == nil || !strings.Contains(err.Error(), "input `events`") || !strings.Contains(err.Error(), "file not found") {
		t.Fatalf("missing file: %v", err)
	}
	writeFile(t, filepath.Join(dir, "bad.json"), `{"not": "an array"}`)
	_, err = ReadRecords("bad")
	if err == nil || !strings.Contains(err.Error(), "expected a JSON array") || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("not an array: %v", err)
	}
}

func TestEachLineStripsLineEndings(t *testing.T) {
	dir := declare(t, map[string]string{"log": "s.log:text"}, nil)
	writeFile(t, filepath.Join(dir, "s.log"), "one\r\ntwo\n\nthree")
	var got []string
	if err := EachLine("log", func(l string) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"one", "two", "", "three"}) {
		t.Fatalf("lines: %q", got)
	}
}
