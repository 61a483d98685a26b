package protocol

import "strings"

// User rooms are the one home of the "user:<id>" convention: every
// connection of a user is in its user room, and a direct message to the
// user is a publication to it. Engines deliver user rooms to every node
// without a subscription per room (see package broker), the hub keeps
// them by user id, and auth lets a user join and publish to its own user
// room only.

// UserRoomPrefix starts the name of every user room.
const UserRoomPrefix = "user:"

// UserRoom returns the user room of user id.
func UserRoom(id string) string { return UserRoomPrefix + id }

// IsUserRoom reports whether room is a user room.
func IsUserRoom(room string) bool { return strings.HasPrefix(room, UserRoomPrefix) }

// UserOfRoom returns the user id of a user room, and whether room is one.
func UserOfRoom(room string) (string, bool) {
	if !IsUserRoom(room) {
		return "", false
	}
	return room[len(UserRoomPrefix):], true
}

// IsUserRoomOf reports whether room is the user room of user id, without
// building the room's name.
func IsUserRoomOf(room, id string) bool {
	return IsUserRoom(room) && room[len(UserRoomPrefix):] == id
}
