package herald

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/auth"
)

// TestRevokedNow: revoked with a zero time judges at the present moment,
// as with time.Now, and at an explicit time as before.
func TestRevokedNow(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rv := newRevocations()
	rv.put("jti-live", "", now, now.Add(time.Hour))
	rv.put("jti-over", "", now, now.Add(-time.Hour))
	rv.put("", "carol", now, now.Add(time.Hour))
	tests := []struct {
		name string
		id   auth.Identity
		at   time.Time
		want bool
	}{
		{"revoked token", auth.Identity{UserID: "a", TokenID: "jti-live"}, time.Time{}, true},
		{"revoked token, later than its until", auth.Identity{UserID: "a", TokenID: "jti-live"}, now.Add(2 * time.Hour), false},
		{"revocation over", auth.Identity{UserID: "a", TokenID: "jti-over"}, time.Time{}, false},
		{"revocation over, judged before", auth.Identity{UserID: "a", TokenID: "jti-over"}, now.Add(-2 * time.Hour), true},
		{"other token", auth.Identity{UserID: "a", TokenID: "jti-other"}, time.Time{}, false},
		{"revoked user, token issued before", auth.Identity{UserID: "carol", IssuedAt: now.Add(-time.Minute)}, time.Time{}, true},
		{"revoked user, token issued after", auth.Identity{UserID: "carol", IssuedAt: now.Add(time.Minute)}, time.Time{}, false},
		{"no revocation", auth.Identity{UserID: "dave"}, time.Time{}, false},
	}
	for _, tt := range tests {
		if got := rv.revoked(&tt.id, tt.at); got != tt.want {
			t.Errorf("%s: revoked = %v, want %v", tt.name, got, tt.want)
		}
	}
}
