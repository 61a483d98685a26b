// Package rolling is the rolling-deploy scenario: real nginx in front of
// three `herald serve` processes sharing a real redis-server, clients
// (the Go client) in rooms that keep history, and a publisher sending
// acknowledged messages through the API while each node in turn is
// drained (SIGTERM) and started again, and then one node is killed
// (SIGKILL). It counts, per room, what was published (answered 200),
// delivered, lost, duplicated and out of order at the clients, and how
// long clients took to reconnect.
//
// `herald bench rolling` runs it at full size; a test in cmd/herald runs
// it smaller in CI and asserts 0 lost, 0 duplicated and 0 out of order.
// Run owns every process and goroutine it starts and stops them before
// it returns.
package rolling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrt/herald/client"
)

// Options sizes the scenario; zero values take the defaults in brackets.
type Options struct {
	Herald string // path of the herald binary (required)
	Redis  string // redis-server [found on PATH]
	Nginx  string // nginx [found on PATH or /usr/sbin/nginx]

	Clients int // [300]
	Rooms   int // [10]
	Rate    int // publishes per second, all rooms together [200]
	// Phase is the traffic between two steps of the deploy [10s]. The
	// nginx file marks a node that failed a request unusable for 10s
	// (fail_timeout): with shorter phases nginx may have no node left for a
	// moment, and clients and the publisher retry more.
	Phase time.Duration
	// Log receives progress lines [discarded]; with NodeLogs also the
	// end of each node's log (warnings and errors).
	Log      io.Writer
	NodeLogs bool
}

func (o *Options) setDefaults() error {
	if o.Herald == "" {
		return errors.New("rolling: Options.Herald (the herald binary) is required")
	}
	if o.Clients <= 0 {
		o.Clients = 300
	}
	if o.Rooms <= 0 {
		o.Rooms = 10
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Phase <= 0 {
		o.Phase = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var err error
	if o.Redis == "" {
		if o.Redis, err = lookPath("redis-server"); err != nil {
			return err
		}
	}
	if o.Nginx == "" {
		if o.Nginx, err = lookPath("nginx", "/usr/sbin/nginx"); err != nil {
			return err
		}
	}
	return nil
}

// ErrMissingBinary is returned (wrapped) when redis-server or nginx is
// not installed.
var ErrMissingBinary = errors.New("rolling: binary not found")

func lookPath(name string, extra ...string) (string, error) {
	if p, err := execLookPath(name); err == nil {
		return p, nil
	}
	for _, p := range extra {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (Debian: apt-get install -y nginx redis-server)", ErrMissingBinary, name)
}

// RoomReport is one room's count. Delivered, Lost and Duplicated count
// deliveries: a message to a room of 30 clients is 30.
type RoomReport struct {
	Room       string
	Clients    int
	Published  int // messages answered 200
	Delivered  int // (client, published message) pairs the clients' handlers got
	Lost       int // published messages a client of the room never got
	Duplicated int // handler calls for a message the client had already got
	OutOfOrder int // messages a client got after a later one of the room
}

// Report is the outcome of one run.
type Report struct {
	Options    Options
	Rooms      []RoomReport
	Total      RoomReport
	GivenUp    int // publishes never answered 200 despite retries (not counted as published)
	Retries    int // publish attempts after a failed one (node gone, 502, 503, 504)
	Slowest    time.Duration
	Failures   map[string]int // failed attempts by cause
	Reconnects []time.Duration
	// Unrecovered counts joins answered recovered:false, Gaps gap
	// frames for a client's room with history (not its user room's,
	// which every resume gets): places where a client would have had
	// to resync.
	Unrecovered, Gaps int
	// Recovered counts joins after a reconnect answered recovered:true.
	Recovered int
	// Publishing is how long the publisher ran.
	Publishing time.Duration
	Took       time.Duration
}

// percentile returns the p-th percentile of the reconnect times.
func (r *Report) percentile(p float64) time.Duration {
	if len(r.Reconnects) == 0 {
		return 0
	}
	d := slices.Clone(r.Reconnects)
	slices.Sort(d)
	i := int(p * float64(len(d)-1))
	return d[i]
}

// String is the report as text; its last line is
// "rolling: published N, delivered N, lost N, duplicated N, out of order N".
func (r *Report) String() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "rolling deploy: nginx, 3 herald nodes on one redis-server, %d clients in %d rooms with history, %d acked publishes/s through the API; each node SIGTERMed, drained and started again, then one SIGKILLed (%s of traffic between steps, %s in all)\n\n",
		o.Clients, o.Rooms, o.Rate, o.Phase, r.Took.Round(time.Second))
	fmt.Fprintf(&b, "| room | clients | published | delivered | lost | duplicated | out of order |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, rr := range append(slices.Clone(r.Rooms), r.Total) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d |\n", rr.Room, rr.Clients, rr.Published, rr.Delivered, rr.Lost, rr.Duplicated, rr.OutOfOrder)
	}
	fmt.Fprintf(&b, "\nreconnects: %d, p50 %s, p99 %s; joins recovered: %d, not recovered: %d; gap frames: %d; publishes given up: %d\n",
		len(r.Reconnects), r.percentile(0.5).Round(time.Millisecond), r.percentile(0.99).Round(time.Millisecond),
		r.Recovered, r.Unrecovered, r.Gaps, r.GivenUp)
	rate := 0.0
	if r.Publishing > 0 {
		rate = float64(r.Total.Published) / r.Publishing.Seconds()
	}
	fmt.Fprintf(&b, "published %.0f/s over %s (each room's publisher waits for the answer before the next); publish retries: %d %v; slowest publish (retries included): %s\n",
		rate, r.Publishing.Round(time.Second), r.Retries, r.Failures, r.Slowest.Round(time.Millisecond))
	fmt.Fprintf(&b, "rolling: published %d, delivered %d, lost %d, duplicated %d, out of order %d\n",
		r.Total.Published, r.Total.Delivered, r.Total.Lost, r.Total.Duplicated, r.Total.OutOfOrder)
	return b.String()
}

