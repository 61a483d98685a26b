package admin

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/internal/id"
)

// Prefix is where the console is served; the JSON API is under Prefix+"api/".
const Prefix = "/admin/"

// MinPasswordLen is the shortest admin password accepted.
const MinPasswordLen = 12

// Config configures the console. The zero value works: a password is
// generated at start and logged once.
type Config struct {
	// Password is the admin credential, for the sign-in form and for
	// scripts (Authorization: Bearer <password>). It is not the server API
	// key. Empty: one is generated at start and logged once.
	Password string
	// AllowInsecure serves the console over plain HTTP to non-loopback
	// clients, e.g. behind a proxy that terminates TLS. Default: such
	// requests are refused with 403, since the password and the session
	// cookie would cross the network in clear.
	AllowInsecure bool
}

// GeneratePassword returns a random admin password (24 characters after
// the "ha_" prefix).
func GeneratePassword() string { return "ha_" + id.New(24) }

// Validate reports what is wrong with cfg.
func (cfg Config) Validate() error {
	if cfg.Password != "" && len(cfg.Password) < MinPasswordLen {
		// The password is a secret: say how long it is, not what it is.
		return fmt.Errorf("has %d characters; it needs at least %d", len(cfg.Password), MinPasswordLen)
	}
	return nil
}

// Timing of the cluster questions the console asks.
const (
	// queryWait is how long the console waits for nodes to answer.
	queryWait = time.Second
	// overviewTTL is how long an overview is reused: consoles polling
	// every second share one question to the cluster.
	overviewTTL = 900 * time.Millisecond
	// nodeForget is how long a node that stopped answering is still
	// expected (and shown as not answering).
	nodeForget = 30 * time.Second
	// seriesLen is how many overview samples the charts keep (5 minutes
	// at one a second, while a console is open).
	seriesLen = 300
)

//go:embed static
var static embed.FS

// csp keeps the page to its own scripts, styles and origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Console is the admin console of one node: an http.Handler for Prefix.
type Console struct {
	cfg      Config
	password string
	node     Node
	resp     *Responder
	log      *slog.Logger
	logins   *prometheus.CounterVec
	actions  *prometheus.CounterVec
	files    http.Handler

	sessions sessions
	throttle throttle
	tails    tails

	ovMu   sync.Mutex
	ov     *Overview
	ovAt   time.Time
	known  map[string]time.Time // node → when it last answered
	prev   map[string]NodeStats // each node's last stats, for rates
	prevAt time.Time
	series []Sample

	stop     chan struct{}
	stopOnce sync.Once
}

// New returns the console of node. It registers its metrics on reg and
// logs the generated password when cfg has none.
func New(cfg Config, node Node, resp *Responder, log *slog.Logger, reg prometheus.Registerer) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, password: cfg.Password, node: node, resp: resp, log: log,
		files: http.StripPrefix(Prefix, http.FileServerFS(sub)),
		known: map[string]time.Time{}, prev: map[string]NodeStats{},
		stop: make(chan struct{}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_admin_logins_total",
			Help: "Admin console sign-ins (and script requests with the admin credential), by result: ok, bad_credential, throttled.",
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_admin_actions_total", Help: "Admin console actions carried out, by action.",
		}, []string{"action"}),
	}
	if err := reg.Register(c.logins); err != nil {
		return nil, err
	}
	if err := reg.Register(c.actions); err != nil {
		return nil, err
	}
	if c.password == "" {
		c.password = GeneratePassword()
		log.Warn("admin console: no password configured: generated one (set Config.Admin.Password to choose your own)", "admin_password", c.password)
	}
	return c, nil
}

