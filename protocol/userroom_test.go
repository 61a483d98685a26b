package protocol

import "testing"

func TestUserRooms(t *testing.T) {
	tests := []struct {
		name, room string
		user       string
		isUser     bool
	}{
		{name: "user room", room: "user:alice", user: "alice", isUser: true},
		{name: "empty user", room: "user:", user: "", isUser: true},
		{name: "plain room", room: "chat:alice", isUser: false},
		{name: "prefix inside", room: "x:user:alice", isUser: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsUserRoom(tt.room); got != tt.isUser {
				t.Fatalf("IsUserRoom(%q) = %v", tt.room, got)
			}
			u, ok := UserOfRoom(tt.room)
			if ok != tt.isUser || u != tt.user {
				t.Fatalf("UserOfRoom(%q) = %q, %v", tt.room, u, ok)
			}
			if tt.isUser && (!IsUserRoomOf(tt.room, tt.user) || UserRoom(tt.user) != tt.room) {
				t.Fatalf("IsUserRoomOf/UserRoom disagree for %q", tt.room)
			}
			if IsUserRoomOf(tt.room, "bob") {
				t.Fatalf("IsUserRoomOf(%q, bob)", tt.room)
			}
		})
	}
}
