package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/redis/rueidis"
)

// isConnErr reports whether err means the connection (not the command or
// the caller's context) failed.
func isConnErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	return true
}

func unavailable(err error) error {
	return fmt.Errorf("%w: redis: %v", broker.ErrUnavailable, err)
}

// markDown records an outage. Subscription loops then wait for markUp,
// publications fail or queue, and the monitor pings at retryInterval.
func (b *Broker) markDown(err error) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	b.lastErr = err
	if !b.up.Load() {
		return
	}
	b.up.Store(false)
	b.upCh = make(chan struct{})
	b.log.Warn("redis broker: connection lost", "err", err)
	wake(b.monitorKick)
}

// markUp records that Redis answers again and releases whoever waits for it.
func (b *Broker) markUp() {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.up.Load() {
		return
	}
	b.up.Store(true)
	b.lastErr = nil
	close(b.upCh)
	b.log.Info("redis broker: connection restored")
	wake(b.flushKick)
}

// waitUp blocks until Redis is reachable or ctx is done.
func (b *Broker) waitUp(ctx context.Context) error {
	b.stateMu.Lock()
	ch := b.upCh
	b.stateMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Broker) downErr() error {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.lastErr == nil {
		return unavailable(errors.New("disconnected"))
	}
	return unavailable(b.lastErr)
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// monitor pings Redis: every healthInterval while up, every retryInterval
// while down. It is the only place that declares Redis up again.
func (b *Broker) monitor() {
	defer b.wg.Done()
	t := time.NewTimer(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-b.monitorKick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		err := b.ping(b.ctx)
		switch {
		case b.ctx.Err() != nil:
			return
		case err == nil:
			b.markUp()
		default:
			b.markDown(err)
		}
		if b.up.Load() {
			t.Reset(healthInterval)
		} else {
			t.Reset(retryInterval)
		}
	}
}

// ping checks every node the broker talks to (all masters in cluster mode).
func (b *Broker) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if !b.cluster {
		return b.client.Do(ctx, b.client.B().Ping().Build()).Error()
	}
	nodes := b.client.Nodes()
	if len(nodes) == 0 {
		return errors.New("no cluster nodes known")
	}
	for addr, c := range nodes {
		if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
	}
	return nil
}
