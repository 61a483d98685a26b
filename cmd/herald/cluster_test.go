package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

const clusterAPIKey = "cluster-test-key-0123456789"

// node is one real `herald serve` process.
type node struct {
	name string
	addr string
	cmd  *exec.Cmd
	logs *syncWriter
	exit chan error
}

func (n *node) ws() string   { return "ws://" + n.addr + "/ws" }
func (n *node) http() string { return "http://" + n.addr }

func startNode(t *testing.T, bin, name, redisURL string) *node {
	t.Helper()
	return startNodeWith(t, bin, name, "--redis-url", redisURL)
}

// startNodeWith starts a node with engine flags of the caller's choice.
// The node listens on a port it picks itself and logs (a port picked
// free by the test could be taken by another test's node before this one
// binds it, and that node would answer for it).
func startNodeWith(t *testing.T, bin, name string, engine ...string) *node {
	t.Helper()
	n := &node{name: name, logs: &syncWriter{w: &bytes.Buffer{}}, exit: make(chan error, 1)}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--node-id", name,
		"--api-key", clusterAPIKey, "--lease-ttl", "3s", "--drain-timeout", "2s", "--log-level", "info"}, engine...)
	n.cmd = exec.Command(bin, args...)
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exit <- n.cmd.Wait() }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exit
	})
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for {
		if n.addr == "" {
			n.addr = listeningAddr(n.logs.String())
		}
		if n.addr != "" {
			var resp *http.Response
			if resp, err = http.Get(n.http() + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return n
				}
			}
		}
		select {
		case exit := <-n.exit:
			n.exit <- exit // for the cleanup
			t.Fatalf("%s exited before it was ready: %v\n%s", name, exit, n.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready: %v\n%s", name, err, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listeningAddr returns the address of herald serve's "listening" log
// line in logs, or "" while there is none.
func listeningAddr(logs string) string {
	l, _ := listeningLine(logs)
	return l.Addr
}

// listening is what the tests read of herald serve's "listening" line.
type listening struct {
	Addr string
	TLS  bool
}

// listeningLine returns herald serve's "listening" log line in logs
// (JSON), and false while there is none.
func listeningLine(logs string) (listening, bool) {
	for line := range strings.Lines(logs) {
		var l struct {
			Msg, Addr string
			TLS       bool
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
			return listening{Addr: l.Addr, TLS: l.TLS}, true
		}
	}
	return listening{}, false
}

// balancer is the test's load balancer: a TCP proxy that sends each new
// connection to the next backend that accepts it (round robin), as nginx
// with a stateless upstream does. It records where each went.
type balancer struct {
	ln       net.Listener
	backends []string
	mu       sync.Mutex
	next     int
	wg       sync.WaitGroup
	conns    []net.Conn
}

func startBalancer(t *testing.T, backends ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: backends}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *balancer) serve() {
	defer b.wg.Done()
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		var out net.Conn
		for i := 0; i < len(b.backends) && out == nil; i++ {
			b.mu.Lock()
			addr := b.backends[b.next%len(b.backends)]
			b.next++
			b.mu.Unlock()
			out, _ = net.DialTimeout("tcp", addr, time.Second)
		}
		if out == nil {
			in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		b.wg.Add(2)
		go func() { defer b.wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
		go func() { defer b.wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
	}
}

func (b *balancer) url() string { return "ws://" + b.ln.Addr().String() + "/ws" }

// recorder collects a client's events.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
}

func (r *recorder) add(e client.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) byEvent(name string) []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []client.Event
	for _, e := range r.events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

func dialNode(t *testing.T, url, user string, opts ...client.Option) (*client.Client, *recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := &recorder{}
	c, err := client.Dial(ctx, url, append([]client.Option{client.WithClientID(user),
		client.WithReconnect(50*time.Millisecond, 500*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.OnAny(rec.add)
	t.Cleanup(func() { _ = c.Close() })
	return c, rec
}

func apiCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThreeNodesOnRedis runs three real herald processes sharing one real
// redis-server and checks what a load balancer must never break.
func TestThreeNodesOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	bin := buildBinary(t)
	redis := testserver.StartRedis(t)
	nodes := []*node{
		startNode(t, bin, "n1", redis.URL()),
		startNode(t, bin, "n2", redis.URL()),
		startNode(t, bin, "n3", redis.URL()),
	}
	ctx := context.Background()

	// Clients on different nodes in one room receive each message exactly once, in order.
	var recs []*recorder
	var clients []*client.Client
	for i, n := range nodes {
		c, rec := dialNode(t, n.ws(), fmt.Sprintf("member-%d", i))
		if err := c.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		clients, recs = append(clients, c), append(recs, rec)
	}
	const msgs = 60
	for i := 0; i < msgs; i++ {
		if _, err := clients[0].Publish(ctx, "lobby", "chat", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	for i, rec := range recs {
		waitUntil(t, 5*time.Second, fmt.Sprintf("member %d got %d messages", i, msgs), func() bool { return len(rec.byEvent("chat")) >= msgs })
	}
	time.Sleep(200 * time.Millisecond) // room for duplicates to show up
	for i, rec := range recs {
		got := rec.byEvent("chat")
		if len(got) != msgs {
			t.Fatalf("member %d (on %s) got %d messages, want exactly %d", i, nodes[i].name, len(got), msgs)
		}
		for j, e := range got {
			var d struct{ N int }
			_ = json.Unmarshal(e.Data, &d)
			if d.N != j {
				t.Fatalf("member %d: message %d has n=%d: out of order", i, j, d.N)
			}
		}
	}

	// A server-API publish on one node reaches clients on the others.
	if code, body := apiCall(t, "POST", nodes[1].http()+"/api/v1/publish", `{"room":"lobby","event":"news","data":"from n2"}`); code != 200 {
		t.Fatalf("API publish: %d %v", code, body)
	}
	for i, rec := range recs {
		waitUntil(t, 5*time.Second, fmt.Sprintf("member %d got the API message", i), func() bool { return len(rec.byEvent("news")) == 1 })
	}

	// A direct message reaches all of a user's connections on all nodes.
	ada1, adaOn1 := dialNode(t, nodes[0].ws(), "ada")
	ada3, adaOn3 := dialNode(t, nodes[2].ws(), "ada")
	if code, body := apiCall(t, "POST", nodes[1].http()+"/api/v1/publish", `{"user":"ada","event":"dm","data":1}`); code != 200 {
		t.Fatalf("API direct: %d %v", code, body)
	}
	for _, rec := range []*recorder{adaOn1, adaOn3} {
		waitUntil(t, 5*time.Second, "ada's connections got the direct message", func() bool { return len(rec.byEvent("dm")) == 1 })
	}

	// A revocation through one node closes the user's connections on all (4003).
	if code, body := apiCall(t, "POST", nodes[1].http()+"/api/v1/revoke", `{"sub":"ada","reason":"locked"}`); code != 200 {
		t.Fatalf("revoke: %d %v", code, body)
	}
	for _, c := range []*client.Client{ada1, ada3} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("ada's connection still open 5 s after the revocation")
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 4003 {
			t.Fatalf("ada closed with %v, want 4003", c.Err())
		}
	}

	// Presence lists users of every node, from any node.
	code, pres := apiCall(t, "GET", nodes[2].http()+"/api/v1/rooms/lobby/presence", "")
	if code != 200 || pres["connections"] != float64(3) {
		t.Fatalf("presence: %d %v", code, pres)
	}

	// A SIGKILLed node's clients reconnect through the balancer to another
	// node and resume their session: same rooms, no re-join needed.
	lb := startBalancer(t, nodes[0].addr, nodes[1].addr, nodes[2].addr)
	kim, kimRec := dialNode(t, lb.url(), "kim")
	if err := kim.Join(ctx, "kim-room"); err != nil {
		t.Fatal(err)
	}
	firstSession := kim.SessionID()
	// The balancer is new, so kim's first connection went to backend 0.
	victim := nodes[0]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "kim resumed on another node", func() bool {
		return kim.Resumed() && kim.State() == client.Connected
	})
	if kim.SessionID() != firstSession {
		t.Fatalf("session changed on resume: %s → %s", firstSession, kim.SessionID())
	}
	if code, _ := apiCall(t, "POST", nodes[2].http()+"/api/v1/publish", `{"room":"kim-room","event":"after-failover"}`); code != 200 {
		t.Fatalf("publish after failover: %d", code)
	}
	waitUntil(t, 5*time.Second, "kim got a message after failover", func() bool { return len(kimRec.byEvent("after-failover")) == 1 })

	// The dead node's presence entries disappear once its lease lapses.
	waitUntil(t, 10*time.Second, "dead node's presence gone", func() bool {
		_, p := apiCall(t, "GET", nodes[1].http()+"/api/v1/rooms/lobby/presence", "")
		return p["connections"] == float64(2)
	})
}

// TestRedisOutageMidTraffic kills redis-server under two nodes while a
// client publishes: nothing crashes, a publish that cannot reach Redis is
// refused loudly (broker_unavailable, API 503, /readyz 503), and once
// Redis is back cross-node delivery returns within 5 s.
func TestRedisOutageMidTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	redis := testserver.StartRedis(t)
	n1 := startNode(t, bin, "o1", redis.URL())
	n2 := startNode(t, bin, "o2", redis.URL())
	ctx := context.Background()
	pub, _ := dialNode(t, n1.ws(), "publisher")
	if err := pub.Join(ctx, "feed"); err != nil {
		t.Fatal(err)
	}
	lc, lrec := dialNode(t, n2.ws(), "listener")
	if err := lc.Join(ctx, "feed"); err != nil {
		t.Fatal(err)
	}

	publish := func(i int) error {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := pub.Publish(pctx, "feed", "tick", i)
		return err
	}
	for i := 0; i < 10; i++ {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "ticks before the outage", func() bool { return len(lrec.byEvent("tick")) == 10 })

	redis.Kill()
	var refused *client.ServerError
	waitUntil(t, 5*time.Second, "publish refused while Redis is down", func() bool {
		err := publish(-1)
		return asServerError(err, &refused) && refused.Code == "broker_unavailable"
	})
	if code, body := apiCall(t, "POST", n1.http()+"/api/v1/publish", `{"room":"feed","event":"tick","data":-2}`); code != 503 || body["error"] != "broker_unavailable" {
		t.Fatalf("API publish during the outage: %d %v", code, body)
	}
	resp, err := http.Get(n1.http() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"broker":"down"`) || !strings.Contains(string(b), `"degraded"`) {
		t.Fatalf("/readyz during the outage: %d %s", resp.StatusCode, b)
	}

	redis.Restart()
	start := time.Now()
	waitUntil(t, 5*time.Second, "cross-node delivery back within 5 s", func() bool {
		if publish(1000) != nil {
			return false
		}
		for _, e := range lrec.byEvent("tick") {
			if string(e.Data) == "1000" {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
		for _, e := range lrec.byEvent("tick") {
			if string(e.Data) == "1000" {
				return true
			}
		}
		return false
	})
	t.Logf("delivery back %s after Redis restarted", time.Since(start).Round(time.Millisecond))
	for _, n := range []*node{n1, n2} {
		select {
		case err := <-n.exit:
			t.Fatalf("%s exited during the outage: %v\n%s", n.name, err, n.logs.String())
		default:
		}
	}
}

func asServerError(err error, target **client.ServerError) bool {
	return errors.As(err, target)
}

// TestTwoNodesOnNATS checks the NATS engine end to end: two herald
// processes on an embedded nats-server deliver across nodes.
func TestTwoNodesOnNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	nats := testserver.StartNATS(t)
	n1 := startNodeWith(t, bin, "nats-1", "--nats-url", nats.URL())
	n2 := startNodeWith(t, bin, "nats-2", "--nats-url", nats.URL())
	ctx := context.Background()
	a, recA := dialNode(t, n1.ws(), "a")
	b, recB := dialNode(t, n2.ws(), "b")
	for _, c := range []*client.Client{a, b} {
		if err := c.Join(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := a.Publish(ctx, "r", "n", i); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "20 messages across nodes", func() bool { return len(recB.byEvent("n")) == 20 })
	// A direct message published on node 2 reaches a's connection on node 1.
	if code, _ := apiCall(t, "POST", n2.http()+"/api/v1/publish", `{"user":"a","event":"dm"}`); code != 200 {
		t.Fatalf("API: %d", code)
	}
	waitUntil(t, 5*time.Second, "direct message across nodes", func() bool { return len(recA.byEvent("dm")) == 1 })
}

// TestRedisSharedRooms: with --redis-shared-rooms a node holds every room
// on its one subscriber connection, next to the control channel and the
// 16 user channels, and messages still arrive; without it each room has
// a subscription of its own and the shared connection holds only those
// 17.
func TestRedisSharedRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	const rooms, fixed = 20, 1 + 16
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			redis := testserver.StartRedis(t)
			args := []string{"--redis-url", redis.URL()}
			if shared {
				args = append(args, "--redis-shared-rooms")
			}
			n := startNodeWith(t, bin, "n1", args...)
			ctx := context.Background()
			c, rec := dialNode(t, n.ws(), "ada")
			for i := range rooms {
				if err := c.Join(ctx, fmt.Sprintf("room-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			want := []int{fixed + rooms}
			if !shared {
				want = []int{fixed, rooms}
			}
			got, err := redis.SubscriberChannels()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("channels per subscriber connection %v, want %v", got, want)
			}
			if code, body := apiCall(t, "POST", n.http()+"/api/v1/publish", `{"room":"room-7","event":"news","data":1}`); code != 200 {
				t.Fatalf("API publish: %d %v", code, body)
			}
			waitUntil(t, 5*time.Second, "the message in room-7", func() bool { return len(rec.byEvent("news")) == 1 })
			if logged := strings.Contains(n.logs.String(), "rooms on the shared subscriber connection"); logged != shared {
				t.Errorf("start-up log names the shared rooms: %v, want %v\n%s", logged, shared, n.logs.String())
			}
		})
	}
}