const apiKey = "rolling-bench-api-key-0123456789"

// Run runs the scenario once.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s rolling: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "herald-rolling-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	redis, redisAddr, err := startRedis(ctx, o.Redis)
	if err != nil {
		return nil, err
	}
	defer redis.kill()
	history := fmt.Sprintf("roll:*=%d", 100000)
	nodes := make([]*node, 3)
	addrs := make([]string, 3)
	for i := range nodes {
		name := fmt.Sprintf("node%d", i+1)
		nodes[i] = &node{name: name, bin: o.Herald, args: func(addr string) []string {
			return []string{"serve",
				"--addr", addr, "--node-id", name, "--redis-url", "redis://" + redisAddr + "/0",
				"--api-key", apiKey, "--history", history, "--drain-timeout", "4s", "--drain-retry-after", "500ms",
				"--lease-ttl", "3s", "--log-level", "warn", "--log-format", "text"}
		}}
		if err := nodes[i].startFirst(ctx); err != nil {
			return nil, err
		}
		addrs[i] = nodes[i].addr
	}
	defer func() {
		for _, n := range nodes {
			if n.p != nil && n.p.running() {
				n.p.kill()
			}
			if n.p != nil && o.NodeLogs {
				fmt.Fprintf(o.Log, "--- %s (last run) ---\n%s\n", n.name, n.p.logs)
			}
		}
	}()
	ng, err := startNginx(ctx, o.Nginx, dir, addrs)
	if err != nil {
		return nil, err
	}
	defer ng.stop()
	logf("redis %s, nodes %v, nginx %s", redisAddr, addrs, ng.addr)

	subs, err := connectClients(ctx, o, "ws://"+ng.addr+"/ws")
	defer func() {
		for _, s := range subs {
			_ = s.c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	logf("%d clients joined %d rooms", len(subs), o.Rooms)

	pubCtx, stopPub := context.WithCancel(ctx)
	pub := newPublisher(o, "http://"+ng.addr)
	var pubWG sync.WaitGroup
	pub.start(pubCtx, &pubWG)
	pubStart := time.Now()
	var pubTook time.Duration
	stopped := false
	stopPublishing := func() {
		if !stopped {
			stopped = true
			stopPub()
			pubWG.Wait()
			pubTook = time.Since(pubStart)
		}
	}
	defer stopPublishing()

	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := wait(o.Phase); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		logf("SIGTERM %s (published so far: %d)", n.name, pub.total())
		if !n.p.signal(syscall.SIGTERM, 20*time.Second) {
			return nil, fmt.Errorf("rolling: %s did not exit within 20s of SIGTERM", n.name)
		}
		logf("%s drained and exited; starting it again", n.name)
		if err := n.start(ctx); err != nil {
			return nil, err
		}
		if err := wait(o.Phase); err != nil {
			return nil, err
		}
	}
	victim := nodes[1]
	logf("SIGKILL %s (published so far: %d)", victim.name, pub.total())
	victim.p.kill()
	if err := wait(o.Phase); err != nil {
		return nil, err
	}
	stopPublishing()
	logf("publisher stopped: %d published, %d given up; waiting for the clients to catch up", pub.total(), pub.givenUp())

	// Every client should end with every message of its room: wait for
	// it, within a bound (what is missing then is lost).
	_ = poll(ctx, 30*time.Second, "clients caught up", func() error {
		for _, s := range subs {
			if missing := s.missing(pub.published(s.room)); missing > 0 {
				return fmt.Errorf("%s misses %d", s.id, missing)
			}
		}
		return nil
	})
	rep := &Report{Options: o, GivenUp: pub.givenUp(), Publishing: pubTook}
	rep.Retries, rep.Slowest, rep.Failures = pub.stats()
	rep.Total.Room = "all"
	for r := 0; r < o.Rooms; r++ {
		rr := RoomReport{Room: roomName(r), Published: len(pub.published(r))}
		for _, s := range subs {
			if s.room != r {
				continue
			}
			rr.Clients++
			d, l, dup, ooo := s.count(pub.published(r))
			rr.Delivered += d
			rr.Lost += l
			rr.Duplicated += dup
			rr.OutOfOrder += ooo
		}
		rep.Rooms = append(rep.Rooms, rr)
		rep.Total.Clients += rr.Clients
		rep.Total.Published += rr.Published
		rep.Total.Delivered += rr.Delivered
		rep.Total.Lost += rr.Lost
		rep.Total.Duplicated += rr.Duplicated
		rep.Total.OutOfOrder += rr.OutOfOrder
	}
	for _, s := range subs {
		s.mu.Lock()
		rep.Reconnects = append(rep.Reconnects, s.reconnects...)
		rep.Unrecovered += s.unrecovered
		rep.Recovered += s.recovered
		rep.Gaps += s.gaps
		s.mu.Unlock()
	}
	rep.Took = time.Since(start)
	return rep, nil
}

