package herald

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
)

func TestMatchPattern(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"chat:*", "chat:1", true},
		{"chat:*", "chat:", true},
		{"chat:*", "chat", false},
		{"chat:*", "xchat:1", false},
		{"*", "anything/at:all", true},
		{"a*b*c", "a-b-c", true},
		{"a*b*c", "a-c-b", false},
		{"exact", "exact", true},
		{"exact", "exact2", false},
		{"*:log", "orders:log", true},
		{"*:log", "orders:logs", false},
	} {
		if got := matchPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestParseHistoryRules(t *testing.T) {
	rules, err := ParseHistoryRules(" chat:*=100/10m, orders:*=1000/1h,noisy:*=0,*=5 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryRule{
		{Pattern: "chat:*", Size: 100, TTL: 10 * time.Minute},
		{Pattern: "orders:*", Size: 1000, TTL: time.Hour},
		{Pattern: "noisy:*", Size: 0},
		{Pattern: "*", Size: 5},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules", len(rules))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	f := historyFunc(rules)
	for room, size := range map[string]int{"chat:1": 100, "noisy:x": 0, "other": 5, "user:42": 0} {
		if got := f(room).Size; got != size {
			t.Errorf("room %q keeps %d, want %d", room, got, size)
		}
	}
	for _, bad := range []string{"chat:*", "=5", "chat:*=x", "chat:*=5/ten"} {
		if _, err := ParseHistoryRules(bad); err == nil {
			t.Errorf("ParseHistoryRules(%q) accepted", bad)
		}
	}
}

func TestHistoryConfig(t *testing.T) {
	for _, rules := range [][]HistoryRule{
		{{Pattern: "", Size: 1}},
		{{Pattern: "a", Size: -1}},
		{{Pattern: "a", Size: MaxHistorySize + 1}},
		{{Pattern: "a", Size: 1, TTL: -time.Second}},
	} {
		if _, err := New(Config{History: rules}); !errors.Is(err, ErrConfig) {
			t.Errorf("New with History %+v: %v, want ErrConfig", rules, err)
		}
	}
	if _, err := New(Config{History: []HistoryRule{{Pattern: "*", Size: 1}}, Broker: noHistory{}}); !errors.Is(err, ErrConfig) {
		t.Errorf("New with History and a broker without: %v, want ErrConfig", err)
	}
}

// noHistory is a broker.Broker that is not a broker.Historian; New must
// refuse History with it before it starts it.
type noHistory struct{ broker.Broker }
