package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
)

// noLostPublishes is the size of each numbered stream: small, so that CI
// stays fast; the faults fall at a third and two thirds of it.
const noLostPublishes = 300

// TestNoMessageLost runs three real nodes on one engine with a room that
// keeps history, and a client joined to it on every node. A publisher
// sends a numbered stream through the API, round robin over the nodes,
// while the test breaks the nodes' subscriptions twice. Every publish
// answered 200 must reach every client exactly once.
func TestNoMessageLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	t.Parallel()
	bin := buildBinary(t)
	history := "--history=feed:*=10000/10m"
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (flags []string, fault func())
	}{
		{name: "redis client kill type pubsub", start: func(t *testing.T) ([]string, func()) {
			redis := testserver.StartRedis(t)
			return []string{"--redis-url", redis.URL()}, func() {
				if _, err := redis.Command("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
					t.Error(err)
				}
			}
		}},
		{name: "redis restart", start: func(t *testing.T) ([]string, func()) {
			redis := testserver.StartRedis(t)
			return []string{"--redis-url", redis.URL()}, redis.RestartWithData
		}},
		{name: "nats restart", start: func(t *testing.T) ([]string, func()) {
			nats := testserver.StartNATS(t)
			return []string{"--nats-url", nats.URL()}, nats.Restart
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			engine, fault := tt.start(t)
			var nodes []*node
			for i := range 3 {
				nodes = append(nodes, startNodeWith(t, bin, fmt.Sprintf("nolost-%d", i), append(engine, history)...))
			}
			ctx := context.Background()
			var recs []*recorder
			for i, n := range nodes {
				c, rec := dialNode(t, n.ws(), fmt.Sprintf("reader-%d", i))
				if err := c.Join(ctx, "feed:x"); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
			}
			// One publisher per node, numbers i ≡ k (mod 3) through node
			// k, about 200 publishes a second in all: while the nodes
			// come back one after the other, each keeps publishing.
			var (
				pubMu    sync.Mutex
				answered = make(map[int]bool)
				refused  int
				pubWG    sync.WaitGroup
				faultAt  = []int{noLostPublishes / 3, 2 * noLostPublishes / 3}
				faults   = make([]chan struct{}, len(faultAt))
			)
			for f := range faults {
				faults[f] = make(chan struct{})
			}
			httpc := &http.Client{Timeout: 5 * time.Second}
			for k, n := range nodes {
				pubWG.Add(1)
				go func() {
					defer pubWG.Done()
					for i := k; i < noLostPublishes; i += len(nodes) {
						for f, at := range faultAt {
							if i >= at {
								<-faults[f] // the stream goes on once the fault began
							}
						}
						req, _ := http.NewRequest("POST", n.http()+"/api/v1/publish",
							strings.NewReader(`{"room":"feed:x","event":"n","data":`+strconv.Itoa(i)+`}`))
						req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
						resp, err := httpc.Do(req)
						if err == nil {
							resp.Body.Close()
						}
						pubMu.Lock()
						if err == nil && resp.StatusCode == http.StatusOK {
							answered[i] = true
						} else {
							refused++
						}
						pubMu.Unlock()
						time.Sleep(15 * time.Millisecond)
					}
				}()
			}
			for f, at := range faultAt {
				waitUntil(t, 20*time.Second, "publishes before the fault", func() bool {
					pubMu.Lock()
					defer pubMu.Unlock()
					return len(answered)+refused >= at-len(nodes)
				})
				fault()
				close(faults[f])
			}
			pubWG.Wait()
			if len(answered) < noLostPublishes/2 {
				t.Fatalf("only %d of %d publishes answered 200", len(answered), noLostPublishes)
			}
			count := func(rec *recorder) map[int]int {
				seen := make(map[int]int)
				for _, e := range rec.byEvent("n") {
					v, err := strconv.Atoi(string(e.Data))
					if err != nil {
						t.Fatalf("payload %q", e.Data)
					}
					seen[v]++
				}
				return seen
			}
			var mu sync.Mutex
			report := func(rec *recorder) (lost, dup int) {
				mu.Lock()
				defer mu.Unlock()
				seen := count(rec)
				for i := range answered {
					switch seen[i] {
					case 0:
						lost++
					case 1:
					default:
						dup++
					}
				}
				return lost, dup
			}
			for k, rec := range recs {
				deadline := time.Now().Add(10 * time.Second)
				for {
					lost, dup := report(rec)
					if lost == 0 || time.Now().After(deadline) {
						t.Logf("client on node %d: %d answered 200 (%d refused), %d lost, %d duplicated", k, len(answered), refused, lost, dup)
						if lost != 0 || dup != 0 {
							t.Errorf("client on node %d: %d of %d answered publishes lost, %d duplicated", k, lost, len(answered), dup)
						}
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
}
