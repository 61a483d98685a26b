package floor

// Config configures Run.
type Config struct {
	// Addr is the IPv4 host:port to listen on.
	Addr string
	// JWTSecret, when set, makes every upgrade carry an HS256 JWT signed
	// with it in "Authorization: Bearer" (the churn scenario's handshake
	// floor): a request without a valid token is answered 401 and closed,
	// and the welcome names the token's subject. Empty: anonymous clients.
	JWTSecret []byte
}
