package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/id"
)

// Session limits.
const (
	// CookieName is the console's session cookie.
	CookieName = "herald_admin"
	// sessionIdle ends a session unused for this long.
	sessionIdle = 30 * time.Minute
	// sessionMax ends a session this long after sign-in, used or not.
	sessionMax = 12 * time.Hour
	// maxSessions bounds the sessions a node keeps; a sign-in over it
	// ends the session used least recently.
	maxSessions = 64
)

// Sign-in throttling: failures per client address and for the whole node,
// as token buckets (burst, then one more every refill).
const (
	failBurstPerIP  = 5
	failRefillPerIP = 12 * time.Second
	failBurstAll    = 30
	failRefillAll   = 2 * time.Second
	// maxFailBuckets bounds the addresses remembered; past it the oldest
	// idle ones are forgotten.
	maxFailBuckets = 4096
)

// session is one signed-in admin.
type session struct {
	token   string // the cookie's value
	csrf    string // sent back in X-CSRF-Token on every change
	label   string // names the session in logs, not a secret
	created time.Time
	used    time.Time
}

// sessions holds a node's admin sessions (they are not shared between
// nodes: a console talks to the node it was loaded from).
type sessions struct {
	mu sync.Mutex
	m  map[string]*session // by token hash
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return string(h[:])
}

func (ss *sessions) create(now time.Time) *session {
	s := &session{token: id.New(32), csrf: id.New(32), label: "adm-" + id.New(6), created: now, used: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	ss.sweepLocked(now)
	if len(ss.m) >= maxSessions {
		var oldest string
		var at time.Time
		for k, v := range ss.m {
			if oldest == "" || v.used.Before(at) {
				oldest, at = k, v.used
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[hashToken(s.token)] = s
	return s
}

// get returns the live session of token and marks it used.
func (ss *sessions) get(token string, now time.Time) *session {
	if token == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k := hashToken(token)
	s := ss.m[k]
	if s == nil {
		return nil
	}
	if expired(s, now) {
		delete(ss.m, k)
		return nil
	}
	s.used = now
	return s
}

func (ss *sessions) remove(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, hashToken(token))
}

func (ss *sessions) sweepLocked(now time.Time) {
	for k, s := range ss.m {
		if expired(s, now) {
			delete(ss.m, k)
		}
	}
}

func expired(s *session, now time.Time) bool {
	return now.Sub(s.used) > sessionIdle || now.Sub(s.created) > sessionMax
}

// bucket is a token bucket of sign-in failures.
type bucket struct {
	tokens float64
	at     time.Time
}

// take refills b for the time since its last use and takes one token; it
// reports false when none was left.
func (b *bucket) take(now time.Time, burst int, refill time.Duration) bool {
	if b.at.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+float64(now.Sub(b.at))/float64(refill))
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// peek reports whether b has a token left, without taking it.
func (b *bucket) peek(now time.Time, burst int, refill time.Duration) bool {
	if b.at.IsZero() {
		return true
	}
	return min(float64(burst), b.tokens+float64(now.Sub(b.at))/float64(refill)) >= 1
}

// throttle limits failed sign-ins per client address and per node. A
// client whose failures used up its bucket is refused before its
// password is even checked, until the bucket refills.
type throttle struct {
	mu  sync.Mutex
	ips map[string]*bucket
	all bucket
}

// allowed reports whether ip may try to sign in now.
func (t *throttle) allowed(ip string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.all.peek(now, failBurstAll, failRefillAll) {
		return false
	}
	b := t.ips[ip]
	return b == nil || b.peek(now, failBurstPerIP, failRefillPerIP)
}

// failed records a failed sign-in from ip.
func (t *throttle) failed(ip string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.all.take(now, failBurstAll, failRefillAll)
	if t.ips == nil {
		t.ips = map[string]*bucket{}
	}
	b := t.ips[ip]
	if b == nil {
		if len(t.ips) >= maxFailBuckets {
			for k, v := range t.ips {
				if v.peek(now, failBurstPerIP, failRefillPerIP) && now.Sub(v.at) > failRefillPerIP*failBurstPerIP {
					delete(t.ips, k)
				}
			}
			if len(t.ips) >= maxFailBuckets {
				for k := range t.ips { // still full: forget any one
					delete(t.ips, k)
					break
				}
			}
		}
		b = &bucket{}
		t.ips[ip] = b
	}
	b.take(now, failBurstPerIP, failRefillPerIP)
}

// equalSecret compares secrets in constant time.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// remoteIP returns the address part of r.RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// isLoopback reports whether the request came from the machine itself.
func isLoopback(r *http.Request) bool {
	ip := net.ParseIP(remoteIP(r))
	return ip != nil && ip.IsLoopback()
}

// secure reports whether the browser reached the console over TLS (here,
// or at a proxy that says so).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
