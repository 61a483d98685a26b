package client

// State is where a Client is in its lifecycle. WithStateHandler reports
// every change.
type State int

// The states a Client goes through: Connecting once, then Connected and
// Reconnecting in turn, and finally Closed.
const (
	// Connecting: Dial is opening the first connection.
	Connecting State = iota
	// Connected: the welcome arrived and remembered rooms are joined again.
	Connected
	// Reconnecting: the connection is gone; the Client is waiting to dial,
	// or dialing.
	Reconnecting
	// Closed: Close was called, or the server said not to come back (Err
	// tells which). The Client will not connect again.
	Closed
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return "unknown"
}
