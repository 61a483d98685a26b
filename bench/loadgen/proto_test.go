package loadgen

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestParseSocketIO(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    SIOPacket
		wantErr bool
	}{
		{name: "open", in: `0{"sid":"abc","pingInterval":25000}`, want: SIOPacket{EIO: '0', Nsp: "/", AckID: -1, Data: []byte(`{"sid":"abc","pingInterval":25000}`)}},
		{name: "ping", in: "2", want: SIOPacket{EIO: '2', Nsp: "/", AckID: -1, Data: []byte{}}},
		{name: "connect reply", in: `40{"sid":"xyz"}`, want: SIOPacket{EIO: '4', SIO: '0', Nsp: "/", AckID: -1, Data: []byte(`{"sid":"xyz"}`)}},
		{name: "connect error", in: `44{"message":"unauthorized"}`, want: SIOPacket{EIO: '4', SIO: '4', Nsp: "/", AckID: -1, Data: []byte(`{"message":"unauthorized"}`)}},
		{name: "event", in: `42["event",{"room":"r","data":{"bk":1}}]`, want: SIOPacket{EIO: '4', SIO: '2', Nsp: "/", AckID: -1, Event: "event", Args: []byte(`[{"room":"r","data":{"bk":1}}]`)}},
		{name: "event with ack id", in: `4213["join",{"room":"r"}]`, want: SIOPacket{EIO: '4', SIO: '2', Nsp: "/", AckID: 13, Event: "join", Args: []byte(`[{"room":"r"}]`)}},
		{name: "namespace", in: `42/admin,["x",1,2]`, want: SIOPacket{EIO: '4', SIO: '2', Nsp: "/admin", AckID: -1, Event: "x", Args: []byte(`[1,2]`)}},
		{name: "ack", in: `431[{"ok":true}]`, want: SIOPacket{EIO: '4', SIO: '3', Nsp: "/", AckID: 1, Data: []byte(`[{"ok":true}]`)}},
		{name: "empty", in: "", wantErr: true},
		{name: "bad engine.io type", in: "9", wantErr: true},
		{name: "message without socket.io type", in: "4", wantErr: true},
		{name: "event not an array", in: `42{"a":1}`, wantErr: true},
		{name: "event name not a string", in: `42[1,2]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSocketIO([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got.EIO != tt.want.EIO || got.SIO != tt.want.SIO || got.Nsp != tt.want.Nsp || got.AckID != tt.want.AckID ||
				got.Event != tt.want.Event || string(got.Args) != string(tt.want.Args) || string(got.Data) != string(tt.want.Data) {
				t.Fatalf("got %+v (args %s data %s), want %+v", got, got.Args, got.Data, tt.want)
			}
		})
	}
}

func TestAppendPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind Kind
		want string
	}{
		{KindHerald, `{"type":"publish","room":"bench-1","event":"e","data":{"a":1}}`},
		{KindWS, `{"type":"publish","room":"bench-1","event":"e","data":{"a":1}}`},
		{KindSocketIO, `42["publish",{"room":"bench-1","event":"e","data":{"a":1}}]`},
		{KindHeraldSocketIO, `42["herald:publish",{"room":"bench-1","event":"e","data":{"a":1}}]`},
	}
	for _, tt := range tests {
		if got := string(tt.kind.AppendPublish(nil, "bench-1", []byte(`{"a":1}`))); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.kind, got, tt.want)
		}
		if tt.kind.socketIO() {
			p, err := ParseSocketIO([]byte(tt.want))
			if err != nil || (p.Event != "publish" && p.Event != "herald:publish") {
				t.Errorf("socket.io publish does not parse back: %+v %v", p, err)
			}
		}
	}
}

func TestEndpointURL(t *testing.T) {
	t.Parallel()
	if got := KindSocketIO.EndpointURL("ws://h:1"); got != "ws://h:1/socket.io/?EIO=4&transport=websocket" {
		t.Error(got)
	}
	if got := KindHeraldSocketIO.EndpointURL("ws://h:1"); got != "ws://h:1/socket.io/?EIO=4&transport=websocket" {
		t.Error(got)
	}
	if got := KindWS.EndpointURL("ws://h:1"); got != "ws://h:1/ws" {
		t.Error(got)
	}
	if _, err := ParseKind("nope"); err == nil {
		t.Error("ParseKind accepted an unknown kind")
	}
}

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Field 2 may contain spaces and parentheses.
	line := "1234 (node (x) y) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 150 0 0 20 0 11 0 100 1000 100 18446744073709551615\n"
	d, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if d != 4*time.Second {
		t.Fatalf("cpu = %v, want 4s (400 ticks)", d)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("no error for garbage")
	}
}

func TestParseMachineCPU(t *testing.T) {
	t.Parallel()
	stat := "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\ncpu1 50 3 25 400 10 2 1 5 4 0\nintr 1 2 3\n"
	m := parseMachineCPU(stat)
	// Busy: user nice system irq softirq steal; idle and iowait are not;
	// guest (already in user) is not added again.
	if want := (MachineCPU{Busy: 100 + 5 + 50 + 3 + 2 + 10, Total: 990, CPUs: 2}); m != want {
		t.Fatalf("parse = %+v, want %+v", m, want)
	}
	later := MachineCPU{Busy: m.Busy + 150, Total: m.Total + 200, CPUs: 2}
	if got := later.BusySince(m); got != 150 {
		t.Fatalf("BusySince = %v%%, want 150%% (3/4 of two cores)", got)
	}
	if got := m.BusySince(m); got != 0 {
		t.Fatalf("BusySince over no time = %v, want 0", got)
	}
	if m := parseMachineCPU("garbage"); m != (MachineCPU{}) {
		t.Fatalf("garbage parsed as %+v", m)
	}
}

func TestMixedAlternatesInEachRoom(t *testing.T) {
	t.Parallel()
	// Spread over two workers, as SplitSpecs would: each room gets as
	// many of one kind as of the other, alternating in join order.
	const conns, rooms = 40, 4
	kinds := map[int][]bool{}
	for _, spec := range SplitSpecs(WorkerSpec{Kind: KindHerald, MixKind: KindHeraldSocketIO, Conns: conns, Rooms: rooms}, 15) {
		w := &worker{spec: spec}
		for i := 0; i < spec.Conns; i++ {
			room := (spec.Offset + i) % rooms
			kinds[room] = append(kinds[room], w.mixed(i))
		}
	}
	for room, ks := range kinds {
		for j, mix := range ks {
			if mix != (j%2 == 1) {
				t.Fatalf("room %d: member %d mixed=%v; members %v, want alternating from v1", room, j, mix, ks)
			}
		}
	}
	if w := (&worker{spec: WorkerSpec{Kind: KindHerald, Conns: 4, Rooms: 1}}); w.mixed(1) {
		t.Fatal("a connection mixed without a MixKind")
	}
}

func TestFindMetric(t *testing.T) {
	t.Parallel()
	text := "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\n" +
		"go_memstats_heap_inuse_bytes_total 1\ngo_memstats_heap_inuse_bytes 1.2345e+06\nherald_x{a=\"b\"} 3\n"
	v, err := findMetric(bufio.NewScanner(strings.NewReader(text)), "go_memstats_heap_inuse_bytes")
	if err != nil || v != 1.2345e6 {
		t.Fatalf("= %v, %v", v, err)
	}
	if v, err := findMetric(bufio.NewScanner(strings.NewReader(text)), "herald_x"); err != nil || v != 3 {
		t.Fatalf("labelled = %v, %v", v, err)
	}
	if _, err := findMetric(bufio.NewScanner(strings.NewReader(text)), "missing"); err == nil {
		t.Fatal("found a missing metric")
	}
}

func TestSplitSpecs(t *testing.T) {
	t.Parallel()
	specs := SplitSpecs(WorkerSpec{Conns: 10001, Offset: 5}, 5000)
	if len(specs) != 3 {
		t.Fatalf("%d workers, want 3", len(specs))
	}
	total, next := 0, 5
	for _, s := range specs {
		if s.Offset != next {
			t.Fatalf("offset %d, want %d", s.Offset, next)
		}
		next += s.Conns
		total += s.Conns
	}
	if total != 10001 {
		t.Fatalf("total %d", total)
	}
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median %v", m)
	}
	if m := Median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatalf("median %v", m)
	}
}
