package herald

import (
	"math"
	"net/http"
	"sync"

	"github.com/heraldrt/herald/internal/query"
)

// sioPending bounds what the Engine.IO polling sessions that have joined
// no namespace yet hold, all together: each keeps its handshake request
// for the admission of its CONNECT, and, unlike a WebSocket, no file
// descriptor, so that without this bound a client with no credential
// could open them as fast as it can send requests and make the node hold
// ConnectTimeout's worth of them. A session is charged at its handshake
// (Server.sioAllow, which refuses it when the charge does not fit) and
// gives the charge back when its first CONNECT is admitted or when it
// closes, whichever comes first.
//
// Each client IP may hold a share of the bound (perIP), so that one
// address cannot fill it and refuse every other client's handshakes.
//
// WebSocket handshakes are not charged: they hold a descriptor, bounded
// as every other socket is.
type sioPending struct {
	limit, perIP int64
	mu           sync.Mutex
	used         int64
	byIP         map[string]int64 // the IPs holding a charge
	// charged holds the sessions' charges from OnConnection until they
	// are given back: the sessions that have joined no namespace, so few
	// at any time (a sioClient has no room for it).
	charged map[*sioClient]sioCharge
}

// sioCharge is what a pending session was charged, and to which IP.
type sioCharge struct {
	n  int64
	ip string
}

// sioPendingOverhead is what a pending polling session holds besides its
// request's header and URL bytes: the Engine.IO session, the Socket.IO
// client, the request's copy and maps (about 1.7 KB measured, rounded
// up).
const sioPendingOverhead = 2 << 10

// sioPendingCharge returns what a polling handshake's session is charged:
// its request's field names and values, URL and remote address, and the
// session's own overhead.
func sioPendingCharge(r *http.Request) int64 {
	n := int64(sioPendingOverhead + len(r.URL.Path) + len(r.URL.RawQuery) + len(r.RemoteAddr) + len(r.Host))
	for k, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return min(n, math.MaxInt32)
}

// isPollingHandshake reports whether r, a handshake, opens a session on
// long-polling.
func isPollingHandshake(r *http.Request) bool {
	return query.Get(r.URL.RawQuery, "transport") == "polling"
}

// take charges n bytes to ip unless they do not fit under the node's
// limit or ip's share (a first session always fits an empty budget). It
// returns the limit that refused it, or "".
func (p *sioPending) take(ip string, n int64) limitName {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used > 0 && p.used+n > p.limit {
		return limitSocketIOPendingBytes
	}
	held := p.byIP[ip]
	if held > 0 && held+n > p.perIP {
		return limitSocketIOPendingBytesPerIP
	}
	if p.byIP == nil {
		p.byIP = make(map[string]int64)
	}
	p.used += n
	p.byIP[ip] = held + n
	return ""
}

// bind records that cl holds the charge n its handshake took for ip.
func (p *sioPending) bind(cl *sioClient, ip string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.charged == nil {
		p.charged = make(map[*sioClient]sioCharge)
	}
	p.charged[cl] = sioCharge{n: n, ip: ip}
}

// release gives back cl's charge, if it still holds one.
func (p *sioPending) release(cl *sioClient) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.charged[cl]
	if !ok {
		return
	}
	delete(p.charged, cl)
	p.used -= c.n
	if p.byIP[c.ip] -= c.n; p.byIP[c.ip] <= 0 {
		delete(p.byIP, c.ip)
	}
}

// bytes returns what the pending sessions are charged.
func (p *sioPending) bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
