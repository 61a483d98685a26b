package storm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/client"
)

// Publisher sends numbered messages (the load generator's payload, its
// sequence number counting from 0 in each room) to every room, at a total
// rate, from one connection to one node that stays up.
type Publisher struct {
	kind   loadgen.Kind
	rooms  int
	cancel context.CancelFunc
	wg     sync.WaitGroup // the room goroutines
	reader sync.WaitGroup // the Socket.IO reader

	hc  *client.Client
	sio *loadgen.WSConn

	mu   sync.Mutex
	next []int64         // per room: the next number
	skip map[int][]int64 // per room: numbers given up
	errs int
	// firstErr is the first failed publish.
	firstErr string
}

// StartPublisher connects to url (a node's endpoint), joins every room
// and publishes rate messages per second over them until Stop. A Herald
// publish is acknowledged (the reply carries its msgId) and retried with
// its idempotency key until answered; a Socket.IO publish has no answer.
func StartPublisher(ctx context.Context, kind loadgen.Kind, url string, rooms int, rate float64, secret string) (*Publisher, error) {
	p := &Publisher{kind: kind, rooms: rooms, next: make([]int64, rooms), skip: map[int][]int64{}}
	tok, err := token(secret, -1)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if secret != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch kind {
	case loadgen.KindHerald:
		if p.hc, err = client.Dial(dctx, url, client.WithHeader(hdr)); err != nil {
			return nil, fmt.Errorf("storm: publisher: %w", err)
		}
		for r := 0; r < rooms; r++ {
			if err := p.hc.Join(dctx, loadgen.RoomName(r)); err != nil {
				_ = p.hc.Close()
				return nil, fmt.Errorf("storm: publisher: %w", err)
			}
		}
	case loadgen.KindSocketIO:
		if p.sio, err = loadgen.Dial(dctx, url, loadgen.DialOptions{Header: hdr}); err != nil {
			return nil, fmt.Errorf("storm: publisher: %w", err)
		}
		if err := kind.Open(p.sio, 10*time.Second); err != nil {
			p.sio.Close()
			return nil, fmt.Errorf("storm: publisher: %w", err)
		}
		for r := 0; r < rooms; r++ {
			if err := kind.Join(p.sio, loadgen.RoomName(r), r+1, 10*time.Second); err != nil {
				p.sio.Close()
				return nil, fmt.Errorf("storm: publisher: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("storm: publisher: kind %q", kind)
	}
	pctx, stop := context.WithCancel(context.Background())
	p.cancel = stop
	if p.sio != nil {
		p.reader.Add(1)
		go func() { // answers pings, drops the events it gets back
			defer p.reader.Done()
			for {
				msg, err := p.sio.Read()
				if err != nil {
					return
				}
				kind.Control(p.sio, msg)
			}
		}()
	}
	// One goroutine per room, each publishing its room's numbers in order.
	every := time.Duration(float64(time.Second) * float64(rooms) / rate)
	for r := 0; r < rooms; r++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Spread the rooms over the period.
			if !sleep(pctx, every*time.Duration(r)/time.Duration(rooms)) {
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				p.publish(pctx, r)
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return p, nil
}

// publish sends room r's next number.
func (p *Publisher) publish(ctx context.Context, r int) {
	p.mu.Lock()
	seq := p.next[r]
	p.next[r]++
	p.mu.Unlock()
	data := loadgen.AppendPayload(nil, 0, seq, time.Now().UnixNano(), 0)
	room := loadgen.RoomName(r)
	var err error
	if p.hc != nil {
		// Retried until answered: the idempotency key makes a retry
		// count once in a room with history.
		deadline := time.Now().Add(20 * time.Second)
		for {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, err = p.hc.Publish(cctx, room, "n", json.RawMessage(data), client.WithIdempotencyKey(fmt.Sprintf("%s-%d", room, seq)))
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			var se *client.ServerError
			if errors.As(err, &se) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		err = p.sio.WriteText(p.kind.AppendPublish(nil, room, data))
	}
	if err != nil {
		p.mu.Lock()
		p.skip[r] = append(p.skip[r], seq)
		p.errs++
		if p.firstErr == "" {
			p.firstErr = err.Error()
		}
		p.mu.Unlock()
	}
}

// Stop ends publishing and returns, per room, how many numbers were used
// and which of them were given up (not published for sure), with the
// count of failed publishes and the first error.
func (p *Publisher) Stop() (published []int64, skip map[int][]int64, failed int, firstErr string) {
	p.cancel()
	p.wg.Wait()
	if p.sio != nil {
		p.sio.Close() // ends the reader
		p.reader.Wait()
	}
	if p.hc != nil {
		_ = p.hc.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.next...), p.skip, p.errs, p.firstErr
}

// Counts returns, per room, how many numbers were used so far.
func (p *Publisher) Counts() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.next...)
}
