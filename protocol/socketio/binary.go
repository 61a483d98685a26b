package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

const placeholderKey = "_placeholder"

// Placeholder returns the JSON that stands for attachment num in a payload:
// {"_placeholder":true,"num":num}.
func Placeholder(num int) json.RawMessage {
	return fmt.Appendf(nil, `{"%s":true,"num":%d}`, placeholderKey, num)
}

// placeholderNum reports whether m is a placeholder object and, if so, the
// attachment number it refers to. An object whose "_placeholder" is true but
// that is not exactly {"_placeholder":true,"num":<integer>} is an error.
func placeholderNum(m map[string]any) (num int, ok bool, err error) {
	if v, has := m[placeholderKey]; !has || v != true {
		return 0, false, nil
	}
	n, isNum := m["num"].(json.Number)
	if len(m) != 2 || !isNum {
		return 0, true, invalid("malformed placeholder: want exactly {\"_placeholder\":true,\"num\":N}")
	}
	i, perr := n.Int64()
	if perr != nil || i < 0 || i > maxInt32 {
		return 0, true, invalid("placeholder num %s is not a small non-negative integer", n)
	}
	return int(i), true, nil
}

const maxInt32 = 1<<31 - 1

func decodeAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalid("payload: %v", err)
	}
	if dec.More() {
		return nil, invalid("payload: trailing data")
	}
	return v, nil
}

// checkPlaceholders checks that the payload of a binary packet refers to
// each of its n attachments exactly once, and to nothing else.
func checkPlaceholders(data []byte, n int) error {
	v, err := decodeAny(data)
	if err != nil {
		return err
	}
	seen := make([]bool, n)
	count := 0
	if err := walk(v, func(m map[string]any) (any, bool, error) {
		num, ok, err := placeholderNum(m)
		if err != nil || !ok {
			return nil, false, err
		}
		if num >= n {
			return nil, false, invalid("placeholder num %d, packet has %d attachments", num, n)
		}
		if seen[num] {
			return nil, false, invalid("placeholder num %d appears twice", num)
		}
		seen[num] = true
		count++
		return nil, true, nil
	}); err != nil {
		return err
	}
	if count != n {
		return invalid("%d attachments announced, %d placeholders in the payload", n, count)
	}
	return nil
}

// walk visits every object in v depth first. visit may replace an object
// (replace true) by returning its substitute; walk returns the rebuilt value.
func walk(v any, visit func(map[string]any) (any, bool, error)) error {
	_, err := rebuild(v, visit)
	return err
}

func rebuild(v any, visit func(map[string]any) (any, bool, error)) (any, error) {
	switch x := v.(type) {
	case []any:
		for i := range x {
			r, err := rebuild(x[i], visit)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
	case map[string]any:
		sub, replace, err := visit(x)
		if err != nil {
			return nil, err
		}
		if replace {
			return sub, nil
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			r, err := rebuild(x[k], visit)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	}
	return v, nil
}

// Resolve decodes a payload and puts each attachment where its placeholder
// is, as a []byte. Objects are map[string]any, arrays []any and numbers
// json.Number. Every attachment must be referred to exactly once.
func Resolve(data json.RawMessage, attachments [][]byte) (any, error) {
	if err := checkPlaceholders(data, len(attachments)); err != nil {
		return nil, err
	}
	v, err := decodeAny(data)
	if err != nil {
		return nil, err
	}
	return rebuild(v, func(m map[string]any) (any, bool, error) {
		num, ok, err := placeholderNum(m)
		if err != nil || !ok {
			return nil, false, err
		}
		return attachments[num], true, nil
	})
}

// Deconstruct is the inverse of Resolve: it encodes v as JSON with every
// []byte found inside []any and map[string]any values replaced by a
// placeholder, and returns those byte slices as the attachments, in order.
// Other values are encoded by encoding/json as they are (a []byte inside a
// struct becomes a base64 string there).
func Deconstruct(v any) (json.RawMessage, [][]byte, error) {
	var attachments [][]byte
	var bad error
	var strip func(any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case []byte:
			attachments = append(attachments, x)
			return Placeholder(len(attachments) - 1)
		case []any:
			out := make([]any, len(x))
			for i := range x {
				out[i] = strip(x[i])
			}
			return out
		case map[string]any:
			if x[placeholderKey] == true && bad == nil {
				bad = invalid("payload holds an object with \"_placeholder\": true")
			}
			out := make(map[string]any, len(x))
			for _, k := range slices.Sorted(maps.Keys(x)) {
				out[k] = strip(x[k])
			}
			return out
		}
		return v
	}
	stripped := strip(v)
	if bad != nil {
		return nil, nil, bad
	}
	data, err := json.Marshal(stripped)
	if err != nil {
		return nil, nil, fmt.Errorf("socketio: payload: %w", err)
	}
	return data, attachments, nil
}

// Reconstructor collects the binary attachments that follow a BINARY_EVENT
// or BINARY_ACK packet, bounding their total size.
type Reconstructor struct {
	packet      Packet
	attachments [][]byte
	size, limit int
}

// NewReconstructor starts collecting the attachments of p, a decoded binary
// packet; their total size is bounded by l.MaxPacketBytes.
func NewReconstructor(p Packet, l Limits) (*Reconstructor, error) {
	l = l.withDefaults()
	if !p.Type.IsBinary() {
		return nil, invalid("%s packet has no attachments", p.Type)
	}
	if p.Attachments < 0 || p.Attachments > l.MaxAttachments {
		return nil, tooLarge("%d attachments, limit %d", p.Attachments, l.MaxAttachments)
	}
	return &Reconstructor{packet: p, attachments: make([][]byte, 0, p.Attachments), limit: l.MaxPacketBytes}, nil
}

// Done reports whether every attachment has arrived.
func (r *Reconstructor) Done() bool { return len(r.attachments) == r.packet.Attachments }

// Add takes the next binary message, copying it, and reports whether the
// packet is now complete. Adding to a complete packet, or going over the
// size limit, is an error.
func (r *Reconstructor) Add(b []byte) (done bool, err error) {
	if r.Done() {
		return true, invalid("unexpected binary message: all %d attachments received", r.packet.Attachments)
	}
	if len(b) > r.limit-r.size {
		return false, tooLarge("attachments over %d bytes", r.limit)
	}
	r.size += len(b)
	r.attachments = append(r.attachments, bytes.Clone(b))
	return r.Done(), nil
}

// Packet returns the packet and its attachments, in placeholder order.
// It is an error before Done.
func (r *Reconstructor) Packet() (Packet, [][]byte, error) {
	if !r.Done() {
		return Packet{}, nil, invalid("%d of %d attachments received", len(r.attachments), r.packet.Attachments)
	}
	return r.packet, r.attachments, nil
}
