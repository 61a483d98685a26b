package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

// The promise the tests of this file check from outside, against real
// processes: a publish answered with a reply (v1) or a 200 (API) reaches
// every member of the room, across engine and node faults, or each member
// that misses it is told (a gap frame, or a join answered recovered:
// false) after it was published. Publishes the engine cannot take while
// it is down are refused, not answered 200.

// promiseRoom keeps history (size and TTL far above what a run publishes).
const promiseRoom = "feed:promise"

// outcome is one publish attempt: its number, when it was sent and
// answered, and how (ok, or why not).
type outcome struct {
	id         int
	start, end time.Time
	ok         bool
	why        string
}

// ledger records every publish attempt of a run.
type ledger struct {
	mu   sync.Mutex
	next int
	all  []outcome
}

func (l *ledger) id() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	return l.next
}

func (l *ledger) add(o outcome) {
	l.mu.Lock()
	l.all = append(l.all, o)
	l.mu.Unlock()
}

func (l *ledger) outcomes() []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.all...)
}

// member is a client in the room that records what it received and when
// it was told it may have missed something.
type member struct {
	name string
	mu   sync.Mutex
	got  map[int]int
	told []time.Time
	c    *client.Client
}

func (m *member) counts() (map[int]int, []time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	got := make(map[int]int, len(m.got))
	for k, v := range m.got {
		got[k] = v
	}
	return got, append([]time.Time(nil), m.told...)
}

