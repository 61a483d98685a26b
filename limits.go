package herald

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// limitName labels herald_limit_rejections_total{limit}: the bound that
// refused an upgrade, a message or a connection. Every label is one of
// the constants below (and a row of docs/security.md's table of bounds),
// counted through Server.countLimit, so that a dashboard's query and the
// docs name the same bound the code does.
type limitName string

// The bounds that count in herald_limit_rejections_total.
const (
	limitUpgradeRate         limitName = "upgrade_rate"
	limitUpgradesInFlight    limitName = "upgrades_in_flight"
	limitConnsPerUser        limitName = "conns_per_user"
	limitConnsPerIP          limitName = "conns_per_ip"
	limitMessageRate         limitName = "message_rate"
	limitPendingAcks         limitName = "pending_acks"
	limitPendingAckBytes     limitName = "pending_ack_bytes"
	limitNodePendingAckBytes limitName = "node_pending_ack_bytes"
	limitNodePublishBytes    limitName = "node_publish_bytes"
	limitNodeReplayBytes     limitName = "node_replay_bytes"
	limitNodeReadingBytes    limitName = "node_reading_bytes"
	// Connections and sessions closed by MaxNodeQueuedBytes: the biggest
	// holder whose client is not reading, or the one whose message did
	// not fit.
	limitNodeQueuedBytes limitName = "node_queued_bytes"
	// Connections whose context takeover state did not fit in
	// MaxNodeTakeoverBytes (compressed message by message, or closed).
	limitNodeTakeoverBytes limitName = "node_takeover_bytes"
	// Sessions the in-memory session store forgot to stay within its
	// bound (memory.Store.LimitSessions), most of them ended connections'.
	limitNodeSessionBytes limitName = "node_session_bytes"
	// Rooms (and messages of one room alone over it) the in-memory engine
	// forgot to keep its history within Config.MaxNodeHistoryBytes.
	limitNodeHistoryBytes limitName = "node_history_bytes"
	// Engine.IO polling sessions in no namespace (SocketIOConfig.MaxPendingBytes),
	// and those of one client IP (MaxPendingBytesPerIP).
	limitSocketIOPendingBytes      limitName = "socketio_pending_bytes"
	limitSocketIOPendingBytesPerIP limitName = "socketio_pending_bytes_per_ip"
	// Engine.IO sessions on long-polling (SocketIOConfig.MaxPollingSessions).
	limitSocketIOPollingSessions limitName = "socketio_polling_sessions"
	// Refused CONNECTs on one Socket.IO connection (socketio.Config.MaxConnectRefusals).
	limitSocketIOConnectRefusals limitName = "socketio_connect_refusals"
)

// limitNames lists every limitName (TestLimitNamesDocumented).
var limitNames = []limitName{
	limitUpgradeRate, limitUpgradesInFlight, limitConnsPerUser, limitConnsPerIP, limitMessageRate,
	limitPendingAcks, limitPendingAckBytes, limitNodePendingAckBytes, limitNodePublishBytes, limitNodeReplayBytes,
	limitNodeReadingBytes, limitNodeQueuedBytes, limitNodeTakeoverBytes, limitNodeSessionBytes, limitNodeHistoryBytes,
	limitSocketIOPendingBytes, limitSocketIOPendingBytesPerIP, limitSocketIOPollingSessions, limitSocketIOConnectRefusals,
}

// countLimit counts a refusal by the bound l.
func (s *Server) countLimit(l limitName) {
	s.metrics.LimitRejections.WithLabelValues(string(l)).Inc()
}

// limiter enforces the per-user and per-IP connection caps and the per-IP
// upgrade rate. Counts are per node (cluster-wide caps come with a shared
// store). Its maps are guarded by mu; idle rate buckets are swept by the
// Server's housekeeping goroutine.
type limiter struct {
	cfg *Config
	// inFlight counts the connections being admitted (see
	// Config.MaxUpgradesInFlight).
	inFlight atomic.Int64
	mu       sync.Mutex
	perUser  map[string]int
	perIP    map[string]int
	rates    map[string]*ipRate
}

type ipRate struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// enterUpgrade takes an admission slot; false when MaxUpgradesInFlight
// are taken. A true return is matched by one leaveUpgrade.
func (l *limiter) enterUpgrade() bool {
	if n := l.cfg.MaxUpgradesInFlight; n > 0 && l.inFlight.Add(1) > int64(n) {
		l.inFlight.Add(-1)
		return false
	}
	return true
}

// leaveUpgrade gives back the slot enterUpgrade took.
func (l *limiter) leaveUpgrade() {
	if l.cfg.MaxUpgradesInFlight > 0 {
		l.inFlight.Add(-1)
	}
}

func newLimiter(cfg *Config) *limiter {
	return &limiter{cfg: cfg, perUser: map[string]int{}, perIP: map[string]int{}, rates: map[string]*ipRate{}}
}

// allowUpgrade spends one upgrade token of ip; false means over the rate.
func (l *limiter) allowUpgrade(ip string, now time.Time) bool {
	if l.cfg.UpgradeRatePerIP <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rates[ip]
	if r == nil {
		burst := l.cfg.UpgradeBurstPerIP
		if burst <= 0 {
			burst = max(1, int(2*l.cfg.UpgradeRatePerIP))
		}
		r = &ipRate{lim: rate.NewLimiter(rate.Limit(l.cfg.UpgradeRatePerIP), burst)}
		l.rates[ip] = r
	}
	r.lastSeen = now
	return r.lim.AllowN(now, 1)
}

