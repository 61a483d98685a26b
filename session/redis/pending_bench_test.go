package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/redis"
)

// BenchmarkAddPending carries the unacknowledged messages of an ended
// connection to its session and takes them back, as a resume does: 64
// messages of 1 KiB into an empty list (the common case), and the same
// into a list that holds 512 already.
func BenchmarkAddPending(b *testing.B) {
	srv := testserver.StartRedis(b)
	st, err := redis.New(redis.Config{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	msgs := make([]session.Pending, 64)
	for i := range msgs {
		msgs[i] = session.Pending{MsgID: fmt.Sprintf("m%04d", i),
			Frame: append([]byte(`{"type":"event","room":"chat","data":"`), append(bytes.Repeat([]byte("x"), 1000), `"}`...)...)}
	}
	for _, held := range []int{0, 512} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("s%d-%d", held, i)
				for n := 0; n < held; n += len(msgs) {
					_ = st.AddPending(ctx, id, msgs, 1024, time.Minute)
				}
				if err := st.AddPending(ctx, id, msgs, 1024, time.Minute); err != nil {
					b.Fatal(err)
				}
				if _, err := st.TakePending(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
