package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Errors a hook call fails with; herald clients see them as the protocol
// codes backend_unavailable and backend_timeout.
var (
	// ErrUnavailable: the backend is down, refused the connection,
	// answered with a status other than 2xx or with a body that is not
	// the hook's JSON, or the circuit breaker is open.
	ErrUnavailable = errors.New("backend: unavailable")
	// ErrTimeout: no answer within the hook's timeout (or no free slot
	// for the call within it).
	ErrTimeout = errors.New("backend: timeout")
)

// maxResponseBytes bounds a backend's answer.
const maxResponseBytes = 1 << 20

// call posts body as JSON to hook and decodes the answer into out (nil:
// the answer is not read), within the hook's timeout. safe says the
// request may be sent twice (it asks a question, changes nothing).
func (p *Proxy) call(ctx context.Context, hook, requestID string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout(hook))
	defer cancel()
	start := time.Now()
	p.m.calls.WithLabelValues(hook).Inc()
	err := p.doCall(ctx, hook, requestID, body, out)
	p.m.duration.WithLabelValues(hook).Observe(time.Since(start).Seconds())
	if err != nil {
		p.log.WarnContext(ctx, "backend call failed", "hook", hook, "err", err, "request_id", requestID)
	}
	return err
}

func (p *Proxy) doCall(ctx context.Context, hook, requestID string, body, out any) error {
	if !p.breaker.allow(time.Now()) {
		p.m.errors.WithLabelValues(hook, "breaker_open").Inc()
		return fmt.Errorf("%w: circuit breaker open after repeated failures", ErrUnavailable)
	}
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		p.breaker.release()
		p.m.errors.WithLabelValues(hook, "overloaded").Inc()
		return fmt.Errorf("%w: %d calls already in flight on this node", ErrTimeout, cap(p.sem))
	}
	b, err := json.Marshal(body)
	if err != nil {
		p.breaker.release()
		return fmt.Errorf("backend: encode %s request: %w", hook, err)
	}
	safe := hook == HookConnect || hook == HookJoin
	for attempt := 0; ; attempt++ {
		kind, err := p.post(ctx, hook, requestID, b, out)
		if err == nil {
			p.breaker.done(true, time.Now())
			return nil
		}
		retry := attempt < p.cfg.Retries && ctx.Err() == nil &&
			(kind == "refused" || (safe && (kind == "unavailable" || kind == "status_retry")))
		if !retry {
			p.breaker.done(false, time.Now())
			p.m.errors.WithLabelValues(hook, errorLabel(kind)).Inc()
			return err
		}
		p.m.retries.WithLabelValues(hook).Inc()
	}
}

// errorLabel maps post's failure kinds to the metric's.
func errorLabel(kind string) string {
	switch kind {
	case "refused":
		return "unavailable"
	case "status_retry":
		return "status"
	}
	return kind
}

// post sends one request and reports how it failed: "refused" (never
// sent: the connection could not be made), "unavailable" (no answer),
// "timeout", "status" or "status_retry" (a status other than 2xx; the
// second for 502, 503, 504), "garbage" (not the hook's JSON).
func (p *Proxy) post(ctx context.Context, hook, requestID string, body []byte, out any) (kind string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+hook, bytes.NewReader(body))
	if err != nil {
		return "unavailable", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderHook, hook)
	if requestID != "" {
		req.Header.Set(HeaderRequestID, requestID)
	}
	if len(p.cfg.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(p.cfg.Secret, body, time.Now()))
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "timeout", fmt.Errorf("%w: no answer from %s within %s", ErrTimeout, hook, p.timeout(hook))
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return "refused", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return "unavailable", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return "timeout", fmt.Errorf("%w: answer from %s not read within %s", ErrTimeout, hook, p.timeout(hook))
	case err != nil:
		return "unavailable", fmt.Errorf("%w: reading the answer: %v", ErrUnavailable, err)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		kind := "status"
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
			kind = "status_retry"
		}
		return kind, fmt.Errorf("%w: %s answered %d: %s", ErrUnavailable, hook, resp.StatusCode, snippet(data))
	case len(data) > maxResponseBytes:
		return "garbage", fmt.Errorf("%w: %s answered more than %d bytes", ErrUnavailable, hook, maxResponseBytes)
	}
	if out == nil {
		return "", nil
	}
	if err := decodeStrict(data, out); err != nil {
		return "garbage", fmt.Errorf("%w: %s answered something that is not its JSON: %v: %s", ErrUnavailable, hook, err, snippet(data))
	}
	return "", nil
}

// decodeStrict decodes one JSON object into out, nothing after it.
func decodeStrict(data []byte, out any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(out); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	if v, ok := out.(interface{ check() error }); ok {
		return v.check()
	}
	return nil
}

// snippet is the start of a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func (p *Proxy) timeout(hook string) time.Duration {
	if d, ok := p.cfg.HookTimeouts[hook]; ok {
		return d
	}
	return p.cfg.Timeout
}