// Close ends the event tails under way.
func (c *Console) Close() { c.stopOnce.Do(func() { close(c.stop) }) }

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.TLS == nil && !c.cfg.AllowInsecure && !isLoopback(r) {
		c.log.Warn("admin console refused: plain HTTP from a non-loopback address", "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "insecure_transport",
			"the admin console is served over plain HTTP to loopback clients only: serve it with TLS (--tls-cert), "+
				"or, behind a proxy that terminates TLS, enable --admin-insecure")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, Prefix)
	if !strings.HasPrefix(path, "api/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" not allowed; use GET")
			return
		}
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-cache")
		c.files.ServeHTTP(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	route := r.Method + " " + strings.TrimPrefix(path, "api/")
	switch route {
	case "POST login":
		c.serveLogin(w, r)
		return
	case "GET session", "POST logout", "GET overview", "GET rooms", "GET room", "GET connections", "GET tail",
		"POST publish", "POST disconnect", "POST revoke", "POST drain":
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such admin endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	a, ok := c.authorize(w, r)
	if !ok {
		return
	}
	switch route {
	case "GET session":
		writeJSON(w, http.StatusOK, a.sessionInfo())
	case "POST logout":
		c.sessions.remove(a.token)
		http.SetCookie(w, c.cookie(r, "", -1))
		c.log.Info("admin sign-out", "admin_session", a.label)
		writeJSON(w, http.StatusOK, map[string]bool{"signedOut": true})
	case "GET overview":
		writeJSON(w, http.StatusOK, c.overview(r.Context()))
	case "GET rooms":
		c.serveRooms(w, r)
	case "GET room":
		c.serveRoom(w, r)
	case "GET connections":
		c.serveConnections(w, r)
	case "GET tail":
		c.serveTail(w, r, a)
	case "POST publish":
		c.servePublish(w, r, a)
	case "POST disconnect":
		c.serveDisconnect(w, r, a)
	case "POST revoke":
		c.serveRevoke(w, r, a)
	case "POST drain":
		c.serveDrain(w, r, a)
	}
}

// admin is who makes a request: a browser session or a script.
type admin struct {
	label string // names the session (or "script") in logs
	token string // the session cookie's value; empty for scripts
	csrf  string
}

func (a admin) sessionInfo() map[string]string {
	return map[string]string{"session": a.label, "csrf": a.csrf}
}

// authorize checks the request's session cookie (and, for a change, its
// CSRF token) or its bearer credential, and answers 401 or 403 itself.
func (c *Console) authorize(w http.ResponseWriter, r *http.Request) (admin, bool) {
	now := time.Now()
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		const prefix = "bearer "
		ip := remoteIP(r)
		if !c.throttle.allowed(ip, now) {
			c.refuseThrottled(w, ip)
			return admin{}, false
		}
		if len(hdr) <= len(prefix) || !strings.EqualFold(hdr[:len(prefix)], prefix) || !equalSecret(hdr[len(prefix):], c.password) {
			c.throttle.failed(ip, now)
			c.logins.WithLabelValues("bad_credential").Inc()
			c.log.Warn("admin request refused: bad credential", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "wrong admin credential (Authorization: Bearer <admin password>)")
			return admin{}, false
		}
		// No cookie is involved, so no request forgery either.
		return admin{label: "script"}, true
	}
	ck, err := r.Cookie(CookieName)
	var s *session
	if err == nil {
		s = c.sessions.get(ck.Value, now)
	}
	if s == nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", "sign in first (POST "+Prefix+"api/login), or send Authorization: Bearer <admin password>")
		return admin{}, false
	}
	a := admin{label: s.label, token: s.token, csrf: s.csrf}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !equalSecret(r.Header.Get("X-CSRF-Token"), s.csrf) || !sameOrigin(r) {
			c.log.Warn("admin request refused: missing or wrong CSRF token", "admin_session", s.label, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token (from the sign-in answer or GET "+Prefix+"api/session), or a cross-origin request")
			return admin{}, false
		}
	}
	return a, true
}

// sameOrigin reports whether r's Origin, when it has one, is its own host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	_, host, ok := strings.Cut(o, "://")
	return ok && strings.EqualFold(host, r.Host)
}

func (c *Console) refuseThrottled(w http.ResponseWriter, ip string) {
	c.logins.WithLabelValues("throttled").Inc()
	c.log.Warn("admin sign-in refused: too many failures", "ip", ip)
	w.Header().Set("Retry-After", fmt.Sprint(int(failRefillPerIP/time.Second)))
	writeError(w, http.StatusTooManyRequests, "throttled", "too many failed sign-ins; retry later")
}

func (c *Console) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	}
}