// hasNewest reports whether m received the newest answered publish of l:
// a room's messages arrive in order, so none older is still to come.
func (m *member) hasNewest(l *ledger) bool {
	newest := 0
	for _, o := range l.outcomes() {
		if o.ok && o.id > newest {
			newest = o.id
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.got[newest] > 0
}

func joinMember(t *testing.T, url, name string) *member {
	t.Helper()
	m := &member{name: name, got: make(map[int]int)}
	note := func() {
		m.mu.Lock()
		m.told = append(m.told, time.Now())
		m.mu.Unlock()
	}
	c, _ := dialNode(t, url, name,
		client.WithGapHandler(func(room string) {
			if room == promiseRoom { // not the user room's, which every resume names
				note()
			}
		}),
		client.WithRecoveryHandler(func(_ string, recovered bool) {
			if !recovered {
				note()
			}
		}))
	c.On("n", func(e client.Event) {
		v, err := strconv.Atoi(string(e.Data))
		if err != nil {
			t.Errorf("%s: payload %q", name, e.Data)
			return
		}
		m.mu.Lock()
		m.got[v]++
		m.mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Join(ctx, promiseRoom); err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	m.c = c
	return m
}

// publishers sends numbered messages, from a v1 client (acked delivery,
// which members acknowledge) and through the API (plain) of each node
// given, until stop is closed.
func publishers(t *testing.T, l *ledger, stop <-chan struct{}, wg *sync.WaitGroup, nodes ...*node) {
	t.Helper()
	httpc := &http.Client{Timeout: 5 * time.Second}
	for k, n := range nodes {
		pub, _ := dialNode(t, n.ws(), fmt.Sprintf("publisher-%s", n.name))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := pub.Join(ctx, promiseRoom)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		loop := func(send func(id int) (bool, string)) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := l.id()
				o := outcome{id: id, start: time.Now()}
				o.ok, o.why = send(id)
				o.end = time.Now()
				l.add(o)
				time.Sleep(8 * time.Millisecond)
			}
		}
		wg.Add(2)
		go loop(func(id int) (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := pub.Publish(ctx, promiseRoom, "n", id, client.WithAck())
			var se *client.ServerError
			switch {
			case err == nil:
				return true, ""
			case errors.As(err, &se):
				return false, "v1 " + se.Code
			default:
				return false, "v1 no answer"
			}
		})
		go loop(func(id int) (bool, string) {
			req, _ := http.NewRequest("POST", nodes[k].http()+"/api/v1/publish",
				strings.NewReader(`{"room":"`+promiseRoom+`","event":"n","data":`+strconv.Itoa(id)+`}`))
			req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
			resp, err := httpc.Do(req)
			if err != nil {
				return false, "api no answer"
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, ""
			}
			var body struct{ Error string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			return false, "api " + strconv.Itoa(resp.StatusCode) + " " + body.Error
		})
	}
}

// documented are the answers docs/operations.md gives a publish the
// engine cannot take ("When the broker goes away").
var documented = map[string]bool{
	"v1 broker_unavailable":      true,
	"v1 publish_timeout":         true,
	"api 503 broker_unavailable": true,
	"api 504 publish_timeout":    true,
}

// goroutines reads a node's go_goroutines from /metrics.
func goroutines(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get(n.http() + "/metrics")
	if err != nil {
		t.Fatalf("%s: /metrics: %v", n.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			g, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: go_goroutines %q", n.name, v)
			}
			return g
		}
	}
	t.Fatalf("%s: no go_goroutines in /metrics", n.name)
	return 0
}

// faultCase is one fault injected while the publishers run: fault
// breaks something and mends it, returning when it was broken and when
// mended (publishes that began and ended in between may not be answered
// ok when strict). The engine is chosen by the name's first word.
type faultCase struct {
	name   string
	flags  []string
	strict bool // nothing may be answered 200 while broken
	// viaBalancer puts the members behind a balancer over both nodes (a
	// node fault moves them to the other); otherwise two members are on
	// each node.
	viaBalancer bool
	fault       func(t *testing.T, env *faultEnv) (down, up time.Time)
}

// faultEnv is what a fault can reach.
type faultEnv struct {
	redis   *testserver.Redis
	cluster *testserver.RedisCluster
	nats    *testserver.NATS
	nodes   []*node
}

// TestPromiseUnderFaults: two nodes, a room with history, members on both
// and publishers (v1 and API) on both; one fault per case in the middle
// of the stream. Every answered publish reaches every member, or the
// member is told after it was published; no node leaks goroutines.
func TestPromiseUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	t.Parallel()
	bin := buildBinary(t)
	for _, tt := range []faultCase{
		{
			name:   "redis SIGKILL, restarted empty",
			strict: true,
			fault: func(t *testing.T, env *faultEnv) (time.Time, time.Time) {
				env.redis.Kill()
				down := time.Now()
				time.Sleep(1500 * time.Millisecond)
				up := time.Now()
				env.redis.Restart()
				return down, up
			},
		},
		{
			name:  "redis SIGSTOP longer than the timeouts",
			flags: []string{"--backend-timeout", "1s"},
			fault: func(t *testing.T, env *faultEnv) (time.Time, time.Time) {
				env.redis.Freeze()
				down := time.Now()
				time.Sleep(3 * time.Second)
				env.redis.Thaw()
				return down, time.Now()
			},
		},
		{
			name:   "nats restart",
			strict: true,
			fault: func(t *testing.T, env *faultEnv) (time.Time, time.Time) {
				env.nats.Shutdown()
				down := time.Now()
				time.Sleep(1500 * time.Millisecond)
				up := time.Now()
				env.nats.Restart()
				return down, up
			},
		},
		{
			name:        "subscriber node SIGKILL, members resume on the other",
			viaBalancer: true,
			fault: func(t *testing.T, env *faultEnv) (time.Time, time.Time) {
				n := env.nodes[0]
				if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				n.exit <- <-n.exit
				return time.Now(), time.Now()
			},
		},
		{
			name:   "redis cluster master SIGKILL, restarted empty",
			strict: true,
			fault: func(t *testing.T, env *faultEnv) (time.Time, time.Time) {
				owner := clusterOwner(t, env.cluster, promiseRoom)
				owner.Kill()
				down := time.Now()
				time.Sleep(1500 * time.Millisecond)
				up := time.Now()
				owner.Restart()
				return down, up
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := &faultEnv{}
			var engine []string
			switch {
			case strings.HasPrefix(tt.name, "nats"):
				env.nats = testserver.StartNATS(t)
				engine = []string{"--nats-url", env.nats.URL()}
			case strings.HasPrefix(tt.name, "redis cluster"):
				env.cluster = testserver.StartRedisCluster(t)
				engine = []string{"--redis-cluster", strings.Join(env.cluster.Addrs(), ",")}
			default:
				env.redis = testserver.StartRedis(t)
				engine = []string{"--redis-url", env.redis.URL()}
			}
			flags := append(append(engine, "--history="+promiseRoom+"=100000/10m"), tt.flags...)
			for i := range 2 {
				env.nodes = append(env.nodes, startNodeWith(t, bin, fmt.Sprintf("p%d", i), flags...))
			}
			var members []*member
			if tt.viaBalancer {
				lb := startBalancer(t, env.nodes[0].addr, env.nodes[1].addr)
				for i := range 4 {
					members = append(members, joinMember(t, lb.url(), fmt.Sprintf("member-%d", i)))
				}
			} else {
				for i := range 4 {
					members = append(members, joinMember(t, env.nodes[i%2].ws(), fmt.Sprintf("member-%d", i)))
				}
			}
			// Publishers on the node that survives a node fault only;
			// on both otherwise.
			pubNodes := env.nodes
			if tt.viaBalancer {
				pubNodes = env.nodes[1:]
			}
			before := make([]int, len(env.nodes))
			for i, n := range env.nodes {
				before[i] = goroutines(t, n)
			}
			l := &ledger{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			publishers(t, l, stop, &wg, pubNodes...)
			time.Sleep(time.Second)
			down, up := tt.fault(t, env)
			// Publishing goes on until the engine answers again.
			waitUntil(t, 30*time.Second, "publishes answered after the fault", func() bool {
				after := 0
				for _, o := range l.outcomes() {
					if o.ok && o.start.After(up) {
						after++
					}
				}
				return after >= 100
			})
			close(stop)
			wg.Wait()

			all := l.outcomes()
			answered := make(map[int]outcome)
			refused := make(map[string]int)
			for _, o := range all {
				if o.ok {
					answered[o.id] = o
					if tt.strict && o.start.After(down) && o.end.Before(up) {
						t.Errorf("publish %d answered ok while the engine was down (%v after the fault began)", o.id, o.start.Sub(down))
					}
				} else {
					refused[o.why]++
					if !documented[o.why] {
						t.Errorf("publish %d refused with %q, not a documented answer to an engine fault", o.id, o.why)
					}
				}
			}
			t.Logf("published %d: answered %d, refused %v", len(all), len(answered), refused)
			for _, m := range members {
				var lost, silent, dup int
				deadline := time.Now().Add(15 * time.Second)
				for {
					newest := m.hasNewest(l)
					got, told := m.counts()
					lost, silent, dup = 0, 0, 0
					for id, o := range answered {
						switch n := got[id]; {
						case n == 0:
							lost++
							if !toldAfter(told, o.start) {
								silent++
							}
						case n > 1:
							dup++
						}
					}
					if lost == 0 || newest || time.Now().After(deadline) {
						t.Logf("%s: delivered %d of %d answered, %d lost (%d silently), %d duplicated, told of gaps %d times",
							m.name, len(answered)-lost, len(answered), lost, silent, dup, len(told))
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if silent > 0 || dup > 0 {
					t.Errorf("%s: %d answered publishes lost without a word, %d delivered twice", m.name, silent, dup)
				}
			}
			for i, n := range env.nodes {
				select {
				case err := <-n.exit:
					if tt.viaBalancer && i == 0 {
						n.exit <- err
						continue
					}
					t.Fatalf("%s exited: %v\n%s", n.name, err, n.logs.String())
				default:
				}
				// The members and publishers are back: what the fault
				// started has ended (slack for the runtime's own).
				var g int
				deadline := time.Now().Add(10 * time.Second)
				for g = goroutines(t, n); g > before[i]+10 && time.Now().Before(deadline); g = goroutines(t, n) {
					time.Sleep(100 * time.Millisecond)
				}
				t.Logf("%s: %d goroutines before the fault, %d after", n.name, before[i], g)
				if g > before[i]+10 {
					t.Errorf("%s: %d goroutines after recovery, %d before the fault", n.name, g, before[i])
				}
			}
		})
	}
}

// toldAfter reports whether any notice came after at.
func toldAfter(told []time.Time, at time.Time) bool {
	for _, w := range told {
		if w.After(at) {
			return true
		}
	}
	return false
}

// clusterOwner returns the master that owns room's slot (its channel and
// history keys have the room as their hash tag).
func clusterOwner(t *testing.T, c *testserver.RedisCluster, room string) *testserver.Redis {
	t.Helper()
	nodes := c.Nodes()
	slot, err := nodes[0].Command("CLUSTER", "KEYSLOT", "{"+room+"}")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := strconv.Atoi(slot)
	out, err := nodes[0].Command("CLUSTER", "NODES")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= s && s <= b {
				for _, n := range nodes {
					if n.Addr() == addr {
						return n
					}
				}
			}
		}
	}
	t.Fatalf("no master owns slot %d:\n%s", s, out)
	return nil
}
