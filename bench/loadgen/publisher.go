package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher publishes scenario payloads to the rooms from a few
// connections, each a member of the rooms it publishes to (Herald requires
// it). Room r is published to by connection r % len(conns) only, so the
// messages of one room and step reach subscribers in sequence order.
type Publisher struct {
	kind    Kind
	rooms   int
	conns   []*pubConn
	readers sync.WaitGroup
	// errs counts the error frames the server answered (Herald v1: a
	// publication refused, e.g. overloaded): messages counted as
	// published that were not.
	errs atomic.Int64
}

// Errors returns how many error frames the publishers got so far.
func (p *Publisher) Errors() int64 { return p.errs.Load() }

var errorFrame = []byte(`"type":"error"`)

type pubConn struct {
	c     *WSConn
	rooms []int
	buf   []byte
	data  []byte
}

// NewPublisher connects n publisher connections to url (an endpoint URL
// for kind) and joins rooms 0..rooms-1 among them.
func NewPublisher(ctx context.Context, kind Kind, url string, rooms, n int, header http.Header, localIP net.IP) (*Publisher, error) {
	n = max(1, min(n, rooms))
	p := &Publisher{kind: kind, rooms: rooms}
	for i := 0; i < n; i++ {
		c, err := Dial(ctx, url, DialOptions{LocalIP: localIP, Header: header})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("loadgen: publisher: %w", err)
		}
		pc := &pubConn{c: c}
		p.conns = append(p.conns, pc)
		if err := kind.Open(c, 15*time.Second); err != nil {
			p.Close()
			return nil, fmt.Errorf("loadgen: publisher: %w", err)
		}
		for r := i; r < rooms; r += n {
			if err := kind.Join(c, RoomName(r), r+1, 15*time.Second); err != nil {
				p.Close()
				return nil, fmt.Errorf("loadgen: publisher: %w", err)
			}
			pc.rooms = append(pc.rooms, r)
		}
	}
	// Publishers are members of their rooms and get every message back:
	// read and drop them, or the server would count them as slow.
	for _, pc := range p.conns {
		p.readers.Add(1)
		go func() {
			defer p.readers.Done()
			for {
				msg, err := pc.c.Read()
				if err != nil {
					return
				}
				if !kind.Control(pc.c, msg) && bytes.Contains(msg, errorFrame) {
					p.errs.Add(1)
				}
			}
		}()
	}
	return p, nil
}

// Run publishes msgsPerSec messages per second in total, round robin over
// the rooms, for d, with payloads of about size bytes tagged with step. It
// returns how many messages it published to each room. If the server
// pushes back (a blocked socket) the achieved rate is lower than asked.
func (p *Publisher) Run(ctx context.Context, step int, msgsPerSec float64, size int, d time.Duration) ([]int64, error) {
	published := make([]int64, p.rooms)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	perConn := msgsPerSec / float64(len(p.conns))
	start := time.Now()
	for _, pc := range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts := make([]int64, p.rooms)
			err := pc.run(ctx, p.kind, step, perConn, size, start, d, counts)
			mu.Lock()
			defer mu.Unlock()
			for r, n := range counts {
				published[r] += n
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return published, firstErr
}

func (pc *pubConn) run(ctx context.Context, kind Kind, step int, rate float64, size int, start time.Time, d time.Duration, counts []int64) error {
	const tick = time.Millisecond
	var sent int64
	end := start.Add(d)
	for {
		now := time.Now()
		if now.After(end) || ctx.Err() != nil {
			return ctx.Err()
		}
		due := int64(rate*now.Sub(start).Seconds()) + 1
		for ; sent < due; sent++ {
			room := pc.rooms[int(sent)%len(pc.rooms)]
			pc.data = AppendPayload(pc.data[:0], step, counts[room], time.Now().UnixNano(), size)
			pc.buf = kind.AppendPublish(pc.buf[:0], RoomName(room), pc.data)
			if err := pc.c.WriteText(pc.buf); err != nil {
				return fmt.Errorf("loadgen: publish: %w", err)
			}
			counts[room]++
		}
		time.Sleep(tick)
	}
}

// Close closes the publisher's connections and waits for its readers.
func (p *Publisher) Close() {
	for _, pc := range p.conns {
		pc.c.Close()
	}
	p.readers.Wait()
}
