package rolling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"
)

var execLookPath = exec.LookPath

// publisher sends numbered messages to every room through the API: one
// goroutine per room, each message after the previous one was answered,
// so a room's numbers are its publish order. A publish that fails (the
// node behind nginx went away, 502, 503, 504) is retried with the same
// idempotency key until answered 200 or given up.
type publisher struct {
	o    Options
	base string
	http *http.Client

	mu      sync.Mutex
	done    []map[int]bool // per room: numbers answered 200
	gave    int
	retries int
	slowest time.Duration // the longest publish, retries included
	errs    map[string]int
}

// giveUpAfter bounds the retries of one publish.
const giveUpAfter = 20 * time.Second

func newPublisher(o Options, base string) *publisher {
	p := &publisher{o: o, base: base, http: &http.Client{Timeout: 5 * time.Second}}
	p.done = make([]map[int]bool, o.Rooms)
	for i := range p.done {
		p.done[i] = make(map[int]bool)
	}
	return p
}

func (p *publisher) start(ctx context.Context, wg *sync.WaitGroup) {
	every := time.Duration(float64(time.Second) * float64(p.o.Rooms) / float64(p.o.Rate))
	for r := 0; r < p.o.Rooms; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				ok := p.publish(ctx, r, n)
				p.mu.Lock()
				if ok {
					p.done[r][n] = true
				} else {
					p.gave++
				}
				p.mu.Unlock()
			}
		}()
	}
}

// publish sends message n to room r, retrying, and reports whether it
// was answered 200. A publish in progress when ctx ends is finished.
func (p *publisher) publish(ctx context.Context, r, n int) bool {
	body := fmt.Sprintf(`{"room":%q,"event":"n","data":%d,"ack":true}`, roomName(r), n)
	key := fmt.Sprintf("%s-%d", roomName(r), n)
	start := time.Now()
	defer func() {
		p.mu.Lock()
		p.slowest = max(p.slowest, time.Since(start))
		p.mu.Unlock()
	}()
	deadline := time.Now().Add(giveUpAfter)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
		}
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), "POST", p.base+"/api/v1/publish", strings.NewReader(body))
		if err != nil {
			return false
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := p.http.Do(req)
		why := ""
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
			why = resp.Status
		} else {
			why = "error"
			if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
				why = "timeout"
			}
		}
		p.mu.Lock()
		if p.errs == nil {
			p.errs = map[string]int{}
		}
		p.errs[why]++
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (p *publisher) published(r int) map[int]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]bool, len(p.done[r]))
	for n := range p.done[r] {
		out[n] = true
	}
	return out
}

func (p *publisher) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, d := range p.done {
		n += len(d)
	}
	return n
}

func (p *publisher) givenUp() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gave
}

// stats returns the retries, the slowest publish and the failed
// attempts by cause.
func (p *publisher) stats() (int, time.Duration, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := make(map[string]int, len(p.errs))
	for k, v := range p.errs {
		errs[k] = v
	}
	return p.retries, p.slowest, errs
}
