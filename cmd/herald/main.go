// Command herald runs a Herald WebSocket server and its tools.
//
//	herald serve     run the server (see herald serve --help)
//	herald version   print the version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// version may be set at build time with -ldflags "-X main.version=v1.2.3"
// (the Docker image does); without it the version comes from the build
// info Go records: the module version (a tag, or a pseudo-version from the
// commit) and the commit itself (see versionString).
var version = ""

// versionString is the version in logs and the User-Agent.
var versionString = sync.OnceValue(func() string {
	info, _ := debug.ReadBuildInfo()
	v, _ := buildVersion(version, info)
	return v
})

// buildVersion returns the version of a binary built with info (nil when
// unknown) and the line `herald version` prints.
func buildVersion(ldflags string, info *debug.BuildInfo) (version, line string) {
	version = ldflags
	settings := map[string]string{}
	goVersion := runtime.Version()
	if info != nil {
		if version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version // v1.2.3, or v0.0.0-20261205184548-f342641dd4ad(+dirty)
		}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		goVersion = info.GoVersion
	}
	if version == "" {
		version = "devel" // built without version control information (go build -buildvcs=false, a tarball)
	}
	var details []string
	if rev := settings["vcs.revision"]; rev != "" {
		d := "commit " + rev
		if t := settings["vcs.time"]; t != "" {
			d += " " + t
		}
		if settings["vcs.modified"] == "true" {
			d += " with uncommitted changes"
		}
		details = append(details, d)
	}
	details = append(details, goVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return version, "herald " + version + " (" + strings.Join(details, ", ") + ")"
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "connect":
		return runConnect(args[1:], os.Stdin, stdout, stderr)
	case "publish":
		return runPublish(args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		info, _ := debug.ReadBuildInfo()
		_, line := buildVersion(version, info)
		fmt.Fprintln(stdout, line)
		return 0
	case "help", "--help", "-help", "-h":
		usage(stdout)
		return 0
	default:
		if s := suggest(args[0], []string{"serve", "connect", "publish", "token", "bench", "version", "help"}); s != "" {
			fmt.Fprintf(stderr, "herald: unknown command %q; did you mean %s?\n\n", args[0], s)
		} else {
			fmt.Fprintf(stderr, "herald: unknown command %q\n\n", args[0])
		}
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Herald: a production WebSocket server.

Usage:
  herald serve [flags]   run the server (herald serve --help lists every flag)
  herald connect URL     interactive client: type join/publish/emit, see every frame
  herald publish [flags] publish through the server API (herald publish --help)
  herald token [flags]   print a development JWT signed with HERALD_JWT_SECRET
  herald bench [flags]   end-to-end benchmark against Node ws, Socket.IO and a floor server (herald bench --help)
  herald version         print the version
`)
}
