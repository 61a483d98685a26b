package engineio

import (
	"encoding/json"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		code   ErrorCode
		body   string
		status int
	}{
		{UnknownTransport, `{"code":0,"message":"Transport unknown"}`, 400},
		{UnknownSID, `{"code":1,"message":"Session ID unknown"}`, 400},
		{BadHandshakeMethod, `{"code":2,"message":"Bad handshake method"}`, 400},
		{BadRequest, `{"code":3,"message":"Bad request"}`, 400},
		{Forbidden, `{"code":4,"message":"Forbidden"}`, 403},
		{UnsupportedProtocolVersion, `{"code":5,"message":"Unsupported protocol version"}`, 400},
	}
	for _, tt := range tests {
		if got := string(tt.code.Body()); got != tt.body {
			t.Errorf("%d.Body() = %s, want %s", tt.code, got, tt.body)
		}
		if !json.Valid(tt.code.Body()) {
			t.Errorf("%d.Body() is not JSON", tt.code)
		}
		if got := tt.code.HTTPStatus(); got != tt.status {
			t.Errorf("%d.HTTPStatus() = %d, want %d", tt.code, got, tt.status)
		}
	}
	if got := ErrorCode(9).Message(); got != "engine.io error 9" {
		t.Errorf("unknown code message = %q", got)
	}
}
