package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/transport"
)

// TestWritesInTheBinary: the node logs how it writes to clients
// (io_uring where the kernel allows it, writev with --io-uring off), and
// clients get every message, in order, either way.
func TestWritesInTheBinary(t *testing.T) {
	t.Parallel()
	auto := "writev"
	if transport.IOURing() {
		auto = "io_uring"
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"auto", nil, auto},
		{"off", []string{"--io-uring", "off"}, "writev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startBinary(t, nil, append([]string{"--api-key", clusterAPIKey}, tc.args...)...)
			waitLogged(t, srv.logs, `"writes":"`+tc.want+`"`)
			ctx := context.Background()
			var recs []*recorder
			for i := range 20 {
				c, rec := dialNode(t, wsURL(srv.base), fmt.Sprintf("member-%d", i))
				if err := c.Join(ctx, "w"); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
			}
			const msgs = 50
			for i := range msgs {
				body := fmt.Sprintf(`{"room":"w","event":"n","data":%d}`, i)
				if code, resp := apiCall(t, "POST", srv.base+"/api/v1/publish", body); code != 200 {
					t.Fatalf("publish %d: %d %v", i, code, resp)
				}
			}
			for i, rec := range recs {
				waitUntil(t, 5*time.Second, fmt.Sprintf("member %d got %d messages", i, msgs), func() bool { return len(rec.byEvent("n")) >= msgs })
				for j, e := range rec.byEvent("n") {
					var n int
					if err := json.Unmarshal(e.Data, &n); err != nil || n != j {
						t.Fatalf("member %d: message %d is %s", i, j, e.Data)
					}
				}
			}
		})
	}
}
