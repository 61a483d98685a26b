package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadConfigFile applies a YAML config file to the flags not already set
// on the command line or through their HERALD_* variable, so the
// precedence is: flag > environment > config file > default. Keys are the
// flag names (addr, drain-timeout, redis-url, ...); a list may be given
// for comma-separated flags. An unknown key or a value the flag rejects is
// an error naming the field.
func (f *envFlags) loadConfigFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return fmt.Errorf("config file %s: not valid YAML: %v", path, err)
	}
	setOnCLI := map[string]bool{}
	f.fs.Visit(func(fl *flagT) { setOnCLI[fl.Name] = true })
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if key == "config" || f.fs.Lookup(key) == nil {
			return fmt.Errorf("config file %s: unknown field %q (fields are the flag names of herald serve --help)", path, key)
		}
		if setOnCLI[key] || f.fromEnv[key] {
			continue
		}
		val, err := yamlScalar(doc[key])
		if err != nil {
			return fmt.Errorf("config file %s: field %q: %v", path, key, err)
		}
		if err := f.fs.Set(key, val); err != nil {
			return fmt.Errorf("config file %s: field %q: invalid value %q: %v", path, key, val, err)
		}
	}
	return nil
}

// yamlScalar turns a YAML value into the text a flag parses.
func yamlScalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := yamlScalar(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("expected a scalar or a list, got %T", v)
}
