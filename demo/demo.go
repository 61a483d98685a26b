package demo

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:generate cp ../clients/js/src/herald.js static/herald.js

// Prefix is the path Handler expects to be mounted at.
const Prefix = "/demo/"

//go:embed static
var static embed.FS

// csp keeps the page to its own scripts and styles, and its connections to
// its own origin (WebSocket included).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the demo under Prefix: mount it with
//
//	mux.Handle(demo.Prefix, demo.Handler())
//
// /demo/ is the chat page, /demo/herald.js the client it imports.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
