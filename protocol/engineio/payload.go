package engineio

import (
	"bytes"
	"fmt"
)

// DefaultMaxPayload is the maxPayload the reference server announces: the
// largest polling request body, in bytes, a server accepts.
const DefaultMaxPayload = 1_000_000

// DecodePayload decodes the body of an HTTP long-polling request or response:
// one or more text-form packets separated by RecordSeparator. A body longer
// than maxPayload bytes (when maxPayload > 0) is refused with an error
// wrapping ErrTooLarge before anything is decoded; an empty body or an empty
// record is invalid.
func DecodePayload(body []byte, maxPayload int) ([]Packet, error) {
	if maxPayload > 0 && len(body) > maxPayload {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), maxPayload)
	}
	if len(body) == 0 {
		return nil, invalid("empty payload")
	}
	packets := make([]Packet, 0, bytes.Count(body, []byte{RecordSeparator})+1)
	for i := 0; ; i++ {
		record, rest, more := bytes.Cut(body, []byte{RecordSeparator})
		p, err := DecodeText(record)
		if err != nil {
			return nil, fmt.Errorf("payload record %d: %w", i, err)
		}
		packets = append(packets, p)
		if !more {
			return packets, nil
		}
		body = rest
	}
}

// EncodePayload encodes packets as one polling payload: their text forms
// joined by RecordSeparator, binary messages as 'b'+base64. A text packet
// whose data contains the separator cannot be framed and is an error, as is
// an empty list.
func EncodePayload(packets []Packet) ([]byte, error) {
	if len(packets) == 0 {
		return nil, invalid("empty payload")
	}
	var out []byte
	for i, p := range packets {
		if !p.Binary && bytes.IndexByte(p.Data, RecordSeparator) >= 0 {
			return nil, invalid("packet %d: text data contains the record separator", i)
		}
		if i > 0 {
			out = append(out, RecordSeparator)
		}
		var err error
		if out, err = AppendText(out, p); err != nil {
			return nil, fmt.Errorf("packet %d: %w", i, err)
		}
	}
	return out, nil
}
