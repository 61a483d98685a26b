package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrt/herald/client"
)

// connectRequestTimeout bounds one command typed in `herald connect`.
const connectRequestTimeout = 10 * time.Second

const connectHelp = `Commands (one per line):
  join ROOM                  join a room (joined again after every reconnect)
  leave ROOM                 leave a room
  publish ROOM EVENT [JSON]  publish to a room you joined
  emit EVENT [JSON]          send a custom event to the server's hook
  {...}                      send a raw JSON frame as is
  help                       this list
  quit                       close the connection and exit
Every frame from the server is printed on stdout as one JSON line; states
and errors go to stderr.
`

// runConnect is `herald connect URL`: an interactive client, like wscat,
// built on the client package, so it reconnects and re-joins by itself.
func runConnect(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newEnvFlags("connect", stdout)
	token := f.String("token", "", "bearer token sent on every (re)connect")
	clientID := f.String("client-id", "", "X-Client-Id: the user id in anonymous mode")
	f.header = "Usage: herald connect URL [--token T] [--client-id ID]\n\nURL is the WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws.\n"
	f.footer = "\n" + connectHelp
	flagArgs, pos := splitArgs(args, f.fs)
	if err := f.parse(flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageFailed(stderr, "connect", err)
	}
	if len(pos) != 1 {
		return usageFailed(stderr, "connect", errors.New("give one URL, the WebSocket endpoint (e.g. ws://127.0.0.1:8080/ws)"))
	}
	if u, err := url.Parse(pos[0]); err != nil || u.Host == "" ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		return usageFailed(stderr, "connect", fmt.Errorf("%q is not a WebSocket URL: give it with its scheme and host, "+
			"e.g. ws://127.0.0.1:8080/ws (wss:// with TLS)", pos[0]))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errw := &lockedWriter{w: stderr}
	opts := []client.Option{
		client.WithFrameHandler(func(frame []byte) {
			var line bytes.Buffer
			if json.Compact(&line, frame) != nil {
				line.Reset()
				line.Write(frame)
			}
			line.WriteByte('\n')
			_, _ = stdout.Write(line.Bytes())
		}),
		client.WithStateHandler(func(s client.State) { fmt.Fprintf(errw, "# %s\n", s) }),
	}
	if *token != "" {
		opts = append(opts, client.WithTokenProvider(func(context.Context) (string, error) { return *token, nil }))
	}
	if *clientID != "" {
		opts = append(opts, client.WithClientID(*clientID))
	}
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	c, err := client.Dial(dialCtx, pos[0], opts...)
	cancel()
	if err != nil {
		fmt.Fprintf(errw, "herald connect: %v\n", err)
		if hint := dialHint(pos[0], err); hint != "" {
			fmt.Fprintf(errw, "herald connect: %s\n", hint)
		}
		return 1
	}

	lines, stopLines := make(chan string), make(chan struct{})
	defer close(stopLines)
	go readLines(stdin, lines, stopLines)
	for {
		select {
		case line, ok := <-lines:
			if !ok || !connectCommand(ctx, c, line, errw) {
				if err := c.Close(); err != nil {
					fmt.Fprintf(errw, "herald connect: close: %v\n", err)
				}
				return 0
			}
		case <-c.Done():
			fmt.Fprintf(errw, "herald connect: %v\n", c.Err())
			return 1
		case <-ctx.Done():
			_ = c.Close()
			return 0
		}
	}
}

// dialHint says what to check after the first dial of rawURL failed with
// err, for the mistakes a newcomer makes: no server there, or a URL whose
// path is not the WebSocket endpoint (a page or a 404 answers instead of
// an upgrade; Herald's own refusals carry an error code and say why).
func dialHint(rawURL string, err error) string {
	u, perr := url.Parse(rawURL)
	if perr != nil {
		return ""
	}
	var he *client.HandshakeError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens at " + u.Host + ": start herald serve, or check the URL's host and port"
	case errors.As(err, &he) && he.Code == "" && he.StatusCode != http.StatusServiceUnavailable:
		return fmt.Sprintf("%s answered HTTP %d, not a WebSocket upgrade: is %q the server's WebSocket path? "+
			"Herald's is /ws unless its --path says otherwise, e.g. %s://%s/ws", u.Host, he.StatusCode, u.Path, u.Scheme, u.Host)
	}
	return ""
}

// readLines sends stdin's lines to lines and closes it at the end of input.
// After stop it returns with its next line: a blocked read of a terminal
// cannot be interrupted, and the process exits anyway.
func readLines(stdin io.Reader, lines chan<- string, stop <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-stop:
			return
		}
	}
}

// connectCommand runs one input line and reports false on quit.
func connectCommand(ctx context.Context, c *client.Client, line string, errw io.Writer) bool {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, connectRequestTimeout)
	defer cancel()
	if strings.HasPrefix(line, "{") {
		if err := c.Send(ctx, []byte(line)); err != nil {
			fmt.Fprintf(errw, "error: %v\n", err)
		}
		return true
	}
	cmd, rest := cutWord(line)
	var err error
	switch cmd {
	case "quit", "exit":
		return false
	case "help":
		fmt.Fprint(errw, connectHelp)
	case "join", "leave":
		room, extra := cutWord(rest)
		if room == "" || extra != "" {
			err = fmt.Errorf("usage: %s ROOM", cmd)
		} else if cmd == "join" {
			err = c.Join(ctx, room)
		} else {
			err = c.Leave(ctx, room)
		}
	case "publish":
		room, rest := cutWord(rest)
		event, data := cutWord(rest)
		var raw json.RawMessage
		if raw, err = jsonArg(data); err == nil {
			if room == "" || event == "" {
				err = errors.New("usage: publish ROOM EVENT [JSON]")
			} else {
				_, err = c.Publish(ctx, room, event, raw)
			}
		}
	case "emit":
		event, data := cutWord(rest)
		var raw json.RawMessage
		if raw, err = jsonArg(data); err == nil {
			if event == "" {
				err = errors.New("usage: emit EVENT [JSON]")
			} else {
				_, err = c.Emit(ctx, event, raw)
			}
		}
	default:
		err = fmt.Errorf("unknown command %q (try help)", cmd)
	}
	if err != nil {
		fmt.Fprintf(errw, "error: %v\n", err)
	}
	return true
}

// jsonArg parses an optional JSON argument; empty means no data.
func jsonArg(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("not valid JSON: %s", s)
	}
	return json.RawMessage(s), nil
}

// cutWord splits s at its first run of spaces.
func cutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], strings.TrimSpace(s[i:])
	}
	return s, ""
}

// splitArgs separates flags (and their values) from positional arguments,
// so flags may come after the URL as well as before it.
func splitArgs(args []string, fs *flag.FlagSet) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if fl := fs.Lookup(name); fl != nil && !isBoolFlag(fl) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

func isBoolFlag(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// lockedWriter serialises writes from the command loop and the client's
// dispatch goroutine.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
