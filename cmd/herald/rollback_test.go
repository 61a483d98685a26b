package main

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

// cut closes every connection the balancer holds, as a network cut
// does; new connections go through as before.
func (b *balancer) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

// TestRedisSnapshotRollback: a Redis with RDB persistence crashes and
// comes back with its last snapshot, older than the messages published
// since (as a replica promoted after a failover may be): the room's
// history is rolled back, its newest offset goes back, and the offsets
// after it are given again to new messages. Every answered publish
// still reaches the members or they are told, also a member whose
// connection is cut after the rollback and who recovers from the
// position it had.
func TestRedisSnapshotRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	t.Parallel()
	bin := buildBinary(t)
	redis := testserver.StartRedis(t)
	flags := []string{"--redis-url", redis.URL(), "--history=" + promiseRoom + "=100000/10m"}
	pubNode := startNodeWith(t, bin, "rb-pub", flags...)
	memNode := startNodeWith(t, bin, "rb-mem", flags...)
	lb := startBalancer(t, memNode.addr)
	cutMember := joinMember(t, lb.url(), "cut-member")
	stayMember := joinMember(t, memNode.ws(), "stay-member")
	members := []*member{cutMember, stayMember}

	l := &ledger{}
	publish := func(n int) {
		t.Helper()
		for range n {
			id := l.id()
			o := outcome{id: id, start: time.Now()}
			code, body := apiCall(t, "POST", pubNode.http()+"/api/v1/publish",
				`{"room":"`+promiseRoom+`","event":"n","data":`+strconv.Itoa(id)+`}`)
			o.end, o.ok = time.Now(), code == http.StatusOK
			if !o.ok {
				o.why = fmt.Sprint(code, " ", body["error"])
			}
			l.add(o)
		}
	}
	delivered := func(m *member, upTo int) bool {
		got, _ := m.counts()
		for _, o := range l.outcomes() {
			if o.ok && o.id <= upTo && got[o.id] == 0 {
				return false
			}
		}
		return true
	}
	publish(30)
	if _, err := redis.Command("SAVE"); err != nil {
		t.Fatal(err)
	}
	publish(30)
	for _, m := range members {
		waitUntil(t, 10*time.Second, m.name+" has the messages before the crash", func() bool { return delivered(m, 60) })
	}
	redis.RestartFromSnapshot()
	waitUntil(t, 10*time.Second, "a publish answered after the crash", func() bool {
		publish(1)
		o := l.outcomes()
		return o[len(o)-1].ok
	})
	publish(20)
	// The member takes in what the node gives it live, then is cut off.
	// (The newest may be among those it is told it missed.)
	for deadline := time.Now().Add(3 * time.Second); !cutMember.hasNewest(l) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	lb.cut()
	publish(40)
	waitUntil(t, 10*time.Second, "the cut member back", func() bool { return cutMember.c.State() == client.Connected })
	publish(5)

	answered := 0
	for _, o := range l.outcomes() {
		if o.ok {
			answered++
		}
	}
	for _, m := range members {
		var lost, silent int
		deadline := time.Now().Add(10 * time.Second)
		for {
			newest := m.hasNewest(l)
			got, told := m.counts()
			lost, silent = 0, 0
			for _, o := range l.outcomes() {
				if o.ok && got[o.id] == 0 {
					lost++
					if !toldAfter(told, o.start) {
						silent++
					}
				}
			}
			if lost == 0 || newest || time.Now().After(deadline) {
				t.Logf("%s: %d of %d answered delivered, %d lost (%d silently), told of gaps %d times", m.name, answered-lost, answered, lost, silent, len(told))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if silent > 0 {
			got, _ := m.counts()
			var ids []int
			for _, o := range l.outcomes() {
				if o.ok && got[o.id] == 0 {
					ids = append(ids, o.id)
				}
			}
			t.Errorf("%s: %d answered publishes lost without a word: %v", m.name, silent, ids)
		}
	}
}
