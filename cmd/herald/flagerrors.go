package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/heraldrt/herald"
)

// The flag package's error texts (stable since Go 1): explainFlagError
// turns them into one line naming the flag as typed, with a hint.
var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	reBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([^:\s]+): (.*)$`)
	reNoValue   = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// explainFlagError rewrites an error of fs.Parse for a person: the flag as
// typed with two dashes, what it expects, and for an unknown flag the
// closest known one ("did you mean --addr?").
func explainFlagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		name := m[1]
		if s := suggestFlag(fs, name); s != "" {
			return fmt.Errorf("unknown flag --%s; did you mean %s?", name, s)
		}
		return fmt.Errorf("unknown flag --%s", name)
	}
	if m := reBadValue.FindStringSubmatch(msg); m != nil {
		value, uerr := strconv.Unquote(m[1])
		if uerr != nil {
			value = m[1]
		}
		return badValue("--"+m[2], value, fs.Lookup(m[2]), errors.New(m[3]))
	}
	if m := reNoValue.FindStringSubmatch(msg); m != nil {
		hint := ""
		if fl := fs.Lookup(m[1]); fl != nil {
			if ex := example(fl); ex != "" {
				hint = ", e.g. --" + fl.Name + " " + ex
			}
		}
		return fmt.Errorf("--%s needs a value%s", m[1], hint)
	}
	return err
}

// badValue explains why value, given through origin (a flag, a variable or
// a config file key), is not what fl takes.
func badValue(origin, value string, fl *flag.Flag, err error) error {
	if fl == nil {
		return fmt.Errorf("%s: %q: %v", origin, value, err)
	}
	getter, _ := fl.Value.(flag.Getter)
	var kind any
	if getter != nil {
		kind = getter.Get()
	}
	switch kind.(type) {
	case time.Duration:
		if _, nerr := strconv.ParseFloat(value, 64); nerr == nil {
			return fmt.Errorf("%s: %q is not a duration: it needs a unit, e.g. %ss", origin, value, value)
		}
		return fmt.Errorf("%s: %q is not a duration: write a number and a unit (ms, s, m, h), e.g. %s", origin, value, durationExample(fl))
	case bool:
		return fmt.Errorf("%s: %q is not a boolean: use true or false (yes/no, on/off and 1/0 work too)", origin, value)
	case int, int64, uint, uint64:
		return fmt.Errorf("%s: %q is not a whole number%s", origin, value, exampleSuffix(fl))
	case float64:
		return fmt.Errorf("%s: %q is not a number%s", origin, value, exampleSuffix(fl))
	}
	return fmt.Errorf("%s: %q: %v", origin, value, err)
}

func durationExample(fl *flag.Flag) string {
	ex := example(fl)
	if ex == "" || ex == "0s" {
		return "30s"
	}
	return shortDuration(ex)
}

// shortDuration writes a time.Duration's text as a person would: 1h0m0s
// as 1h, 2m0s as 2m.
func shortDuration(d string) string {
	for _, zero := range []string{"0s", "0m"} {
		if s := strings.TrimSuffix(d, zero); s != d && s != "" && (strings.HasSuffix(s, "m") || strings.HasSuffix(s, "h")) {
			d = s
		}
	}
	return d
}

func exampleSuffix(fl *flag.Flag) string {
	if ex := example(fl); ex != "" {
		return ", e.g. " + ex
	}
	return ""
}

// example is a value fl takes: its default, unless that is empty.
func example(fl *flag.Flag) string {
	if isZeroDefault(fl.DefValue) && fl.DefValue != "0" {
		return ""
	}
	return fl.DefValue
}

// flagAliases are the names people reach for out of habit from other
// servers, and the flag they mean ("--port 9000" → "--addr").
var flagAliases = map[string]string{
	"port": "addr", "listen": "addr", "listen-addr": "addr", "bind": "addr", "host": "addr", "address": "addr",
	"http-addr": "addr", "apikey": "api-key", "key": "api-key", "secret": "jwt-secret", "jwt-key": "jwt-secret",
	"redis": "redis-url", "redis-addr": "redis-url", "nats": "nats-url", "jwks": "jwks-url",
	"origins": "allowed-origins", "origin": "allowed-origins", "cert": "tls-cert", "key-file": "tls-key",
	"debug": "log-level debug", "verbose": "log-level debug", "v": "log-level debug", "level": "log-level",
	"format": "log-format", "insecure": "insecure-no-auth", "no-auth": "insecure-no-auth",
	"config-file": "config", "c": "config", "node": "node-id", "name": "node-id",
}

// suggestFlag returns "--name" of the flag of fs that typed most likely
// meant, or "": a known alias, else the closest name within two edits
// (as cobra suggests commands), else the only flag typed is a prefix of.
func suggestFlag(fs *flag.FlagSet, typed string) string {
	if s := suggest(typed, flagNames(fs)); s != "" {
		return "--" + s
	}
	return ""
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	return names
}

// suggest picks the name among names that typed most likely meant, or "";
// an alias may carry a value ("--debug" → "log-level debug").
func suggest(typed string, names []string) string {
	typed = strings.ToLower(strings.TrimLeft(typed, "-"))
	if i := strings.IndexByte(typed, '='); i >= 0 {
		typed = typed[:i]
	}
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	if a, ok := flagAliases[typed]; ok && a != typed {
		if name, _, _ := strings.Cut(a, " "); known[name] {
			return a
		}
	}
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(typed, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	for _, alias := range slices.Sorted(maps.Keys(flagAliases)) { // "adress" is one edit from "address"
		a := flagAliases[alias]
		if name, _, _ := strings.Cut(a, " "); known[name] && len(alias) > 3 {
			if d := editDistance(typed, alias); d < bestDist {
				best, bestDist = a, d
			}
		}
	}
	if best != "" && len(typed) > bestDist {
		return best
	}
	var prefixed []string
	for _, n := range names {
		if len(typed) >= 3 && (strings.HasPrefix(n, typed) || strings.HasPrefix(typed, n)) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configFieldFlags names the flag of each herald.Config field whose flag
// is not the field's name in kebab case: CompressionLevel is set by
// --compression-level and needs no entry, SendQueueSize by --send-queue
// does. A field added to Config with a flag named after it needs nothing
// here: New's errors about it already name the flag, the variable or the
// config file key the user typed (TestConfigErrorsNameWhatTheUserTyped).
var configFieldFlags = map[string]string{
	"APIKeys":            "api-key",
	"Admin":              "admin-password", // Admin.Password; Admin.AllowInsecure cannot be wrong
	"DisableCompression": "no-compression",
	"SendQueueSize":      "send-queue",
	"MaxRoomsPerConn":    "max-rooms",
	"UpgradeRatePerIP":   "upgrade-rate",
}

// kebab turns a Go field name into a flag name: MaxConnsPerIP →
// max-conns-per-ip, NodeID → node-id.
func kebab(field string) string {
	r := []rune(field)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// flagForField returns the flag that sets the Config field (its Go name,
// possibly followed by an index or sub-field: "History[0].Size"), or "".
func flagForField(fs *flag.FlagSet, field string) string {
	top := field
	if i := strings.IndexAny(top, "[."); i >= 0 {
		top = top[:i]
	}
	name, ok := configFieldFlags[top]
	if !ok {
		name = kebab(top)
	}
	if fs.Lookup(name) == nil {
		return ""
	}
	return name
}

// configError rewrites New's error about a Config field in the words the
// user typed: "--compression-level: must be 1..9 (got 12)" for a flag,
// "HERALD_SEND_QUEUE: ..." for a variable, "herald.yaml: read-limit: ..."
// for the config file. Other errors are returned as they are.
func (f *envFlags) configError(err error) error {
	var ce *herald.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	name := flagForField(f.fs, ce.Field)
	if name == "" {
		return err
	}
	where := f.origin(name)
	if i := strings.IndexAny(ce.Field, "[."); i >= 0 {
		where += " (" + ce.Field + ")"
	}
	return fmt.Errorf("%s: %s", where, ce.Problem)
}
