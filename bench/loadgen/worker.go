package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MaxSteps bounds the measurement steps one worker keeps apart.
const MaxSteps = 64

// WorkerSpec is the first line a worker reads: what to connect to and what
// to do.
type WorkerSpec struct {
	Kind Kind `json:"kind"`
	// URLs are WebSocket endpoints; connection i uses URLs[(Offset+i)%len].
	URLs []string `json:"urls"`
	// Mode is "subscribe" (hold Conns connections, each in one room, and
	// record the scenario payloads they receive) or "churn" (connect and
	// disconnect in a loop).
	Mode string `json:"mode"`
	// Conns is the number of subscriber connections; Offset numbers them
	// globally so that workers share rooms and source addresses evenly.
	Conns  int `json:"conns"`
	Offset int `json:"offset"`
	// Rooms: connection i joins RoomName((Offset+i) % Rooms).
	Rooms int `json:"rooms"`
	// SourceIPs are the loopback addresses connections are bound to, in
	// turn (empty: the kernel chooses).
	SourceIPs []string `json:"sourceIPs"`
	// Header is added to every upgrade request (Authorization for JWT).
	Header map[string]string `json:"header,omitempty"`
	// DialConcurrency bounds connection attempts in flight (default 64).
	DialConcurrency int `json:"dialConcurrency,omitempty"`
	// ChurnConcurrency is the number of connect/close loops (churn mode).
	ChurnConcurrency int `json:"churnConcurrency,omitempty"`
	// ChurnDuration is how long the churn loops run after "start".
	ChurnDuration time.Duration `json:"churnDuration,omitempty"`
	// MixKind, when set, makes every other subscriber of each room
	// speak MixKind, through MixURLs, among the others:
	// both kinds get the same broadcasts, and their latencies are kept
	// apart (StepReport.LatencyMix), so they compare on equal terms
	// whatever else the machine is doing. Subscribe mode only.
	MixKind Kind     `json:"mixKind,omitempty"`
	MixURLs []string `json:"mixURLs,omitempty"`
}

// RoomName is the name of scenario room r.
func RoomName(r int) string { return "bench-" + strconv.Itoa(r) }

// Command is a line the driver sends a worker after its spec.
type Command struct {
	Cmd  string `json:"cmd"` // count, report, verify, start, stop
	Step int    `json:"step"`
	// Published is, for verify, how many messages of the step each room
	// got, by room index.
	Published []int64 `json:"published,omitempty"`
}

// Ready is a worker's answer once its connections are up.
type Ready struct {
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	// PerRoom counts connected subscribers by room index.
	PerRoom  map[int]int   `json:"perRoom"`
	Took     time.Duration `json:"took"`
	FirstErr string        `json:"firstErr,omitempty"`
}

// StepReport is what a worker observed for one step.
type StepReport struct {
	Step        int        `json:"step"`
	Received    int64      `json:"received"`
	Duplicates  int64      `json:"duplicates"`
	Latency     *Histogram `json:"latency"`
	Disconnects int64      `json:"disconnects"` // connections lost so far
	// ReceivedMix and LatencyMix are those of the subscribers speaking
	// WorkerSpec.MixKind (counted in Received, not in Latency); nil
	// without one.
	ReceivedMix int64      `json:"receivedMix,omitempty"`
	LatencyMix  *Histogram `json:"latencyMix,omitempty"`
}

// VerifyReport is a worker's check of one step, client by client: each
// subscriber should have got every message published to its room in the
// step, once.
type VerifyReport struct {
	Clients int `json:"clients"` // subscribers checked
	// Short is the subscribers that got fewer messages than their room
	// was published; Missing the messages they lack together; Gone those
	// of them whose connection the server has closed.
	Short   int   `json:"short"`
	Missing int64 `json:"missing"`
	Gone    int   `json:"gone"`
	// Extra is messages of the step beyond what was published to the
	// room (none, unless the accounting or the server is wrong).
	Extra int64 `json:"extra"`
}

// ChurnReport is the outcome of a churn run.
type ChurnReport struct {
	Connects int64         `json:"connects"`
	Failures int64         `json:"failures"`
	Took     time.Duration `json:"took"`
	Latency  *Histogram    `json:"latency"` // connect → welcome
	FirstErr string        `json:"firstErr,omitempty"`
}