// acquire counts a new connection of user from ip. It returns the name of
// the limit that refused it, or "" when admitted (then release must follow).
func (l *limiter) acquire(user, ip string) limitName {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.cfg.MaxConnsPerUser; n > 0 && l.perUser[user] >= n {
		return limitConnsPerUser
	}
	if n := l.cfg.MaxConnsPerIP; n > 0 && l.perIP[ip] >= n {
		return limitConnsPerIP
	}
	// Only the capped counts are kept: with one user per connection, an
	// uncapped per-user count would cost a map entry per connection.
	if l.cfg.MaxConnsPerUser > 0 {
		l.perUser[user]++
	}
	if l.cfg.MaxConnsPerIP > 0 {
		l.perIP[ip]++
	}
	return ""
}

func (l *limiter) release(user, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.MaxConnsPerUser > 0 {
		if l.perUser[user]--; l.perUser[user] <= 0 {
			delete(l.perUser, user)
		}
	}
	if l.cfg.MaxConnsPerIP > 0 {
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
	}
}

// sweep forgets rate buckets idle for longer than idle.
func (l *limiter) sweep(now time.Time, idle time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, r := range l.rates {
		if now.Sub(r.lastSeen) > idle {
			delete(l.rates, ip)
		}
	}
}

// ClientIP returns the address per-IP limits count r against: the TCP
// peer, or the client's address as configured trusted proxies report it.
// An embedding server can use it for its own per-IP limits (as
// the binary does for its cap on HTTP connections per IP).
func (s *Server) ClientIP(r *http.Request) string { return s.clientIP(r) }

// parseTrustedProxies parses Config.TrustedProxies: CIDR prefixes or
// single addresses.
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trustedProxy reports whether a is one of Config.TrustedProxies.
func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address per-IP limits apply to: the TCP peer, unless the
// peer is a trusted proxy (Config.TrustedProxies, or any peer with
// Config.TrustForwardedFor). Then X-Forwarded-For is read from the right,
// where each proxy appended the address it saw: the first address that is
// not a trusted proxy is the client. Whatever lies left of it was written
// by the client (or proxies it chose) and is never looked at, so a forged
// header cannot change the address counted. When every address is a
// trusted proxy, the leftmost counts; an entry that is not an address
// stops the walk at the last address read.
func (s *Server) clientIP(r *http.Request) string {
	peer, ok := addrOf(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !s.cfg.TrustForwardedFor && !s.trustedProxy(peer) {
		return addrString(peer, r.RemoteAddr)
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			hop := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			if hop = strings.TrimSpace(hop); hop == "" {
				continue
			}
			a, ok := addrOf(hop)
			if !ok {
				return client.String()
			}
			client = a
			if !s.trustedProxy(a) {
				return a.String()
			}
		}
	}
	return client.String()
}

// addrOf parses an address as RemoteAddr or an X-Forwarded-For entry
// holds it: "ip", "ip:port" or "[ipv6]:port"; IPv4-mapped IPv6 addresses
// become IPv4.
func addrOf(s string) (netip.Addr, bool) {
	// "ip:port" first, as RemoteAddr has it: a failed parse costs an
	// error's allocation. No string parses both ways.
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.IndexByte(s[:i], ':') < 0 || strings.HasPrefix(s, "[") {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone(""), true
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// addrString returns a.String(), which addrOf parsed from s: for an IPv4
// "ip:port" that is s up to its port, without an allocation (netip takes
// IPv4 only as the four decimal fields String writes).
func addrString(a netip.Addr, s string) string {
	if i := strings.LastIndexByte(s, ':'); i > 0 && a.Is4() && strings.IndexByte(s[:i], ':') < 0 {
		if host := s[:i]; len(host) <= len("255.255.255.255") && host[0] != '[' {
			return host
		}
	}
	return a.String()
}

// tokenBucket holds up to burst tokens, refilled at rate per second: the
// per-connection cap on client frames. It is 16 bytes inside conn, where
// a rate.Limiter would cost a pointer and 104 bytes more for every
// connection that has sent a frame. Not safe for concurrent use.
type tokenBucket struct {
	tokens float64
	at     int64 // monotonic time of tokens (see monoNow); 0: full, never used
}

// take spends a token at now if there is one.
func (b *tokenBucket) take(now int64, rate float64, burst int) bool {
	if b.at == 0 {
		b.tokens = float64(burst)
	} else if elapsed := now - b.at; elapsed > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(elapsed)*rate/1e9)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// processStart anchors monoNow.
var processStart = time.Now()

// monoNow is the monotonic clock in nanoseconds since the process
// started, never 0.
func monoNow() int64 { return int64(time.Since(processStart)) + 1 }

// messageBurst is the message bucket's size: MessageBurst, or twice the
// rate.
func messageBurst(cfg *Config) int {
	if cfg.MessageBurst > 0 {
		return cfg.MessageBurst
	}
	return max(1, int(2*cfg.MessageRate))
}

// allowMessage reports whether a client frame may be handled now, and
// whether the client has kept sending through a whole burst's worth of
// refusals (abuse). Read loop only.
func (c *conn) allowMessage() (ok, abusive bool) {
	cfg := &c.s.cfg
	if cfg.MessageRate <= 0 {
		return true, false
	}
	burst := messageBurst(cfg)
	if c.msgBucket.take(monoNow(), cfg.MessageRate, burst) {
		c.limited = 0
		return true, false
	}
	if c.limited < math.MaxUint32 {
		c.limited++
	}
	return false, c.limited > uint32(min(burst, math.MaxUint32))
}

// ip returns the address the connection counts against MaxConnsPerIP,
// or "" when that is not capped.
func (c *conn) ip() string {
	if c.extra == nil {
		return ""
	}
	return c.extra.ip
}
