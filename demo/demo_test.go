package demo_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/heraldrt/herald/demo"
)

// TestEmbeddedClientIsCurrent fails when static/herald.js, which the binary
// embeds, is not the client in clients/js.
func TestEmbeddedClientIsCurrent(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../clients/js/src/herald.js")
	if err != nil {
		t.Fatalf("read the client source: %v", err)
	}
	res := get(t, newServer(t), "/demo/herald.js")
	if !bytes.Equal(res.body, src) {
		t.Fatal("demo/static/herald.js differs from clients/js/src/herald.js: run `go generate ./demo`")
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	tests := []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		contains    string
	}{
		{name: "page", path: "/demo/", status: 200, contentType: "text/html", contains: `<script type="module" src="app.js">`},
		{name: "index.html goes to the directory", path: "/demo/index.html", status: 301},
		{name: "app", path: "/demo/app.js", status: 200, contentType: "text/javascript", contains: `from './herald.js'`},
		{name: "client", path: "/demo/herald.js", status: 200, contentType: "text/javascript", contains: "export class HeraldClient"},
		{name: "style", path: "/demo/style.css", status: 200, contentType: "text/css"},
		{name: "missing", path: "/demo/nope.js", status: 404},
		{name: "bare prefix redirects", path: "/demo", status: 307},
		{name: "POST refused", method: http.MethodPost, path: "/demo/", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			res := do(t, ts, method, tc.path)
			if res.status != tc.status {
				t.Fatalf("%s %s: status %d, want %d", method, tc.path, res.status, tc.status)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s…", ct, tc.contentType)
			}
			if !strings.Contains(string(res.body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.status == 200 {
				for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
					if res.header.Get(h) == "" {
						t.Errorf("no %s header", h)
					}
				}
			}
		})
	}
}

// TestHandlerNoEscape calls Handler directly, as a mux that does not clean
// paths would: nothing outside static/ is reachable.
func TestHandlerNoEscape(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/demo/../demo.go", "/demo/..%2fdemo.go", "/demo/static/../../go.mod"} {
		req := httptest.NewRequest(http.MethodGet, "http://h.test/", nil)
		req.URL.Path = path
		rec := httptest.NewRecorder()
		demo.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Errorf("GET %s: 200, want a refusal; body starts %.40q", path, rec.Body.String())
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// newServer mounts the demo the way the herald binary does, beside a
// catch-all that stands in for the Herald handler.
func newServer(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(demo.Prefix, demo.Handler())
	mux.Handle("/", http.NotFoundHandler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func get(t testing.TB, ts *httptest.Server, path string) response {
	t.Helper()
	res := do(t, ts, http.MethodGet, path)
	if res.status != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, res.status)
	}
	return res
}

func do(t testing.TB, ts *httptest.Server, method, path string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Redirects are part of what is tested.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}
