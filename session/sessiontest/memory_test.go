package sessiontest_test

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/memory"
	"github.com/heraldrt/herald/session/sessiontest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	sessiontest.Run(t, func(*testing.T) session.Store { return memory.New(10 * time.Millisecond) })
}

func TestMemoryPresence(t *testing.T) {
	sessiontest.RunPresence(t, func(*testing.T) session.Presence { return memory.NewPresence() }, false)
}
