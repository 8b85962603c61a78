// Package pipeloom reads a node's inputs and writes its outputs by port name,
// in their declared formats (json, ndjson, csv, text, binary).
//
// Ports come from PIPELOOM_PORTS, which Pipeloom sets for every node. When it
// is absent (a program run by hand), a port `x` falls back to PIPELOOM_INPUT_X
// or PIPELOOM_OUTPUT_X, then to `x.<ext>` in the current folder, the format
// guessed from the extension. A name with an extension (`config.json`) names
// a file directly. Standard library only.
package pipeloom

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Port is one resolved input or output.
type Port struct {
	Name   string
	Path   string
	Format string
	Kind   string // "input" or "output"
}

func (p Port) where() string {
	return fmt.Sprintf("%s `%s` (%s)", p.Kind, p.Name, p.Path)
}

func (p Port) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", p.where(), fmt.Sprintf(format, args...))
}

var extensionFormats = map[string]string{
	".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv",
	".txt": "text", ".text": "text", ".log": "text", ".md": "text",
	".parquet": "parquet", ".pq": "parquet", ".bin": "binary",
}

var guessExtensions = []string{".json", ".ndjson", ".jsonl", ".csv", ".txt", ".log", ".parquet", ".bin"}

var formatExtension = map[string]string{
	"json": ".json", "ndjson": ".ndjson", "csv": ".csv", "text": ".txt", "binary": ".bin", "parquet": ".parquet",
}

type portEntry struct {
	Path   string `json:"path"`
	Format string `json:"format"`
}

type portsDoc struct {
	Inputs  map[string]portEntry `json:"inputs"`
	Outputs map[string]portEntry `json:"outputs"`
}

func guessFormat(path string) string {
	if f, ok := extensionFormats[strings.ToLower(filepath.Ext(path))]; ok {
		return f
	}
	return "binary"
}

func workdir() string {
	if d := os.Getenv("PIPELOOM_WORKDIR"); d != "" {
		return d
	}
	d, err := os.Getwd()
	if err != nil {
		return "."
	}
	return d
}

func envKey(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func resolve(name, kind, hint string) (Port, error) {
	if raw := os.Getenv("PIPELOOM_PORTS"); raw != "" {
		var doc portsDoc
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			return Port{}, fmt.Errorf("PIPELOOM_PORTS is not valid JSON: %v", err)
		}
		declared := doc.Inputs
		if kind == "output" {
			declared = doc.Outputs
		}
		entry, ok := declared[name]
		if !ok {
			for _, e := range declared {
				if filepath.Base(e.Path) == name {
					entry, ok = e, true
					break
				}
			}
		}
		if ok {
			f := entry.Format
			if f == "" {
				f = guessFormat(entry.Path)
			}
			return Port{name, entry.Path, f, kind}, nil
		}
	}
	if env := os.Getenv("PIPELOOM_" + strings.ToUpper(kind) + "_" + envKey(name)); env != "" {
		return Port{name, env, guessFormat(env), kind}, nil
	}
	base := workdir()
	if filepath.Ext(name) != "" {
		p := filepath.Join(base, name)
		return Port{name, p, guessFormat(p), kind}, nil
	}
	if kind == "input" || hint == "" {
		for _, ext := range guessExtensions {
			p := filepath.Join(base, name+ext)
			if _, err := os.Stat(p); err == nil {
				return Port{name, p, guessFormat(p), kind}, nil
			}
		}
	}
	if kind == "input" {
		tried := make([]string, 0, 4)
		for _, ext := range guessExtensions[:4] {
			tried = append(tried, name+ext)
		}
		return Port{}, fmt.Errorf("input `%s` not found: PIPELOOM_PORTS does not declare it and none of %s, ... exists in %s",
			name, strings.Join(tried, ", "), base)
	}
	if hint == "" {
		hint = "json"
	}
	return Port{name, filepath.Join(base, name+formatExtension[hint]), hint, kind}, nil
}

// Input resolves input port `name`.
func Input(name string) (Port, error) { return resolve(name, "input", "") }

// Output resolves output port `name`.
func Output(name string) (Port, error) { return resolve(name, "output", "") }

// InputPath is the absolute path of input `name`.
func InputPath(name string) (string, error) {
	p, err := Input(name)
	return p.Path, err
}

// OutputPath is the absolute path where output `name` must be written.
func OutputPath(name string) (string, error) {
	p, err := Output(name)
	return p.Path, err
}

// Params decodes the node's params (PIPELOOM_PARAMS, else params.json in the
// working folder) into v; with neither, v is left as it is.
func Params(v any) error {
	raw, source := os.Getenv("PIPELOOM_PARAMS"), "PIPELOOM_PARAMS"
	if _, set := os.LookupEnv("PIPELOOM_PARAMS"); !set {
		p := filepath.Join(workdir(), "params.json")
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read params from %s: %v", p, err)
		}
		raw, source = string(data), p
	}
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("params in %s do not fit: %v", source, err)
	}
	return nil
}
