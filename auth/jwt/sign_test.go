package jwt

import (
	"testing"
	"time"
)

func TestSignRoundTrip(t *testing.T) {
	t.Parallel()
	a := newAuth(t, Config{Secret: testSecret, Issuer: "dev", Audience: "herald"})
	tok, err := Sign(testSecret, "alice", []string{"chat:*"}, []string{"chat:general"}, time.Hour,
		WithIssuer("dev"), WithAudience("herald"), WithKeyID("k1"))
	if err != nil {
		t.Fatal(err)
	}
	id, c, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.UserID != "alice" || len(id.TokenID) < 20 || !id.CanJoin("chat:x") || !id.CanPublish("chat:general") || id.CanPublish("chat:x") {
		t.Errorf("identity %+v", id)
	}
	if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != time.Hour {
		t.Errorf("lifetime %v, want 1h", got)
	}
	if rid, err := a.Refresh(tok); err != nil || rid.UserID != "alice" || rid.Source != "" {
		t.Errorf("Refresh: %+v, %v", rid, err)
	}
	other, err := Sign(testSecret, "alice", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, c2, err := a.Verify(other); err == nil || c2 != nil {
		t.Error("token without iss/aud accepted")
	}
	old, err := Sign(testSecret, "alice", nil, nil, time.Minute, WithIssuer("dev"), WithAudience("herald"),
		WithIssuedAt(time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Verify(old); reasonOf(err) != ReasonExpired {
		t.Errorf("backdated token: %v", err)
	}
}

func TestSignRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		sub    string
		ttl    time.Duration
	}{
		{name: "short secret", secret: []byte("short"), sub: "alice", ttl: time.Hour},
		{name: "no subject", secret: testSecret, ttl: time.Hour},
		{name: "control in subject", secret: testSecret, sub: "a\x00", ttl: time.Hour},
		{name: "zero ttl", secret: testSecret, sub: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Sign(tt.secret, tt.sub, nil, nil, tt.ttl); err == nil {
				t.Error("Sign succeeded")
			}
		})
	}
}
