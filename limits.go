package herald

import (
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter enforces the per-user and per-IP connection caps and the per-IP
// upgrade rate. Counts are per node (cluster-wide caps come with a shared
// store). Its maps are guarded by mu; idle rate buckets are swept by the
// Server's housekeeping goroutine.
type limiter struct {
	cfg     *Config
	mu      sync.Mutex
	perUser map[string]int
	perIP   map[string]int
	rates   map[string]*ipRate
}

type ipRate struct {
	lim      *rate.Limiter
	lastSeen time.Time
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
func (l *limiter) acquire(user, ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.cfg.MaxConnsPerUser; n > 0 && l.perUser[user] >= n {
		return "conns_per_user"
	}
	if n := l.cfg.MaxConnsPerIP; n > 0 && l.perIP[ip] >= n {
		return "conns_per_ip"
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

// clientIP is the address limits apply to: the TCP peer, or the first
// X-Forwarded-For hop when the server sits behind a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
