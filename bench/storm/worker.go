package storm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

// Spec is the first line a worker reads: which clients it holds and where
// they connect.
type Spec struct {
	Kind loadgen.Kind `json:"kind"` // herald or socketio
	// Nodes are the WebSocket endpoints of the nodes (loadgen.Kind's
	// EndpointURL), in node order.
	Nodes []string `json:"nodes"`
	// Clients are numbered Offset … Offset+Clients-1 across workers:
	// client i is in room i mod Rooms and its home node is i mod
	// len(Nodes).
	Clients int `json:"clients"`
	Offset  int `json:"offset"`
	Rooms   int `json:"rooms"`
	// SourceIPs are the loopback addresses clients connect from, in turn.
	SourceIPs []string `json:"sourceIPs"`
	// JWTSecret signs each client's HS256 token (subject storm-user-i).
	JWTSecret string `json:"jwtSecret"`
	// DialConcurrency bounds the first connections in flight (default 64).
	DialConcurrency int `json:"dialConcurrency,omitempty"`
}

// Command is a line the orchestrator sends a worker after its spec.
type Command struct {
	// Cmd is "mark" (the storm starts now: Node is the node going away),
	// "status", "missing" (Published and Skip: how many messages the
	// clients still miss), "report" or "stop".
	Cmd  string `json:"cmd"`
	Node int    `json:"node,omitempty"`
	// Published is per room how many numbered messages were published
	// (numbers 0 … n-1); Skip lists per room numbers never published for
	// sure (given up), which no client is expected to have.
	Published []int64         `json:"published,omitempty"`
	Skip      map[int][]int64 `json:"skip,omitempty"`
}

// Ready is a worker's answer once its clients are connected and joined.
type Ready struct {
	Connected int           `json:"connected"`
	Failed    int           `json:"failed"`
	Took      time.Duration `json:"took"`
	FirstErr  string        `json:"firstErr,omitempty"`
}

// Status is the answer to "status" (and to "mark").
type Status struct {
	Connected int `json:"connected"` // clients connected and joined now
	Moving    int `json:"moving"`    // clients on the node going away at the mark
	// Moved counts the moving clients connected and joined again since
	// the mark.
	Moved int `json:"moved"`
	// LastMoved is when the last of them was (Unix ns; 0: none yet),
	// FirstAttempt when the first connection attempt after the mark
	// started.
	LastMoved    int64 `json:"lastMoved"`
	FirstAttempt int64 `json:"firstAttempt"`
	Missing      int64 `json:"missing"` // for "missing"
}

// Report is a worker's account of the storm.
type Report struct {
	Status
	// Latency is, for every connection made after the mark, from the
	// start of its TCP connect to the client being connected and joined
	// again (welcome, join answered, history replayed), in ns.
	Latency *loadgen.Histogram `json:"latency"`
	// Attempts are connection attempts after the mark; Failed those that
	// did not end connected and joined (HTTP 503 or 429, a timeout, a
	// reset, every node refusing). Refused counts TCP connects refused
	// (a dead node, skipped at once for the next one within the same
	// attempt).
	Attempts, Refused, Failed int64
	FirstErr                  string `json:"firstErr,omitempty"`
	// Resumed counts reconnects whose session was resumed (Herald);
	// Recovered and NotRecovered the joins that asked to recover.
	Resumed, Recovered, NotRecovered int64
	// Deliveries, Lost, Duplicated, OutOfOrder are per client, summed.
	Deliveries, Lost, Duplicated, OutOfOrder int64
}

