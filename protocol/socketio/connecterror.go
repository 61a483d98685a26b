package socketio

import "encoding/json"

// InvalidNamespace is the message of the CONNECT_ERROR a server sends for a
// CONNECT to a namespace it does not serve.
const InvalidNamespace = "Invalid namespace"

// ConnectErrorPacket returns the CONNECT_ERROR packet refusing a CONNECT to
// namespace with message: 4<namespace>,{"message":<message>}. It returns an
// error only for a namespace Validate refuses.
func ConnectErrorPacket(namespace, message string) (Packet, error) {
	data, err := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	if err != nil {
		return Packet{}, err
	}
	p := Packet{Type: ConnectError, Namespace: namespace, Data: data}
	if err := p.Validate(noLimits); err != nil {
		return Packet{}, err
	}
	return p, nil
}
