package engineio

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Handshake is the JSON body of the open packet a server sends first. It
// has exactly the keys of the spec; durations are in milliseconds and
// MaxPayload is in bytes.
type Handshake struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func (h Handshake) validate() error {
	switch {
	case h.SID == "":
		return invalid("handshake: empty sid")
	case h.PingInterval <= 0 || h.PingTimeout <= 0 || h.MaxPayload <= 0:
		return invalid("handshake: pingInterval, pingTimeout and maxPayload must be positive")
	}
	return nil
}

// OpenPacket returns the open packet carrying h. Upgrades is always written
// as a JSON array (empty when there is nothing to upgrade to).
func OpenPacket(h Handshake) (Packet, error) {
	if err := h.validate(); err != nil {
		return Packet{}, err
	}
	if h.Upgrades == nil {
		h.Upgrades = []string{}
	}
	data, err := json.Marshal(h)
	if err != nil {
		return Packet{}, fmt.Errorf("engineio: handshake: %w", err)
	}
	return Packet{Type: Open, Data: data}, nil
}

// ParseHandshake decodes the data of an open packet. It is strict: unknown
// keys, a missing key, wrong JSON types and trailing data are errors.
func ParseHandshake(data []byte) (Handshake, error) {
	var seen map[string]json.RawMessage
	if err := json.Unmarshal(data, &seen); err != nil {
		return Handshake{}, invalid("handshake: %v", err)
	}
	for _, k := range []string{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"} {
		if _, ok := seen[k]; !ok {
			return Handshake{}, invalid("handshake: missing %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var h Handshake
	if err := dec.Decode(&h); err != nil {
		return Handshake{}, invalid("handshake: %v", err)
	}
	if h.Upgrades == nil {
		return Handshake{}, invalid("handshake: upgrades must be an array")
	}
	if err := h.validate(); err != nil {
		return Handshake{}, err
	}
	return h, nil
}
