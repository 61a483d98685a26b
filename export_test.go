package herald

// AwaitingAcks returns how many connections the redelivery goroutine
// visits: those that may hold unacknowledged messages.
func (s *Server) AwaitingAcks() int {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.awaiting)
}

// InjectGap makes the server act as if its broker reported a gap in rooms
// (broker.Handler.HandleGap).
func (s *Server) InjectGap(rooms []string) { s.hub.HandleGap(rooms) }
