package pipeloom

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// atomicFile is a temporary file beside the target, renamed into place by commit.
type atomicFile struct {
	port Port
	f    *os.File
	w    *bufio.Writer
	done bool
}

func createAtomic(p Port) (*atomicFile, error) {
	dir := filepath.Dir(p.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, p.errorf("cannot create folder: %v", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p.Path)+".tmp-*")
	if err != nil {
		return nil, p.errorf("cannot write: %v", err)
	}
	return &atomicFile{port: p, f: f, w: bufio.NewWriterSize(f, bufSize)}, nil
}

func (a *atomicFile) commit() error {
	if a.done {
		return nil
	}
	a.done = true
	if err := a.w.Flush(); err != nil {
		a.f.Close()
		os.Remove(a.f.Name())
		return a.port.errorf("cannot write: %v", err)
	}
	if err := a.f.Close(); err != nil {
		os.Remove(a.f.Name())
		return a.port.errorf("cannot write: %v", err)
	}
	if err := os.Chmod(a.f.Name(), 0o644); err != nil {
		return a.port.errorf("%v", err)
	}
	if err := os.Rename(a.f.Name(), a.port.Path); err != nil {
		os.Remove(a.f.Name())
		return a.port.errorf("cannot move into place: %v", err)
	}
	return nil
}

func (a *atomicFile) abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}

func writeWhole(p Port, data []byte) error {
	a, err := createAtomic(p)
	if err != nil {
		return err
	}
	if _, err := a.w.Write(data); err != nil {
		a.abort()
		return p.errorf("cannot write: %v", err)
	}
	return a.commit()
}

// encodeJSON marshals without HTML escaping and without the trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// WriteJSON writes v to output `name`: as a json document, or, for ndjson and
// csv outputs, v must be a list of records.
func WriteJSON(name string, v any) error {
	p, err := Output(name)
	if err != nil {
		return err
	}
	switch p.Format {
	case "json":
		data, err := encodeJSON(v)
		if err != nil {
			return p.errorf("cannot encode as JSON: %v", err)
		}
		return writeWhole(p, append(data, '\n'))
	case "ndjson", "csv":
		data, err := encodeJSON(v)
		if err != nil {
			return p.errorf("cannot encode as JSON: %v", err)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return p.errorf("a %s output needs a list of records: %v", p.Format, err)
		}
		w, err := newRecordWriter(p, nil)
		if err != nil {
			return err
		}
		return writeAll(w, items)
	}
	return p.errorf("format `%s` is not JSON data; use WriteText or WriteBytes", p.Format)
}

// WriteRecords writes records to a json (array), ndjson or csv output.
func WriteRecords(name string, recs []map[string]any) error {
	w, err := NewRecordWriter(name)
	if err != nil {
		return err
	}
	return writeAll(w, recs)
}

