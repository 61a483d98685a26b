package jwt

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		room    string
		want    bool
	}{
		{name: "exact", pattern: "news", room: "news", want: true},
		{name: "exact is not prefix", pattern: "news", room: "newsroom"},
		{name: "glob suffix", pattern: "chat:*", room: "chat:general", want: true},
		{name: "glob empty suffix", pattern: "chat:*", room: "chat:", want: true},
		{name: "glob other prefix", pattern: "chat:*", room: "chatter"},
		{name: "star matches all", pattern: "*", room: "anything:at:all", want: true},
		{name: "inner star is literal", pattern: "a*b", room: "axxb"},
		{name: "inner star exact", pattern: "a*b", room: "a*b", want: true},
		{name: "empty pattern", pattern: "", room: "news"},
		{name: "empty room", pattern: "*", room: ""},
		{name: "case sensitive", pattern: "Chat:*", room: "chat:x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Match(tt.pattern, tt.room); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.room, got, tt.want)
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	p := &Permissions{
		Subject:      "alice",
		Rooms:        []string{"chat:*", "news", "user:*"},
		Publish:      []string{"chat:general", "public:board", "*-not-glob"},
		PublicPrefix: "public:",
	}
	all := &Permissions{Subject: "root", Rooms: []string{"*"}, Publish: []string{"*"}, PublicPrefix: "public:"}
	none := &Permissions{Subject: "bob", PublicPrefix: "public:"}
	tests := []struct {
		name          string
		p             *Permissions
		room          string
		join, publish bool
	}{
		{name: "glob join, no publish", p: p, room: "chat:random", join: true},
		{name: "glob join and exact publish", p: p, room: "chat:general", join: true, publish: true},
		{name: "exact join", p: p, room: "news", join: true},
		{name: "unlisted", p: p, room: "ops"},
		{name: "public join only", p: p, room: "public:lobby", join: true},
		{name: "public with publish pattern", p: p, room: "public:board", join: true, publish: true},
		{name: "own user room", p: p, room: "user:alice", join: true, publish: true},
		{name: "other user room despite user:*", p: p, room: "user:bob"},
		{name: "user: prefix alone", p: p, room: "user:"},
		{name: "star grants all", p: all, room: "ops", join: true, publish: true},
		{name: "star does not grant other users", p: all, room: "user:alice"},
		{name: "no claims: public", p: none, room: "public:x", join: true},
		{name: "no claims: own room", p: none, room: "user:bob", join: true, publish: true},
		{name: "no claims: other", p: none, room: "chat:x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.CanJoin(tt.room); got != tt.join {
				t.Errorf("CanJoin(%q) = %v, want %v", tt.room, got, tt.join)
			}
			if got := tt.p.CanPublish(tt.room); got != tt.publish {
				t.Errorf("CanPublish(%q) = %v, want %v", tt.room, got, tt.publish)
			}
		})
	}
}