func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ip := remoteIP(r)
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "csrf", "cross-origin sign-in refused")
		return
	}
	if !c.throttle.allowed(ip, now) {
		c.refuseThrottled(w, ip)
		return
	}
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !equalSecret(req.Password, c.password) {
		c.throttle.failed(ip, now)
		c.logins.WithLabelValues("bad_credential").Inc()
		c.log.Warn("admin sign-in failed: wrong password", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong password")
		return
	}
	s := c.sessions.create(now)
	c.logins.WithLabelValues("ok").Inc()
	c.log.Info("admin sign-in", "admin_session", s.label, "remote", r.RemoteAddr)
	http.SetCookie(w, c.cookie(r, s.token, int(sessionMax/time.Second)))
	writeJSON(w, http.StatusOK, admin{label: s.label, csrf: s.csrf}.sessionInfo())
}

// maxBody bounds an admin request body.
const maxBody = 1 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: expected a JSON object")
		}
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// Overview is the answer of GET /admin/api/overview.
type Overview struct {
	At    time.Time   `json:"at"`
	Nodes []NodeStats `json:"nodes"`
	// Silent lists nodes that answered in the last 30 s but not now.
	Silent []string `json:"silent"`
	Totals struct {
		Nodes       int `json:"nodes"`
		Connections int `json:"connections"`
	} `json:"totals"`
	Series []Sample `json:"series"`
	Error  string   `json:"error,omitempty"`
}

// Sample is one point of the overview charts: the cluster's totals and its
// rates since the previous sample.
type Sample struct {
	At          int64              `json:"t"` // Unix milliseconds
	Connections int                `json:"connections"`
	InPerSec    float64            `json:"inPerSec"`
	OutPerSec   float64            `json:"outPerSec"`
	Disconnects map[string]float64 `json:"disconnects,omitempty"` // since the previous sample, by reason
}

// overview asks every node for its stats, at most once per overviewTTL
// whoever asks.
func (c *Console) overview(ctx context.Context) *Overview {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	now := time.Now()
	if c.ov != nil && now.Sub(c.ovAt) < overviewTTL {
		return c.ov
	}
	expect := map[string]bool{}
	for n, at := range c.known {
		if now.Sub(at) > nodeForget {
			delete(c.known, n)
			delete(c.prev, n)
			continue
		}
		expect[n] = true
	}
	replies, err := c.resp.ask(ctx, opStats, queryArgs{}, expect, queryWait)
	now = time.Now()
	ov := &Overview{At: now, Nodes: []NodeStats{}, Silent: []string{}}
	if err != nil {
		ov.Error = "cluster not reachable: " + err.Error()
	}
	for _, rp := range replies {
		var st NodeStats
		if rp.Error != "" || json.Unmarshal(rp.Data, &st) != nil {
			continue
		}
		ov.Nodes = append(ov.Nodes, st)
		c.known[rp.Node] = now
		delete(expect, rp.Node)
	}
	for n := range expect {
		ov.Silent = append(ov.Silent, n)
	}
	sort.Strings(ov.Silent)
	sort.Slice(ov.Nodes, func(i, j int) bool { return ov.Nodes[i].Node < ov.Nodes[j].Node })
	smp := Sample{At: now.UnixMilli()}
	dt := now.Sub(c.prevAt).Seconds()
	for _, st := range ov.Nodes {
		ov.Totals.Connections += st.Connections
		smp.Connections += st.Connections
		if p, ok := c.prev[st.Node]; ok && dt > 0 && dt < 30 {
			smp.InPerSec += max(0, st.MessagesIn-p.MessagesIn) / dt
			smp.OutPerSec += max(0, st.MessagesOut-p.MessagesOut) / dt
			for reason, n := range st.Disconnects {
				if d := n - p.Disconnects[reason]; d > 0 {
					if smp.Disconnects == nil {
						smp.Disconnects = map[string]float64{}
					}
					smp.Disconnects[reason] += d
				}
			}
		}
		c.prev[st.Node] = st
	}
	ov.Totals.Nodes = len(ov.Nodes)
	c.prevAt = now
	if len(c.series) >= seriesLen {
		c.series = append(c.series[:0], c.series[1:]...)
	}
	c.series = append(c.series, smp)
	ov.Series = append([]Sample(nil), c.series...)
	c.ov, c.ovAt = ov, now
	return ov
}

// knownNodes returns the nodes that answered recently.
func (c *Console) knownNodes() map[string]bool {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	out := map[string]bool{}
	for n, at := range c.known {
		if time.Since(at) < nodeForget {
			out[n] = true
		}
	}
	return out
}