// WorkerReply is one line a worker writes; exactly one field is set.
type WorkerReply struct {
	Ready  *Ready        `json:"ready,omitempty"`
	Count  *int64        `json:"count,omitempty"`
	Report *StepReport   `json:"report,omitempty"`
	Verify *VerifyReport `json:"verify,omitempty"`
	Churn  *ChurnReport  `json:"churn,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// stepState accumulates one step's deliveries across connections.
type stepState struct {
	received atomic.Int64
	dups     atomic.Int64
	shards   [16]histShard
	// The subscribers speaking WorkerSpec.MixKind: counted in received
	// too, their latencies only here.
	receivedMix atomic.Int64
	mixShards   [16]histShard
}

// histShard is one of a step's latency histograms, shared by the
// subscribers whose shardIdx picks it.
type histShard struct {
	mu sync.Mutex
	h  Histogram
}

// subscriber is one held connection; its plain fields are owned by its
// reader, the atomic ones are also read by verify.
type subscriber struct {
	c        *WSConn
	kind     Kind
	mix      bool // speaks WorkerSpec.MixKind
	room     int
	curStep  int
	lastSeq  int64
	shardIdx int
	// got is the subscriber's latest step (above gotShift) and how many
	// distinct payloads of it it received (below); written by the reader
	// only.
	got  atomic.Uint64
	gone atomic.Bool // the server closed the connection
}

const (
	gotShift = 48
	gotCount = 1<<gotShift - 1
)

// received returns how many distinct payloads of step s got.
func (s *subscriber) received(step int) int64 {
	v := s.got.Load()
	if v == 0 || int(v>>gotShift) != step {
		return 0
	}
	return int64(v & gotCount)
}

type worker struct {
	spec        WorkerSpec
	steps       [MaxSteps]stepState
	disconnects atomic.Int64
	closing     atomic.Bool
}

// RunWorker reads a WorkerSpec and then Commands as JSON lines from in,
// and writes WorkerReplies to out, until "stop" or the end of in. It
// returns once every connection it opened is closed and its goroutines
// have ended.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	var spec WorkerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("loadgen: worker spec: %w", err)
	}
	if _, err := ParseKind(string(spec.Kind)); err != nil {
		_ = enc.Encode(WorkerReply{Error: err.Error()})
		return err
	}
	if spec.MixKind != "" {
		if _, err := ParseKind(string(spec.MixKind)); err != nil {
			_ = enc.Encode(WorkerReply{Error: err.Error()})
			return err
		}
		if len(spec.MixURLs) == 0 {
			err := errors.New("loadgen: mixKind without mixURLs")
			_ = enc.Encode(WorkerReply{Error: err.Error()})
			return err
		}
	}
	w := &worker{spec: spec}
	switch spec.Mode {
	case "subscribe":
		return w.subscribe(ctx, dec, enc)
	case "churn":
		return w.churn(ctx, dec, enc)
	}
	err := fmt.Errorf("loadgen: unknown worker mode %q", spec.Mode)
	_ = enc.Encode(WorkerReply{Error: err.Error()})
	return err
}

func (w *worker) localIP(i int) net.IP {
	if len(w.spec.SourceIPs) == 0 {
		return nil
	}
	return net.ParseIP(w.spec.SourceIPs[(w.spec.Offset+i)%len(w.spec.SourceIPs)])
}

func (w *worker) header() http.Header {
	h := http.Header{}
	for k, v := range w.spec.Header {
		h.Set(k, v)
	}
	return h
}

// connect dials, opens and (when room >= 0) joins, retrying a few times.
// mixed reports whether connection i speaks the spec's MixKind: every
// other member of each room, in the order they are assigned to it
// (global index g joins room g % Rooms as its member number g / Rooms).
func (w *worker) mixed(i int) bool {
	return w.spec.MixKind != "" && (w.spec.Offset+i)/max(w.spec.Rooms, 1)%2 == 1
}

// kindOf returns the kind connection i speaks and its endpoints.
func (w *worker) kindOf(i int) (Kind, []string) {
	if w.mixed(i) {
		return w.spec.MixKind, w.spec.MixURLs
	}
	return w.spec.Kind, w.spec.URLs
}

func (w *worker) connect(ctx context.Context, i, room int, hdr http.Header) (*WSConn, error) {
	kind, urls := w.kindOf(i)
	url := urls[(w.spec.Offset+i)%len(urls)]
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
			}
		}
		var c *WSConn
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		c, err = Dial(dctx, url, DialOptions{LocalIP: w.localIP(i), Header: hdr})
		cancel()
		if err != nil {
			continue
		}
		if err = kind.Open(c, 15*time.Second); err != nil {
			c.Close()
			continue
		}
		if room >= 0 {
			if err = kind.Join(c, RoomName(room), 1, 15*time.Second); err != nil {
				c.Close()
				continue
			}
		}
		return c, nil
	}
	return nil, err
}

func (w *worker) subscribe(ctx context.Context, dec *json.Decoder, enc *json.Encoder) error {
	start := time.Now()
	spec := w.spec
	if spec.Rooms <= 0 {
		spec.Rooms = 1
	}
	conc := spec.DialConcurrency
	if conc <= 0 {
		conc = 64
	}
	hdr := w.header()
	var (
		mu       sync.Mutex
		subs     []*subscriber
		failed   int
		firstErr string
		sem      = make(chan struct{}, conc)
		dialWG   sync.WaitGroup
		readers  sync.WaitGroup
	)
	// Each connection is read from the moment it is up, not once the
	// whole worker is: a connect phase longer than the server's ping
	// interval plus its pong timeout would otherwise leave the first
	// connections' pings unanswered and the server would close them.
	for i := 0; i < spec.Conns; i++ {
		room := (spec.Offset + i) % spec.Rooms
		sem <- struct{}{}
		dialWG.Add(1)
		go func() {
			defer func() { <-sem; dialWG.Done() }()
			c, err := w.connect(ctx, i, room, hdr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			kind, _ := w.kindOf(i)
			s := &subscriber{c: c, kind: kind, mix: w.mixed(i), room: room, curStep: -1, lastSeq: -1, shardIdx: i % 16}
			subs = append(subs, s)
			readers.Add(1)
			go func() {
				defer readers.Done()
				w.read(s)
			}()
		}()
	}
	dialWG.Wait()
	defer func() {
		w.closing.Store(true)
		for _, s := range subs {
			s.c.Close()
		}
		readers.Wait()
	}()
	perRoom := map[int]int{}
	for _, s := range subs {
		perRoom[s.room]++
	}
	if err := enc.Encode(WorkerReply{Ready: &Ready{
		Connected: len(subs), Failed: failed, PerRoom: perRoom, Took: time.Since(start), FirstErr: firstErr,
	}}); err != nil {
		return err
	}
	for {
		var cmd Command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if cmd.Step < 0 || cmd.Step >= MaxSteps {
			_ = enc.Encode(WorkerReply{Error: fmt.Sprintf("step %d out of range", cmd.Step)})
			continue
		}
		st := &w.steps[cmd.Step]
		var err error
		switch cmd.Cmd {
		case "count":
			n := st.received.Load()
			err = enc.Encode(WorkerReply{Count: &n})
		case "report":
			r := &StepReport{Step: cmd.Step, Received: st.received.Load(), Duplicates: st.dups.Load(),
				Latency: &Histogram{}, Disconnects: w.disconnects.Load()}
			mergeShards(r.Latency, &st.shards)
			if w.spec.MixKind != "" {
				r.ReceivedMix, r.LatencyMix = st.receivedMix.Load(), &Histogram{}
				mergeShards(r.LatencyMix, &st.mixShards)
			}
			err = enc.Encode(WorkerReply{Report: r})
		case "verify":
			err = enc.Encode(WorkerReply{Verify: verify(subs, cmd.Step, cmd.Published)})
		case "stop":
			return nil
		default:
			err = enc.Encode(WorkerReply{Error: "unknown command " + strconv.Quote(cmd.Cmd)})
		}
		if err != nil {
			return err
		}
	}
}

// mergeShards adds the histograms of shards to h.
func mergeShards(h *Histogram, shards *[16]histShard) {
	for i := range shards {
		sh := &shards[i]
		sh.mu.Lock()
		h.Merge(&sh.h)
		sh.mu.Unlock()
	}
}

// verify checks every subscriber of subs against published, the messages
// each room got in step.
func verify(subs []*subscriber, step int, published []int64) *VerifyReport {
	r := &VerifyReport{Clients: len(subs)}
	for _, s := range subs {
		var want int64
		if s.room < len(published) {
			want = published[s.room]
		}
		got := s.received(step)
		switch {
		case got < want:
			r.Short++
			r.Missing += want - got
			if s.gone.Load() {
				r.Gone++
			}
		case got > want:
			r.Extra += got - want
		}
	}
	return r
}

// read is a subscriber's reader loop: it records every scenario payload.
func (w *worker) read(s *subscriber) {
	kind := s.kind
	for {
		msg, err := s.c.Read()
		if err != nil {
			if !w.closing.Load() {
				w.disconnects.Add(1)
				s.gone.Store(true)
			}
			return
		}
		if kind.Control(s.c, msg) {
			continue
		}
		w.record(s, msg, time.Now().UnixNano())
	}
}

// record accounts for one message received by s at now (Unix ns): a
// scenario payload counts once per subscriber; a sequence number not above
// the last one of the same step is a duplicate.
func (w *worker) record(s *subscriber, msg []byte, now int64) {
	p, ok := ParsePayload(msg)
	if !ok || p.Step < 0 || p.Step >= MaxSteps {
		return
	}
	st := &w.steps[p.Step]
	if p.Step == s.curStep && p.Seq <= s.lastSeq {
		st.dups.Add(1)
		return
	}
	switch v := s.got.Load(); {
	case v == 0 || p.Step > int(v>>gotShift):
		s.got.Store(uint64(p.Step)<<gotShift | 1)
	case p.Step == int(v>>gotShift):
		s.got.Store(v + 1)
	}
	if p.Step >= s.curStep {
		s.curStep, s.lastSeq = p.Step, p.Seq
	}
	st.received.Add(1)
	sh := &st.shards[s.shardIdx]
	if s.mix {
		st.receivedMix.Add(1)
		sh = &st.mixShards[s.shardIdx]
	}
	sh.mu.Lock()
	sh.h.Record(now - p.SentNanos)
	sh.mu.Unlock()
}

func (w *worker) churn(ctx context.Context, dec *json.Decoder, enc *json.Encoder) error {
	if err := enc.Encode(WorkerReply{Ready: &Ready{}}); err != nil {
		return err
	}
	var cmd Command
	if err := dec.Decode(&cmd); err != nil {
		return err
	}
	if cmd.Cmd != "start" {
		return fmt.Errorf("loadgen: churn worker: want start, got %q", cmd.Cmd)
	}
	conc := max(w.spec.ChurnConcurrency, 1)
	hdr := w.header()
	deadline := time.Now().Add(w.spec.ChurnDuration)
	var (
		mu       sync.Mutex
		rep      = &ChurnReport{Latency: &Histogram{}}
		wg       sync.WaitGroup
		seq      atomic.Int64
		start    = time.Now()
		firstErr string
	)
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Histogram
			var ok, bad int64
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := int(seq.Add(1))
				t0 := time.Now()
				url := w.spec.URLs[(w.spec.Offset+i)%len(w.spec.URLs)]
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c, err := Dial(dctx, url, DialOptions{LocalIP: w.localIP(i), Header: hdr})
				cancel()
				if err == nil {
					err = w.spec.Kind.Open(c, 10*time.Second)
					if err == nil {
						h.Record(int64(time.Since(t0)))
						ok++
					}
					c.Close()
				}
				if err != nil {
					bad++
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			rep.Connects += ok
			rep.Failures += bad
			rep.Latency.Merge(&h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Took = time.Since(start)
	rep.FirstErr = firstErr
	if err := enc.Encode(WorkerReply{Churn: rep}); err != nil {
		return err
	}
	// Wait for stop (or the end of input) so the driver controls exit.
	_ = dec.Decode(&cmd)
	return nil
}
