package herald

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// MaxHistorySize bounds HistoryRule.Size: a room's history is held by the
// engine (in memory for the memory engine), so it must stay bounded.
const MaxHistorySize = 1_000_000

// HistoryRule gives the rooms whose names match Pattern a history: the
// engine keeps their last Size messages, each for TTL, with a per-room
// offset, so that missed messages can be given back (see broker.Historian).
type HistoryRule struct {
	// Pattern matches room names: "*" matches any run of characters
	// (including none, and including ":" and "/"); every other character
	// matches itself. "chat:*" matches every room starting with "chat:".
	Pattern string
	// Size is how many messages a room keeps, at most 1,000,000; 0 makes
	// the matching rooms keep none (to exclude them from a later rule).
	Size int
	// TTL is how long a message is kept; 0: as long as Size allows.
	TTL time.Duration
}

// historyFunc returns the broker.HistoryFunc of rules: the first rule
// whose pattern matches a room decides; no match means no history.
// It is asked on every publish, so patterns are split once, here.
func historyFunc(rules []HistoryRule) broker.HistoryFunc {
	type compiled struct {
		parts  []string
		policy broker.HistoryPolicy
	}
	cs := make([]compiled, len(rules))
	for i, r := range rules {
		cs[i] = compiled{strings.Split(r.Pattern, "*"), broker.HistoryPolicy{Size: r.Size, TTL: r.TTL}}
	}
	return func(room string) broker.HistoryPolicy {
		if protocol.IsUserRoom(room) {
			return broker.HistoryPolicy{}
		}
		for _, c := range cs {
			if matchParts(c.parts, room) {
				return c.policy
			}
		}
		return broker.HistoryPolicy{}
	}
}

// matchPattern reports whether name matches pattern, where "*" matches
// any run of characters.
func matchPattern(pattern, name string) bool {
	return matchParts(strings.Split(pattern, "*"), name)
}

// matchParts is matchPattern with the pattern split at its stars.
func matchParts(parts []string, name string) bool {
	if len(parts) == 1 {
		return parts[0] == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return strings.HasSuffix(name, last)
}

// ParseHistoryRules parses the `herald serve --history` syntax: a
// comma-separated list of PATTERN=SIZE or PATTERN=SIZE/TTL, for example
// "chat:*=100/10m,orders:*=1000/1h". TTL is a Go duration. Rules keep
// their order: the first match decides.
func ParseHistoryRules(s string) ([]HistoryRule, error) {
	var rules []HistoryRule
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pattern, spec, ok := strings.Cut(item, "=")
		if !ok || pattern == "" {
			return nil, fmt.Errorf("history rule %q: want PATTERN=SIZE or PATTERN=SIZE/TTL", item)
		}
		sizeText, ttlText, hasTTL := strings.Cut(spec, "/")
		size, err := strconv.Atoi(sizeText)
		if err != nil {
			return nil, fmt.Errorf("history rule %q: size %q is not a number", item, sizeText)
		}
		r := HistoryRule{Pattern: pattern, Size: size}
		if hasTTL {
			if r.TTL, err = time.ParseDuration(ttlText); err != nil {
				return nil, fmt.Errorf("history rule %q: TTL %q is not a duration (like 10m or 1h)", item, ttlText)
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// validateHistory checks c.History; bad is validate's error constructor.
func (c *Config) validateHistory(bad func(field, format string, args ...any) error) error {
	for i, r := range c.History {
		field := fmt.Sprintf("History[%d]", i)
		switch {
		case r.Pattern == "":
			return bad(field+".Pattern", "must not be empty")
		case r.Size < 0 || r.Size > MaxHistorySize:
			return bad(field+".Size", "must be 0..%d (got %d)", MaxHistorySize, r.Size)
		case r.TTL < 0:
			return bad(field+".TTL", "must not be negative (got %s)", r.TTL)
		}
	}
	return nil
}
