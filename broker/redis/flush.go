package redis

import (
	"time"
)

// flusher sends buffered publications, in order, after Redis returns.
func (b *Broker) flusher() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.flushKick:
		}
		if b.Buffered() > 0 && b.awaitResubscribed() {
			b.flush()
		}
	}
}

// awaitResubscribed waits until this node's subscriptions are confirmed
// again (bounded by maxResubscribeWait) and then flushSettle more, so that
// buffered messages are not published into channels nobody listens to yet.
// It reports false if the broker closed or Redis went down again.
func (b *Broker) awaitResubscribed() bool {
	deadline := time.Now().Add(maxResubscribeWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.unconfirmed.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-b.ctx.Done():
			return false
		case <-tick.C:
		}
	}
	settle := time.NewTimer(flushSettle)
	defer settle.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-settle.C:
	}
	return b.up.Load()
}

// flush publishes the queue head first. Each entry leaves the queue only
// after Redis accepted it, so Publish keeps queueing behind it meanwhile.
func (b *Broker) flush() {
	for {
		b.qmu.Lock()
		if len(b.queue) == 0 {
			b.queue = nil
			b.qmu.Unlock()
			return
		}
		p := b.queue[0]
		b.qmu.Unlock()
		if !b.up.Load() {
			return
		}
		err := b.client.Do(b.ctx, b.publishCmd(p.channel, p.payload)).Error()
		if b.ctx.Err() != nil {
			return
		}
		if isConnErr(err) {
			b.markDown(err)
			return
		}
		if err != nil {
			b.log.Error("redis broker: buffered publication rejected", "channel", p.channel, "err", err)
		}
		b.qmu.Lock()
		b.queue[0] = pending{}
		b.queue = b.queue[1:]
		b.qmu.Unlock()
	}
}
