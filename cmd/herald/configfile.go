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
// for comma-separated flags. An unknown key (with the closest known one)
// or a value the flag rejects (with what it takes) is an error naming the
// file and the key.
func (f *envFlags) loadConfigFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return fmt.Errorf("%s: not valid YAML: %v", path, err)
	}
	f.file = path
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if key != "config" && f.fs.Lookup(key) == nil && f.shared != nil && f.shared.Lookup(key) != nil {
			continue // another command's setting (serve's, in token)
		}
		if key == "config" || f.fs.Lookup(key) == nil {
			names := flagNames(f.fs)
			if s := suggest(key, names); s != "" && s != "config" {
				return fmt.Errorf("%s: unknown key %q; did you mean %s? (the keys are the flag names)", path, key, s)
			}
			return fmt.Errorf("%s: unknown key %q (the keys are the flag names)", path, key)
		}
		if f.onCLI[key] || f.fromEnv[key] {
			continue
		}
		val, err := yamlScalar(doc[key])
		if err != nil {
			return fmt.Errorf("%s: %s: %v", path, key, err)
		}
		if err := f.fs.Set(key, val); err != nil {
			return badValue(path+": "+key, val, f.fs.Lookup(key), err)
		}
		f.fromFile[key] = true
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
	if _, ok := v.(map[string]any); ok {
		return "", errors.New("expected a value or a list, not a mapping")
	}
	return "", fmt.Errorf("expected a value or a list, got %T", v)
}
