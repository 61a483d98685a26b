package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/protocol"
)

// maxPublishResponse bounds the response body `herald publish` reads.
const maxPublishResponse = 1 << 20

// runPublish is `herald publish`: one POST to the server API's
// /api/v1/publish, for scripts and operators.
func runPublish(args []string, stdout, stderr io.Writer) int {
	f := newEnvFlags("publish", stdout)
	url := f.String("url", "http://127.0.0.1:8080", "base URL of the Herald server")
	apiKey := f.String("api-key", "", "server API key (required)")
	fs := f.fs
	room := fs.String("room", "", "room to publish to (or --user)")
	user := fs.String("user", "", "user whose connections get the message (or --room)")
	event := fs.String("event", "", "event name (required)")
	data := fs.String("data", "", "JSON payload, e.g. '{\"text\":\"hi\"}' (optional)")
	ack := fs.Bool("ack", false, "ask recipients to acknowledge; unacknowledged messages are redelivered")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of the request")
	f.header = "Usage: herald publish --room ROOM | --user USER --event EVENT [--data JSON] [flags]\n"
	if err := f.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageFailed(stderr, "publish", err)
	}
	usageErr := func(format string, a ...any) int {
		return usageFailed(stderr, "publish", fmt.Errorf(format, a...))
	}
	switch {
	case *apiKey == "":
		return usageErr("an API key is required: --api-key or HERALD_API_KEY")
	case (*room == "") == (*user == ""):
		return usageErr("give exactly one of --room and --user")
	case *event == "":
		return usageErr("--event is required")
	case *data != "" && !json.Valid([]byte(*data)):
		return usageErr("--data is not valid JSON: %s", *data)
	}

	body, err := protocol.Marshal(herald.PublishRequest{
		Room: *room, User: *user, Event: *event, Data: json.RawMessage(*data), Ack: *ack,
	})
	if err != nil {
		return usageErr("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	endpoint := strings.TrimRight(*url, "/") + "/api/v1/publish"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return usageErr("--url: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+*apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald/"+versionString())

	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "herald publish: %v\n", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(stderr, "herald publish: nothing listens at %s: start herald serve, or give its address with --url or HERALD_URL\n", *url)
		}
		return 1
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxPublishResponse))
	if err != nil {
		fmt.Fprintf(stderr, "herald publish: reading the response: %v\n", err)
		return 1
	}
	respBody = bytes.TrimSpace(respBody)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "herald publish: %s: %s\n", resp.Status, respBody)
		if resp.StatusCode == http.StatusUnauthorized {
			fmt.Fprintf(stderr, "herald publish: the server's API key is its --api-key (HERALD_API_KEY) or, without one, "+
				"the key it generated and logged once at start (api_key=hk_…)\n")
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", respBody)
	return 0
}
