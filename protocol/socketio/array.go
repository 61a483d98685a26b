package socketio

import (
	"encoding/json"
	"math"
)

// SplitArray splits data, a JSON array such as the payload of an EVENT
// or ACK that Decode returned, into the raw text of its elements (without
// the whitespace around them), which alias data: nothing is decoded or
// copied. Decode has already checked that such a payload is valid JSON,
// so this only finds where each element ends; ok is false when data is
// not an array (or, given text that is not valid JSON, not one as far as
// this can tell).
func SplitArray(data []byte) (elems []json.RawMessage, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return []json.RawMessage{}, skipSpace(data, i+1) == len(data)
	}
	for i < len(data) {
		end := skipValue(data, i)
		if end == i {
			return nil, false
		}
		elems = append(elems, data[i:end])
		i = skipSpace(data, end)
		switch {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == ']':
			return elems, skipSpace(data, i+1) == len(data)
		default:
			return nil, false
		}
	}
	return nil, false
}

// SplitEvent is SplitArray for an EVENT's payload, [name, args...]: the
// name's raw text apart (see EventName) and the arguments in a slice of
// their own, allocated once at its length (not at all for an event
// without arguments) rather than grown with the name in it. ok is false
// when data is no array or an empty one.
func SplitEvent(data []byte) (name []byte, args []json.RawMessage, ok bool) {
	if n := countElements(data, math.MaxInt32); n > 1 {
		args = make([]json.RawMessage, 0, n-1)
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, nil, false
	}
	for i = skipSpace(data, i+1); i < len(data); {
		end := skipValue(data, i)
		if end == i {
			return nil, nil, false
		}
		if name == nil {
			name = data[i:end]
		} else {
			args = append(args, data[i:end])
		}
		i = skipSpace(data, end)
		switch {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == ']':
			return name, args, skipSpace(data, i+1) == len(data)
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// countElements returns how many elements data, a valid JSON array, has,
// counting no further than max+1: SplitArray's count without its slice.
func countElements(data []byte, max int) int {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return 0
	}
	n := 0
	for i = skipSpace(data, i+1); i < len(data) && data[i] != ']' && n <= max; n++ {
		end := skipValue(data, i)
		if end == i {
			return n
		}
		if i = skipSpace(data, end); i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return n
}

// firstElement returns the raw text of the first element of data, a
// valid JSON array, or nil when it is empty or no array.
func firstElement(data []byte) []byte {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil
	}
	i = skipSpace(data, i+1)
	if i >= len(data) || data[i] == ']' {
		return nil
	}
	return data[i:skipValue(data, i)]
}

// EventName returns the name an event's first element carries: a JSON
// string's value, or a number's text (which the protocol allows).
func EventName(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' {
		if s := raw[1 : len(raw)-1]; !hasEscape(s) {
			return string(s), nil // valid JSON without escapes: the bytes are the value
		}
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return "", invalid("event name: %v", err)
		}
		return name, nil
	}
	return string(raw), nil
}

func hasEscape(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '[', '{':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '[', '{':
				depth++
			case ']', '}':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	// A number, true, false or null: up to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', ']', '}', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// skipString returns the end of the JSON string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}
