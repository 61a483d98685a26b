package backend_test

import (
	"net/http"
	"testing"

	"github.com/heraldrt/herald/backend"
)

// BenchmarkConnect dials from 8×GOMAXPROCS goroutines at once, with the
// connect hook sent to a local backend and without (the emit hook only,
// which a connect does not call).
func BenchmarkConnect(b *testing.B) {
	for _, bc := range []struct {
		name  string
		hooks []string
	}{{"no connect hook", []string{"emit"}}, {"connect proxy", []string{"connect"}}} {
		b.Run(bc.name, func(b *testing.B) {
			fb := newFakeBackend(b, answer)
			n := startNode(b, backend.Config{URL: fb.srv.URL, Hooks: bc.hooks})
			h := http.Header{"Authorization": {"Bearer bench"}}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, _, err := dialErr(b, n.url, h)
					if err != nil {
						b.Error(err)
						return
					}
					_ = c.c.CloseNow()
				}
			})
		})
	}
}
