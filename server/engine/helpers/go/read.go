package pipeloom

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

const bufSize = 1 << 20

func openInput(name string) (Port, *os.File, error) {
	p, err := Input(name)
	if err != nil {
		return p, nil, err
	}
	f, err := os.Open(p.Path)
	if os.IsNotExist(err) {
		return p, nil, p.errorf("file not found")
	}
	if err != nil {
		return p, nil, p.errorf("cannot open: %v", err)
	}
	return p, f, nil
}

// skipBOM drops a UTF-8 byte order mark, which some editors write.
func skipBOM(r *bufio.Reader) {
	if b, err := r.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = r.Discard(3)
	}
}

// ReadJSON decodes input `name` into v: a json document as is; ndjson and csv
// inputs as an array of records.
func ReadJSON(name string, v any) error {
	p, f, err := openInput(name)
	if err != nil {
		return err
	}
	defer f.Close()
	switch p.Format {
	case "json":
		r := bufio.NewReaderSize(f, bufSize)
		skipBOM(r)
		if err := json.NewDecoder(r).Decode(v); err != nil {
			return p.errorf("invalid JSON or wrong shape: %v", err)
		}
		return nil
	case "ndjson", "csv":
		recs, err := ReadRecords(name)
		if err != nil {
			return err
		}
		data, err := json.Marshal(recs)
		if err != nil {
			return p.errorf("%v", err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			return p.errorf("records do not fit: %v", err)
		}
		return nil
	}
	return p.errorf("format `%s` is not JSON data; use ReadText or ReadBytes", p.Format)
}

// ReadRecords reads every record of a json (array), ndjson or csv input.
// csv values are strings.
func ReadRecords(name string) ([]map[string]any, error) {
	var out []map[string]any
	err := EachRecord(name, func(r map[string]any) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachRecord streams the records of a json array, ndjson or csv input, decoding
// each into T (a struct, or map[string]any) and calling fn; an error from fn stops it.
func EachRecord[T any](name string, fn func(T) error) error {
	p, f, err := openInput(name)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, bufSize)
	skipBOM(r)
	switch p.Format {
	case "json":
		return eachJSONItem(p, r, fn)
	case "ndjson":
		return eachNDJSON(p, r, fn)
	case "csv":
		return eachCSV(p, r, fn)
	}
	return p.errorf("format `%s` has no records (expected json, ndjson or csv)", p.Format)
}

func eachJSONItem[T any](p Port, r io.Reader, fn func(T) error) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return p.errorf("invalid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return p.errorf("expected a JSON array of records, found %v; use ReadJSON for other documents", tok)
	}
	for n := 1; dec.More(); n++ {
		var item T
		if err := dec.Decode(&item); err != nil {
			return p.errorf("record %d: %v", n, err)
		}
		if err := fn(item); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return p.errorf("invalid JSON at the end of the array: %v", err)
	}
	return nil
}

func eachNDJSON[T any](p Port, r *bufio.Reader, fn func(T) error) error {
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var item T
			if jerr := json.Unmarshal(line, &item); jerr != nil {
				return p.errorf("line %d: %v", n, jerr)
			}
			if ferr := fn(item); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return p.errorf("cannot read: %v", err)
		}
	}
}

func eachCSV[T any](p Port, r io.Reader, fn func(T) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return p.errorf("invalid csv: %v", err)
	}
	header = append([]string(nil), header...)
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return p.errorf("invalid csv: %v", err)
		}
		rec := make(map[string]any, len(header))
		for i, h := range header {
			if i < len(row) {
				rec[h] = row[i]
			} else {
				rec[h] = ""
			}
		}
		var item T
		if m, ok := any(&item).(*map[string]any); ok {
			*m = rec
		} else {
			data, _ := json.Marshal(rec)
			if err := json.Unmarshal(data, &item); err != nil {
				line, _ := cr.FieldPos(0)
				return p.errorf("line %d: row does not fit: %v", line, err)
			}
		}
		if err := fn(item); err != nil {
			return err
		}
	}
}

// EachLine streams the lines of an input (without the line ending).
func EachLine(name string, fn func(line string) error) error {
	_, f, err := openInput(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, bufSize), 64*bufSize)
	for sc.Scan() {
		line := sc.Text()
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		p, _ := Input(name)
		return p.errorf("cannot read: %v", err)
	}
	return nil
}

// ReadText reads a whole input as text.
func ReadText(name string) (string, error) {
	b, err := ReadBytes(name)
	return string(b), err
}

// ReadBytes reads a whole input as bytes.
func ReadBytes(name string) ([]byte, error) {
	p, err := Input(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p.Path)
	if os.IsNotExist(err) {
		return nil, p.errorf("file not found")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read: %v", p.where(), err)
	}
	return b, nil
}
