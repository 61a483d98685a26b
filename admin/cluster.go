package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/internal/id"
)

// Limits of the cluster questions.
const (
	// maxAnswering bounds the questions a node answers at once.
	maxAnswering = 8
	// maxRows bounds the rows (connections, rooms, members) in one answer.
	maxRows = 200
	// replyTimeout bounds the publication of one answer.
	replyTimeout = 2 * time.Second
)

// Operations a node is asked for.
const (
	opStats      = "stats"
	opConns      = "conns"
	opRooms      = "rooms"
	opMembers    = "members"
	opDisconnect = "disconnect"
	opDrain      = "drain"
)

// query is the payload of a broker.ControlAdminQuery.
type query struct {
	ID   string          `json:"id"`
	From string          `json:"from"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// reply is the payload of a broker.ControlAdminReply.
type reply struct {
	ID    string          `json:"id"`
	To    string          `json:"to"`
	Node  string          `json:"node"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// queryArgs are the arguments of every operation; each reads its own.
type queryArgs struct {
	Conns  ConnQuery `json:"conns,omitempty"`
	Prefix string    `json:"prefix,omitempty"`
	Room   string    `json:"room,omitempty"`
	Conn   string    `json:"conn,omitempty"`
	Node   string    `json:"node,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// Responder answers the console's questions on one node. Every node has
// one, whether or not it serves the console itself, so that a console
// anywhere sees the whole cluster. It costs nothing until a question
// arrives.
type Responder struct {
	node Node
	log  *slog.Logger

	mu      sync.Mutex
	closed  bool
	pending map[string]chan<- reply // questions this node asked, by id
	running int
	wg      sync.WaitGroup
}

// NewResponder returns the Responder of node.
func NewResponder(node Node, log *slog.Logger) *Responder {
	return &Responder{node: node, log: log, pending: map[string]chan<- reply{}}
}

// HandleControl takes the admin kinds of control message and reports
// whether c was one. It does not block.
func (r *Responder) HandleControl(c *broker.Control) bool {
	switch c.Kind {
	case broker.ControlAdminQuery:
		var q query
		if err := json.Unmarshal(c.Payload, &q); err != nil || q.ID == "" {
			r.log.Debug("admin query ignored: bad payload", "err", err)
			return true
		}
		r.mu.Lock()
		if r.closed || r.running >= maxAnswering {
			r.mu.Unlock()
			r.log.Debug("admin query dropped: busy or closed", "op", q.Op)
			return true
		}
		r.running++
		r.wg.Add(1)
		r.mu.Unlock()
		go r.answer(q)
	case broker.ControlAdminReply:
		var rp reply
		if err := json.Unmarshal(c.Payload, &rp); err != nil {
			return true
		}
		if rp.To != r.node.ID() {
			return true
		}
		r.mu.Lock()
		ch := r.pending[rp.ID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- rp:
			default: // the asker stopped listening or has all it wants
			}
		}
	default:
		return false
	}
	return true
}

// answer computes and publishes this node's answer to q.
func (r *Responder) answer(q query) {
	defer func() {
		r.mu.Lock()
		r.running--
		r.mu.Unlock()
		r.wg.Done()
	}()
	var args queryArgs
	if len(q.Args) > 0 {
		if err := json.Unmarshal(q.Args, &args); err != nil {
			r.log.Debug("admin query ignored: bad args", "op", q.Op, "err", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	data, err := r.compute(ctx, q.Op, args)
	if errors.Is(err, errNotMine) {
		return // e.g. a drain of another node: no answer needed
	}
	rp := reply{ID: q.ID, To: q.From, Node: r.node.ID()}
	if err != nil {
		rp.Error = err.Error()
	} else if rp.Data, err = json.Marshal(data); err != nil {
		rp.Error = err.Error()
	}
	payload, _ := json.Marshal(rp)
	if err := r.node.Control(ctx, &broker.Control{Kind: broker.ControlAdminReply, Payload: payload}); err != nil {
		r.log.Debug("admin reply not sent", "op", q.Op, "err", err)
	}
}

var errNotMine = errors.New("admin: not for this node")

var errUnknownOp = errors.New("admin: unknown operation")

func (r *Responder) compute(ctx context.Context, op string, a queryArgs) (any, error) {
	n := r.node
	switch op {
	case opStats:
		return n.LocalStats(ctx), nil
	case opConns:
		if a.Conns.empty() {
			return nil, errors.New("admin: empty connection query")
		}
		return n.LocalConns(a.Conns, maxRows), nil
	case opRooms:
		return n.LocalRooms(a.Prefix, maxRows), nil
	case opMembers:
		return n.LocalMembers(a.Room, maxRows), nil
	case opDisconnect:
		return map[string]bool{"closed": n.LocalDisconnect(a.Conn, a.Reason)}, nil
	case opDrain:
		if a.Node != n.ID() {
			return nil, errNotMine
		}
		n.Drain()
		return map[string]bool{"draining": true}, nil
	}
	return nil, errUnknownOp
}

// linger is how long ask keeps listening once every node it expected has
// answered, for nodes it did not know of yet.
const linger = 100 * time.Millisecond

// ask sends a question to every node and gathers the answers until every
// node in expect has answered (and linger more has passed), or wait has
// passed, or ctx ended. With expect empty it waits the whole of wait.
func (r *Responder) ask(ctx context.Context, op string, args queryArgs, expect map[string]bool, wait time.Duration) ([]reply, error) {
	rawArgs, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	q := query{ID: id.New(12), From: r.node.ID(), Op: op, Args: rawArgs}
	payload, _ := json.Marshal(q)
	ch := make(chan reply, 64)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("admin: node is shutting down")
	}
	r.pending[q.ID] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, q.ID)
		r.mu.Unlock()
	}()
	if err := r.node.Control(ctx, &broker.Control{Kind: broker.ControlAdminQuery, Payload: payload}); err != nil {
		return nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var out []reply
	seen := map[string]bool{}
	lingering := false
	for {
		select {
		case rp := <-ch:
			if seen[rp.Node] {
				continue
			}
			seen[rp.Node] = true
			out = append(out, rp)
			if !lingering && len(expect) > 0 && coversAll(seen, expect) {
				lingering = true
				t.Reset(linger)
			}
		case <-t.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

func coversAll(seen, expect map[string]bool) bool {
	for n := range expect {
		if !seen[n] {
			return false
		}
	}
	return true
}

// Close stops taking questions and waits for the answers under way.
func (r *Responder) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}
