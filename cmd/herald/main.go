// Command herald runs a Herald WebSocket server and its tools.
//
//	herald serve     run the server (see herald serve --help)
//	herald version   print the version
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
		fmt.Fprintf(stdout, "herald %s\n", version)
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
