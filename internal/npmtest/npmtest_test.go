package npmtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDownload(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
		want    map[string]string // path under dst → content
	}{
		{"subdir only", map[string]string{
			"repo-abc/test-suite/test.js":     "suite",
			"repo-abc/test-suite/lib/util.js": "util",
			"repo-abc/README.md":              "readme",
		}, "", map[string]string{"test-suite/test.js": "suite", "test-suite/lib/util.js": "util"}},
		{"escaping path", map[string]string{"repo-abc/test-suite/../../evil": "x"}, "bad path", nil},
		{"no subdir", map[string]string{"repo-abc/README.md": "readme"}, "no test-suite/", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tarball(t, tt.files)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
			defer ts.Close()
			dst := t.TempDir()
			err := download(ts.URL, "test-suite", dst)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				got, err := os.ReadFile(filepath.Join(dst, name))
				if err != nil || string(got) != want {
					t.Fatalf("%s = %q, %v; want %q", name, got, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dst, "README.md")); err == nil {
				t.Fatal("README.md outside the subdir was extracted")
			}
		})
	}
}
