//go:build !linux

package transport

// uringScratch is unused off Linux.
type uringScratch struct{}

// shardRing is unused off Linux: turns are written one by one.
type shardRing struct{}

func (*shardRing) get() *uring { return nil }

type uring struct{}

func (*turnScratch) writeTurns(*uring, []*Conn) {}

func uringUsable() bool { return false }