// gather asks every node op and returns the answers' data by node, and
// the nodes that failed with their error.
func (c *Console) gather(ctx context.Context, op string, args queryArgs) (map[string]json.RawMessage, map[string]string, error) {
	replies, err := c.resp.ask(ctx, op, args, c.knownNodes(), queryWait)
	data, failed := map[string]json.RawMessage{}, map[string]string{}
	for _, rp := range replies {
		if rp.Error != "" {
			failed[rp.Node] = rp.Error
			continue
		}
		data[rp.Node] = rp.Data
	}
	return data, failed, err
}

func (c *Console) serveRooms(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	data, _, err := c.gather(r.Context(), opRooms, queryArgs{Prefix: prefix})
	if err != nil && len(data) == 0 {
		writeError(w, http.StatusServiceUnavailable, "broker_unavailable", "cluster not reachable: "+err.Error())
		return
	}
	type room struct {
		Room    string         `json:"room"`
		Members int            `json:"members"`
		Nodes   map[string]int `json:"nodes"`
	}
	byName := map[string]*room{}
	for node, raw := range data {
		var rooms []RoomInfo
		if json.Unmarshal(raw, &rooms) != nil {
			continue
		}
		for _, ri := range rooms {
			rm := byName[ri.Room]
			if rm == nil {
				rm = &room{Room: ri.Room, Nodes: map[string]int{}}
				byName[ri.Room] = rm
			}
			rm.Members += ri.Members
			rm.Nodes[node] = ri.Members
		}
	}
	out := make([]*room, 0, len(byName))
	for _, rm := range byName {
		out = append(out, rm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	if len(out) > maxRows {
		out = out[:maxRows]
	}
	writeJSON(w, http.StatusOK, map[string]any{"prefix": prefix, "rooms": out, "nodes": sortedKeys(data)})
}

func (c *Console) serveRoom(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `query parameter "name" is required`)
		return
	}
	ctx := r.Context()
	data, _, err := c.gather(ctx, opMembers, queryArgs{Room: name})
	if err != nil && len(data) == 0 {
		writeError(w, http.StatusServiceUnavailable, "broker_unavailable", "cluster not reachable: "+err.Error())
		return
	}
	members := []MemberInfo{}
	for _, raw := range data {
		var ms []MemberInfo
		if json.Unmarshal(raw, &ms) == nil {
			members = append(members, ms...)
		}
	}
	sort.Slice(members, func(i, j int) bool {
		if members[i].User != members[j].User {
			return members[i].User < members[j].User
		}
		return members[i].Node < members[j].Node
	})
	out := map[string]any{"room": name, "members": members, "nodes": sortedKeys(data)}
	if p, err := c.node.Presence(ctx, name); err != nil {
		out["presenceError"] = err.Error()
	} else {
		out["presence"] = p
	}
	hist := map[string]any{"enabled": true}
	msgs, err := c.node.History(ctx, name, 20)
	switch {
	case errors.Is(err, ErrNoHistory):
		hist["enabled"] = false
		hist["message"] = "history not enabled for this room (see --history)"
	case err != nil:
		hist["error"] = err.Error()
	default:
		if msgs == nil {
			msgs = []*broker.Message{}
		}
		hist["messages"] = msgs
	}
	out["history"] = hist
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) serveConnections(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := ConnQuery{User: v.Get("user"), ID: v.Get("conn"), CorrelationID: v.Get("cid"), Room: v.Get("room")}
	if q.empty() {
		writeError(w, http.StatusBadRequest, "bad_request", `give at least one of "user", "conn", "cid" or "room"`)
		return
	}
	data, failed, err := c.gather(r.Context(), opConns, queryArgs{Conns: q})
	if err != nil && len(data) == 0 {
		writeError(w, http.StatusServiceUnavailable, "broker_unavailable", "cluster not reachable: "+err.Error())
		return
	}
	conns := []ConnInfo{}
	for _, raw := range data {
		var cs []ConnInfo
		if json.Unmarshal(raw, &cs) == nil {
			conns = append(conns, cs...)
		}
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].ConnectedAt.Before(conns[j].ConnectedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"connections": conns, "nodes": sortedKeys(data), "failed": failed})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
