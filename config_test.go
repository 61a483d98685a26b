package herald_test

import (
	"errors"
	"testing"

	"github.com/heraldrt/herald"
)

// TestConfigErrorNamesTheField: New's configuration errors are
// *ConfigError values naming one Go field each (a program that sets Config
// from its own flags maps Field to them: the herald binary does), and
// match ErrConfig.
func TestConfigErrorNamesTheField(t *testing.T) {
	for _, tt := range []struct {
		cfg     herald.Config
		field   string
		problem string
	}{
		{herald.Config{CompressionLevel: 12}, "CompressionLevel", "must be 1..9 (got 12)"},
		{herald.Config{SendQueueSize: -1}, "SendQueueSize", "must be positive (got -1)"},
		{herald.Config{AckRetries: -1}, "AckRetries", "must not be negative (got -1)"},
		{herald.Config{MaxPendingAcks: -1}, "MaxPendingAcks", "must not be negative (got -1)"},
		{herald.Config{MaxConnsPerIP: -1}, "MaxConnsPerIP", "must not be negative (got -1)"},
		{herald.Config{APIKeys: []string{"0123456789abcdef", "secret"}}, "APIKeys", "key 2 of 2 has 6 characters; each needs at least 16"},
	} {
		_, err := herald.New(tt.cfg)
		var ce *herald.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, herald.ErrConfig) || ce.Field != tt.field || ce.Problem != tt.problem {
			t.Errorf("New(%+v) = %v; want a ConfigError %s: %s", tt.field, err, tt.field, tt.problem)
		}
	}
}
