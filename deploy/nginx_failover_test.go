package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestNginxOneRefusalDoesNotTakeTheLastNodeOut: during a rolling deploy
// one node is down (being restarted) and the other serves everyone. A
// single 503 from that node for one client (its connect hook refused the
// client with 503, or a moment's admission overload) counts as a failed
// attempt, since proxy_next_upstream lists http_503 to move a draining
// node's upgrades elsewhere. With max_fails=1 that one answer took the
// last live node out for fail_timeout, and nginx answered every client
// 502 "no live upstreams" for 10 s. The files must keep serving the
// others.
func TestNginxOneRefusalDoesNotTakeTheLastNodeOut(t *testing.T) {
	ngBin := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin, _ := buildHerald(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query string `json:"query"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(req.Query, "refuse=1") {
			_, _ = w.Write([]byte(`{"allow":false,"status":503,"code":"busy","message":"not now"}`))
			return
		}
		_, _ = w.Write([]byte(`{"allow":true}`))
	}))
	t.Cleanup(hook.Close)
	live := startHeraldNode(t, bin, "node-b", "", "--backend-url", hook.URL, "--backend-hooks", "connect",
		"--backend-secret", strings.Repeat("s", 32))
	restarting := deadAddr(t) // nothing listens: the node being restarted

	dial := func(t *testing.T, url string) (int, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			if resp == nil {
				return 0, err
			}
			return resp.StatusCode, err
		}
		c.CloseNow()
		return resp.StatusCode, nil
	}
	for _, file := range []string{"herald-stateless.conf", "herald-sticky.conf"} {
		t.Run(file, func(t *testing.T) {
			ng := startNginx(t, ngBin, file, restarting, live.addr)
			// Both nodes tried until the restarting one is out.
			for i := range 6 {
				if code, err := dial(t, ng.ws()); err != nil {
					t.Fatalf("connect %d before the refusal: %d %v", i, code, err)
				}
			}
			if code, err := dial(t, ng.ws()+"?refuse=1"); err == nil || code < 500 {
				t.Fatalf("the refused client: %d %v, want the node's 503", code, err)
			}
			for i := range 6 {
				if code, err := dial(t, ng.ws()); err != nil {
					t.Fatalf("connect %d after one client was refused 503: %d %v (nginx took the last live node out)", i, code, err)
				}
			}
		})
	}
}
