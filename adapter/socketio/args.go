package socketio

import (
	"encoding/json"
	"fmt"
	"strconv"

	sio "github.com/heraldrt/herald/protocol/socketio"
)

// Args are the arguments of an event or an ack as the wire carries them:
// one JSON value each, in which the placeholders
// {"_placeholder":true,"num":N} stand for the binary attachments Binary[N].
// Keeping them in this form lets an event be forwarded or echoed without
// decoding it.
type Args struct {
	JSON   []json.RawMessage
	Binary [][]byte
}

// Values returns the Args of Go values: each is encoded with encoding/json,
// except that every []byte found directly or inside []any and
// map[string]any values becomes a binary attachment (see
// protocol/socketio.Deconstruct).
func Values(values ...any) (Args, error) {
	data, bin, err := sio.Deconstruct(values)
	if err != nil {
		return Args{}, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Args{}, fmt.Errorf("socketio: args: %w", err)
	}
	return Args{JSON: raw, Binary: bin}, nil
}

// MustValues is Values for arguments known to encode, such as literals; it
// panics on an error.
func MustValues(values ...any) Args {
	a, err := Values(values...)
	if err != nil {
		panic(err)
	}
	return a
}

// Resolve decodes the arguments, with each attachment put where its
// placeholder is, as a []byte: objects become map[string]any, arrays []any
// and numbers json.Number.
func (a Args) Resolve() ([]any, error) {
	v, err := sio.Resolve(a.array(nil), a.Binary)
	if err != nil {
		return nil, err
	}
	out, _ := v.([]any)
	return out, nil
}

// array returns the JSON array [head..., args...].
func (a Args) array(head []byte) json.RawMessage {
	n := 2 + len(head)
	for _, v := range a.JSON {
		n += len(v) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	b = append(b, head...)
	for i, v := range a.JSON {
		if i > 0 || len(head) > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, ']')
}

// splitEvent splits an EVENT payload, which Decode validated, into its
// name and arguments, without decoding the arguments (they alias data).
// A numeric name, which the protocol allows, is returned as its JSON
// text.
func splitEvent(data json.RawMessage) (string, Args, error) {
	rawName, args, ok := sio.SplitEvent(data)
	if !ok {
		return "", Args{}, fmt.Errorf("%w: event payload is not a non-empty array", sio.ErrInvalid)
	}
	name, err := sio.EventName(rawName)
	if err != nil {
		return "", Args{}, err
	}
	return name, Args{JSON: args}, nil
}

// splitAck returns the arguments of an ACK payload, which Decode
// validated (they alias data).
func splitAck(data json.RawMessage) (Args, error) {
	raw, ok := sio.SplitArray(data)
	if !ok {
		return Args{}, fmt.Errorf("%w: ack payload is not an array", sio.ErrInvalid)
	}
	return Args{JSON: raw}, nil
}

// eventPayload is the payload of an EVENT: [name, args..., offset].
func eventPayload(name string, args Args, offset string) json.RawMessage {
	head := strconv.AppendQuote(nil, name)
	if !jsonSafe(name) {
		head, _ = json.Marshal(name)
	}
	if offset == "" {
		return args.array(head)
	}
	off, _ := json.Marshal(offset)
	return Args{JSON: append(args.JSON[:len(args.JSON):len(args.JSON)], off)}.array(head)
}

// jsonSafe reports whether strconv.Quote of s is also its JSON encoding:
// printable ASCII without the characters encoding/json escapes.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
