// Package npmtest gives tests what they run with node: the npm packages of
// a package.json and its lock file, installed once per lock file into the
// user's cache directory, and files of another project's repository
// (such as a published protocol test suite) fetched at test time from a
// pinned GitHub commit rather than copied into this repository.
//
// Without node or npm a test is skipped with a message that says how to
// install them, or fails when CI is set in the environment. Without
// network access to GitHub, GitHubFiles uses a local copy named by an
// environment variable, or skips likewise.
package npmtest

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Need skips tb, or fails it when CI is set, with msg.
func Need(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// NeedNode makes sure node and npm are on PATH.
func NeedNode(tb testing.TB) {
	tb.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			Need(tb, tool+" not found on PATH; install Node.js 20 or later (Debian: apt-get install -y nodejs npm)")
		}
	}
}

// cacheRoot returns the directory the installs and downloads are kept in.
func cacheRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "herald-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Install returns a directory holding the package.json and
// package-lock.json of src and their node_modules, installed with npm ci
// the first time and reused while the lock file does not change.
func Install(tb testing.TB, src string) string {
	tb.Helper()
	NeedNode(tb)
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		tb.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(append(append(pkg, 0), lock...))
	dir := filepath.Join(cacheRoot(tb), "npm-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err == nil {
		return dir
	}
	// Install beside it and rename, so that concurrent test processes
	// never see half an install.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "npm-tmp-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock, ".installed": nil} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		Need(tb, fmt.Sprintf("npm ci in a copy of %s failed (no access to the npm registry?): %v\n%s", src, err, out))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, ".installed")); serr != nil {
			tb.Fatal(err)
		}
		// Another process got there first.
	}
	return dir
}

// GitHubFiles returns a directory holding the files under subdir of
// GitHub repository repo ("owner/name") at commit (40 hex digits),
// downloaded once from codeload.github.com and cached. When GitHub cannot
// be reached, the environment variable env may name a local checkout of
// the repository (its root) to use instead; without it the test is
// skipped, with CI set too: network access is not a tool CI installs.
func GitHubFiles(tb testing.TB, repo, commit, subdir, env string) string {
	tb.Helper()
	if local := os.Getenv(env); local != "" {
		dir := filepath.Join(local, filepath.FromSlash(subdir))
		if _, err := os.Stat(dir); err != nil {
			tb.Fatalf("%s=%s: %v", env, local, err)
		}
		return dir
	}
	dir := filepath.Join(cacheRoot(tb), "github-"+strings.ReplaceAll(repo, "/", "+")+"-"+commit)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return filepath.Join(dir, filepath.FromSlash(subdir))
	}
	url := "https://codeload.github.com/" + repo + "/tar.gz/" + commit
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "github-tmp-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := download(url, subdir, tmp); err != nil {
		// Not a missing tool that CI could install: a machine without
		// access to GitHub skips, in CI too (the summary lists the skip).
		tb.Skipf("cannot fetch %s (%v); set %s to a local checkout of github.com/%s at %s",
			url, err, env, repo, commit)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, ".complete")); serr != nil {
			tb.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(subdir))
}

// download extracts the regular files under subdir of the tarball at url
// into dst, keeping their paths relative to the repository root.
func download(url, subdir, dst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	gz, err := gzip.NewReader(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		// Paths are <name>-<commit>/<path in the repository>.
		_, rel, ok := strings.Cut(h.Name, "/")
		if !ok || h.Typeflag != tar.TypeReg || !strings.HasPrefix(rel, subdir+"/") {
			continue
		}
		clean := path.Clean(rel)
		if strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
			return fmt.Errorf("bad path %q in tarball", h.Name)
		}
		out := filepath.Join(dst, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, 16<<20))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		found = true
	}
	if !found {
		return fmt.Errorf("no %s/ in the tarball", subdir)
	}
	return nil
}
