package herald

// AwaitingAcks returns how many connections the redelivery goroutine
// visits: those that may hold unacknowledged messages.
func (s *Server) AwaitingAcks() int {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.awaiting)
}