func roomName(i int) string { return "roll:" + strconv.Itoa(i) }

// subscriber is one client and what its handlers saw.
type subscriber struct {
	id   string
	room int
	c    *client.Client

	mu          sync.Mutex
	seen        map[int]int // message number → handler calls
	max         int
	outOfOrder  int
	downSince   time.Time
	reconnects  []time.Duration
	unrecovered int
	recovered   int
	gaps        int
}

func (s *subscriber) event(ev client.Event) {
	n, err := strconv.Atoi(string(ev.Data))
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[n]++
	if s.seen[n] > 1 {
		return
	}
	if n < s.max {
		s.outOfOrder++
	} else {
		s.max = n
	}
}

func (s *subscriber) state(st client.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case client.Reconnecting:
		if s.downSince.IsZero() {
			s.downSince = time.Now()
		}
	case client.Connected:
		if !s.downSince.IsZero() {
			s.reconnects = append(s.reconnects, time.Since(s.downSince))
			s.downSince = time.Time{}
		}
	}
}

// missing returns how many of published the client has not got.
func (s *subscriber) missing(published map[int]bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for m := range published {
		if s.seen[m] == 0 {
			n++
		}
	}
	return n
}

// count returns the client's deliveries of published messages, those it
// lost, its duplicates and its out-of-order messages.
func (s *subscriber) count(published map[int]bool) (delivered, lost, dup, ooo int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range published {
		if s.seen[m] == 0 {
			lost++
		} else {
			delivered++
		}
	}
	for _, calls := range s.seen {
		if calls > 1 {
			dup += calls - 1
		}
	}
	return delivered, lost, dup, s.outOfOrder
}

// connectClients dials o.Clients clients through url, client i in room
// i mod o.Rooms, a few dozen at a time.
func connectClients(ctx context.Context, o Options, url string) ([]*subscriber, error) {
	subs := make([]*subscriber, o.Clients)
	errs := make([]error, o.Clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range subs {
		s := &subscriber{id: fmt.Sprintf("c%03d", i), room: i % o.Rooms, seen: make(map[int]int)}
		subs[i] = s
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			var lopt []client.Option
			if os.Getenv("ROLLING_DEBUG") != "" && i < 3 {
				lopt = append(lopt, client.WithLogger(slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("client", s.id)))
			}
			c, err := client.Dial(dctx, url, append(lopt, client.WithClientID(s.id),
				client.WithReconnect(100*time.Millisecond, 2*time.Second),
				client.WithStateHandler(s.state),
				client.WithRecoveryHandler(func(_ string, ok bool) {
					s.mu.Lock()
					if ok {
						s.recovered++
					} else {
						s.unrecovered++
					}
					s.mu.Unlock()
				}),
				client.WithGapHandler(func(room string) {
					if room != roomName(s.room) {
						return // the user room's, which every resume names
					}
					s.mu.Lock()
					s.gaps++
					s.mu.Unlock()
				}))...)
			if err != nil {
				errs[i] = fmt.Errorf("client %s: %w", s.id, err)
				return
			}
			s.c = c
			c.OnAny(s.event)
			errs[i] = c.Join(dctx, roomName(s.room))
		}()
	}
	wg.Wait()
	var live []*subscriber
	for _, s := range subs {
		if s.c != nil {
			live = append(live, s)
		}
	}
	return live, errors.Join(errs...)
}