// writeAll writes every item and publishes the file, or leaves nothing behind on the first error.
func writeAll[T any](w *RecordWriter, items []T) error {
	for _, it := range items {
		if err := w.Write(it); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// WriteText writes a whole output as text.
func WriteText(name, text string) error {
	p, err := resolve(name, "output", "text")
	if err != nil {
		return err
	}
	return writeWhole(p, []byte(text))
}

// WriteBytes writes a whole output as bytes.
func WriteBytes(name string, data []byte) error {
	p, err := resolve(name, "output", "binary")
	if err != nil {
		return err
	}
	return writeWhole(p, data)
}

// RecordWriter streams records into a json (array), ndjson or csv output.
// The file appears only when Close succeeds; Abort drops it.
type RecordWriter struct {
	port    Port
	file    *atomicFile
	count   int
	columns []string
	known   map[string]bool
	csv     *csv.Writer
	buf     bytes.Buffer
	enc     *json.Encoder
}

// NewRecordWriter opens output `name` for streaming; columns fixes the csv
// header (by default, the first record's fields).
func NewRecordWriter(name string, columns ...string) (*RecordWriter, error) {
	p, err := Output(name)
	if err != nil {
		return nil, err
	}
	return newRecordWriter(p, columns)
}

func newRecordWriter(p Port, columns []string) (*RecordWriter, error) {
	switch p.Format {
	case "json", "ndjson", "csv":
	default:
		return nil, p.errorf("format `%s` has no records (expected json, ndjson or csv)", p.Format)
	}
	a, err := createAtomic(p)
	if err != nil {
		return nil, err
	}
	w := &RecordWriter{port: p, file: a}
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false)
	if len(columns) > 0 {
		w.setColumns(columns)
	}
	if p.Format == "json" {
		a.w.WriteString("[")
	}
	return w, nil
}

func (w *RecordWriter) setColumns(cols []string) {
	w.columns = append([]string(nil), cols...)
	w.known = make(map[string]bool, len(cols))
	for _, c := range cols {
		w.known[c] = true
	}
}

// Write appends one record (a struct, a map, or any JSON value for json/ndjson).
func (w *RecordWriter) Write(rec any) error {
	w.count++
	if w.port.Format == "csv" {
		return w.writeCSV(rec)
	}
	w.buf.Reset()
	if err := w.enc.Encode(rec); err != nil {
		return w.port.errorf("record %d cannot be encoded as JSON: %v", w.count, err)
	}
	line := w.buf.Bytes()
	if w.port.Format == "json" {
		if w.count > 1 {
			w.file.w.WriteString(",\n")
		} else {
			w.file.w.WriteString("\n")
		}
		line = line[:len(line)-1]
	}
	_, err := w.file.w.Write(line)
	return err
}

func (w *RecordWriter) writeCSV(rec any) error {
	var fields map[string]any
	var order []string
	switch r := rec.(type) {
	case map[string]any:
		fields = r
	case map[string]string:
		fields = make(map[string]any, len(r))
		for k, v := range r {
			fields[k] = v
		}
	default:
		data, err := json.Marshal(rec)
		if err != nil {
			return w.port.errorf("record %d cannot be encoded: %v", w.count, err)
		}
		if w.columns == nil {
			order, err = objectKeys(data)
			if err != nil {
				return w.port.errorf("csv records must be objects: record %d: %v", w.count, err)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return w.port.errorf("csv records must be objects: record %d: %v", w.count, err)
		}
	}
	if w.csv == nil {
		if w.columns == nil {
			if order == nil {
				for k := range fields {
					order = append(order, k)
				}
				sort.Strings(order)
			}
			w.setColumns(order)
		}
		w.csv = csv.NewWriter(w.file.w)
		if err := w.csv.Write(w.columns); err != nil {
			return w.port.errorf("cannot write: %v", err)
		}
	}
	row := make([]string, len(w.columns))
	for k := range fields {
		if !w.known[k] {
			return w.port.errorf("record %d has field `%s` not in the csv header %v; pass the columns to NewRecordWriter",
				w.count, k, w.columns)
		}
	}
	for i, c := range w.columns {
		row[i] = cell(fields[c])
	}
	if err := w.csv.Write(row); err != nil {
		return w.port.errorf("cannot write: %v", err)
	}
	return nil
}

// objectKeys lists the keys of a JSON object in document order.
func objectKeys(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("got %s", data)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	data, err := encodeJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// Count is the number of records written so far.
func (w *RecordWriter) Count() int { return w.count }

// Close finishes the file and moves it into place.
func (w *RecordWriter) Close() error {
	if w.file.done {
		return nil
	}
	switch w.port.Format {
	case "json":
		if w.count > 0 {
			w.file.w.WriteString("\n]\n")
		} else {
			w.file.w.WriteString("]\n")
		}
	case "csv":
		if w.csv == nil && w.columns != nil {
			w.csv = csv.NewWriter(w.file.w)
			w.csv.Write(w.columns)
		}
		if w.csv != nil {
			w.csv.Flush()
			if err := w.csv.Error(); err != nil {
				w.Abort()
				return w.port.errorf("cannot write: %v", err)
			}
		}
	}
	return w.file.commit()
}

// Abort drops the temporary file; nothing is published.
func (w *RecordWriter) Abort() { w.file.abort() }
