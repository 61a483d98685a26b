package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/admin"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
)

// TestClusterOverRedis: the console on one node sees and acts on the
// other through the engine: both nodes in the overview, a connection on
// the other node found and closed, the other node drained.
func TestClusterOverRedis(t *testing.T) {
	redis := testserver.StartRedis(t)
	start := func(id string, console bool) *node {
		b, err := redisbroker.New(redisbroker.Config{URL: redis.URL()})
		if err != nil {
			t.Fatal(err)
		}
		cfg := herald.Config{NodeID: id, Broker: b}
		if console {
			cfg.Admin = &admin.Config{Password: password}
		}
		return startNode(t, cfg)
	}
	a := start("a", true)
	b := start("b", false) // no console of its own: it still answers a's
	br := newBrowser(t, a)
	br.login()

	overview := func() map[string]float64 {
		_, out, _ := br.do("GET", "api/overview", nil)
		conns := map[string]float64{}
		for _, n := range out["nodes"].([]any) {
			n := n.(map[string]any)
			conns[n["node"].(string)] = n["connections"].(float64)
		}
		return conns
	}
	eventually(t, "both nodes in the overview", func() bool { c := overview(); return len(c) == 2 && c["b"] == 0 })
	ada := connect(t, b, "ada")
	eventually(t, "b counting ada", func() bool { return overview()["b"] == 1 })

	_, out, _ := br.do("GET", "api/connections?user=ada", nil)
	list := out["connections"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["node"] != "b" {
		t.Fatalf("ada's connections: %v", out)
	}
	id := list[0].(map[string]any)["id"].(string)
	if code, out := br.post("api/disconnect", map[string]string{"conn": id}); code != 200 || out["node"] != "b" {
		t.Fatalf("disconnect on b: %d %v", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := ada.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != 4004 {
				t.Fatalf("ada closed with %v, want 4004", err)
			}
			break
		}
	}

	if code, out := br.post("api/drain", map[string]string{"node": "b"}); code != 200 {
		t.Fatalf("drain b: %d %v", code, out)
	}
	eventually(t, "b draining", b.srv.Draining)
	if code, _ := br.post("api/drain", map[string]string{"node": "nobody"}); code != http.StatusGatewayTimeout {
		t.Fatalf("drain of an unknown node: %d, want 504", code)
	}
}