// Reply is one line a worker writes; one field is set.
type Reply struct {
	Ready  *Ready  `json:"ready,omitempty"`
	Status *Status `json:"status,omitempty"`
	Report *Report `json:"report,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// member is one client's shared state, whatever its protocol.
type member struct {
	idx, room int
	order     []int // node indexes: home first
	localIP   net.IP

	cur       atomic.Int32 // position in order of the node of the last TCP connect
	dials     atomic.Int32 // TCP connects started (0: the next is the first)
	up        atomic.Bool
	moving    atomic.Bool
	attemptAt atomic.Int64 // Unix ns of the start of the latest attempt
	upAt      atomic.Int64 // Unix ns of the latest connected-and-joined

	t tally
}

// node returns the node index the client is (or was last) connected to.
func (m *member) node() int { return m.order[m.cur.Load()] }

// worker holds the clients of one process and the storm's counters.
type worker struct {
	spec   Spec
	mark   atomic.Int64 // Unix ns of the mark; 0 before
	nodes  []string     // host:port per node
	ms     []*member
	stats  counters
	closed atomic.Bool
}

type counters struct {
	mu                               sync.Mutex
	lat                              loadgen.Histogram
	attempts, refused, failed        int64
	resumed, recovered, notRecovered int64
	firstErr                         string
	firstAttempt                     int64 // Unix ns
}

func (c *counters) fail(err error) {
	c.mu.Lock()
	c.failed++
	if c.firstErr == "" && err != nil {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

// afterMark reports whether the storm has started.
func (w *worker) afterMark() bool { return w.mark.Load() != 0 }

// connected records that m is connected and joined.
func (w *worker) connected(m *member) {
	now := time.Now().UnixNano()
	if w.afterMark() {
		w.stats.mu.Lock()
		w.stats.lat.Record(now - m.attemptAt.Load())
		w.stats.mu.Unlock()
	}
	m.upAt.Store(now)
	m.up.Store(true)
}

// attempt runs one connection attempt of m: try(node) on the home node
// the first time, then on the node after the last one; a node that
// refuses the TCP connection is skipped for the next one at once.
func (w *worker) attempt(ctx context.Context, m *member, try func(node int) error) error {
	first := m.dials.Add(1) == 1
	m.attemptAt.Store(time.Now().UnixNano())
	if w.afterMark() {
		w.stats.mu.Lock()
		w.stats.attempts++
		if w.stats.firstAttempt == 0 {
			w.stats.firstAttempt = m.attemptAt.Load()
		}
		w.stats.mu.Unlock()
	}
	start := int(m.cur.Load())
	if !first {
		start++
	}
	var err error
	for k := 0; k < len(m.order); k++ {
		pos := (start + k) % len(m.order)
		m.cur.Store(int32(pos))
		if err = try(m.order[pos]); err == nil || !errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
			return err
		}
		if w.afterMark() {
			w.stats.mu.Lock()
			w.stats.refused++
			w.stats.mu.Unlock()
		}
	}
	return err
}

// dial opens m's TCP connection for an attempt of the Go client.
func (w *worker) dial(ctx context.Context, m *member) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if m.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: m.localIP}
	}
	var c net.Conn
	err := w.attempt(ctx, m, func(node int) error {
		var err error
		c, err = d.DialContext(ctx, "tcp", w.nodes[node])
		return err
	})
	return c, err
}

// order returns client i's node order: its home node, then the others
// rotated by i / n so that a node's clients spread over the rest.
func order(i, n int) []int {
	home := i % n
	out := []int{home}
	if n == 1 {
		return out
	}
	rot := (i / n) % (n - 1)
	for k := 0; k < n-1; k++ {
		out = append(out, (home+1+(rot+k)%(n-1))%n)
	}
	return out
}

// backoff is the Go client's default reconnect delay (full jitter between
// 0 and 250 ms·2^attempt, at most 30 s), used for the Socket.IO clients
// too so that both kinds come back on the same schedule.
func backoff(attempt int) time.Duration {
	ceil := 30 * time.Second
	if attempt < 7 {
		ceil = min(ceil, 250*time.Millisecond<<attempt)
	}
	return rand.N(ceil) + time.Millisecond
}

// clientSet is a kind of client: it connects m (and keeps it connected,
// reconnecting, until ctx ends).
type clientSet interface {
	// start connects m for the first time and joins its room, then keeps
	// it connected in the background until ctx ends.
	start(ctx context.Context, m *member) error
	// close ends every client and waits for its goroutines.
	close()
}

// RunWorker reads a Spec and then Commands as JSON lines from in and
// writes Replies to out until "stop" or the end of in. It returns once
// every client it started is closed and its goroutines have ended.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("storm: worker spec: %w", err)
	}
	fail := func(err error) error {
		_ = enc.Encode(Reply{Error: err.Error()})
		return err
	}
	if len(spec.Nodes) == 0 || spec.Rooms <= 0 || spec.Clients <= 0 {
		return fail(errors.New("storm: spec needs nodes, rooms and clients"))
	}
	w := &worker{spec: spec}
	for _, u := range spec.Nodes {
		hp, err := hostPort(u)
		if err != nil {
			return fail(err)
		}
		w.nodes = append(w.nodes, hp)
	}
	ctx, cancel := context.WithCancel(ctx)
	var set clientSet
	switch spec.Kind {
	case loadgen.KindHerald:
		set = &heraldSet{w: w}
	case loadgen.KindSocketIO:
		set = &sioSet{w: w}
	default:
		cancel()
		return fail(fmt.Errorf("storm: kind %q (herald, socketio)", spec.Kind))
	}
	defer func() {
		cancel()
		set.close()
	}()

	t0 := time.Now()
	conc := spec.DialConcurrency
	if conc <= 0 {
		conc = 64
	}
	var (
		mu       sync.Mutex
		failed   int
		firstErr string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, conc)
	)
	for k := 0; k < spec.Clients; k++ {
		i := spec.Offset + k
		m := &member{idx: i, room: i % spec.Rooms, order: order(i, len(spec.Nodes)), t: newTally()}
		if len(spec.SourceIPs) > 0 {
			m.localIP = net.ParseIP(spec.SourceIPs[i%len(spec.SourceIPs)])
		}
		w.ms = append(w.ms, m)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			for attempt := 0; attempt < 4; attempt++ {
				if attempt > 0 {
					time.Sleep(time.Duration(attempt) * 250 * time.Millisecond)
				}
				m.dials.Store(0)
				if err = set.start(ctx, m); err == nil {
					return
				}
			}
			mu.Lock()
			failed++
			if firstErr == "" {
				firstErr = err.Error()
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	connected := 0
	for _, m := range w.ms {
		if m.up.Load() {
			connected++
		}
	}
	if err := enc.Encode(Reply{Ready: &Ready{Connected: connected, Failed: failed, Took: time.Since(t0), FirstErr: firstErr}}); err != nil {
		return err
	}
	for {
		var cmd Command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var r Reply
		switch cmd.Cmd {
		case "mark":
			for _, m := range w.ms {
				m.moving.Store(m.up.Load() && m.node() == cmd.Node)
			}
			w.mark.Store(time.Now().UnixNano())
			st := w.status()
			r.Status = &st
		case "status":
			st := w.status()
			r.Status = &st
		case "missing":
			st := w.status()
			st.Missing = w.missing(cmd)
			r.Status = &st
		case "report":
			r.Report = w.report(cmd)
		case "stop":
			return nil
		default:
			r.Error = fmt.Sprintf("storm: unknown command %q", cmd.Cmd)
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

func (w *worker) status() Status {
	var st Status
	w.stats.mu.Lock()
	st.FirstAttempt = w.stats.firstAttempt
	w.stats.mu.Unlock()
	mark := w.mark.Load()
	for _, m := range w.ms {
		up := m.up.Load()
		if up {
			st.Connected++
		}
		if !m.moving.Load() {
			continue
		}
		st.Moving++
		if at := m.upAt.Load(); up && mark != 0 && at > mark {
			st.Moved++
			st.LastMoved = max(st.LastMoved, at)
		}
	}
	return st
}

func skipSet(cmd Command, room int) map[int64]bool {
	s := map[int64]bool{}
	for _, n := range cmd.Skip[room] {
		s[n] = true
	}
	return s
}

func (w *worker) missing(cmd Command) int64 {
	var n int64
	skips := map[int]map[int64]bool{}
	for _, m := range w.ms {
		if m.room >= len(cmd.Published) {
			continue
		}
		if skips[m.room] == nil {
			skips[m.room] = skipSet(cmd, m.room)
		}
		n += m.t.missing(cmd.Published[m.room], skips[m.room])
	}
	return n
}

func (w *worker) report(cmd Command) *Report {
	r := &Report{Status: w.status(), Latency: &loadgen.Histogram{}}
	r.Lost = w.missing(cmd)
	for _, m := range w.ms {
		m.t.mu.Lock()
		r.Deliveries += m.t.deliveries
		r.Duplicated += m.t.dup
		r.OutOfOrder += m.t.ooo
		m.t.mu.Unlock()
	}
	s := &w.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Latency.Merge(&s.lat)
	r.Attempts, r.Refused, r.Failed, r.FirstErr = s.attempts, s.refused, s.failed, s.firstErr
	r.Resumed, r.Recovered, r.NotRecovered = s.resumed, s.recovered, s.notRecovered
	return r
}
