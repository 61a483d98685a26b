package floor

// Config configures Run.
type Config struct {
	// Addr is the IPv4 host:port to listen on; port 0 lets the kernel
	// pick a free one, which Listening is told.
	Addr string
	// Listening, when set, is called with the address bound once the
	// server listens, before it serves the first connection: the way to
	// learn the port of Addr with port 0 (a port picked free by the
	// caller instead could be taken by another process first).
	Listening func(addr string)
	// JWTSecret, when set, makes every upgrade carry an HS256 JWT signed
	// with it in "Authorization: Bearer" (the churn scenario's handshake
	// floor): a request without a valid token is answered 401 and closed,
	// and the welcome names the token's subject. Empty: anonymous clients.
	JWTSecret []byte
}
