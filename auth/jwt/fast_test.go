package jwt

import (
	"encoding/base64"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signRaw signs a header and payload given as JSON text with HS256.
func signRaw(tb testing.TB, secret []byte, header, payload string) string {
	tb.Helper()
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signed, secret)
	if err != nil {
		tb.Fatal(err)
	}
	return signed + "." + enc.EncodeToString(sig)
}

// parserOnly is a copy of a without the fast path: every token goes to
// golang-jwt's parser, as before it.
func parserOnly(a *Authenticator) *Authenticator {
	b := &Authenticator{cfg: a.cfg, parser: a.parser, keys: a.keys, allowed: a.allowed}
	return b
}

// sameAsParser verifies tok with and without the fast path and fails
// unless both give the same identity and claims, or the same reason.
func sameAsParser(t *testing.T, a *Authenticator, tok string) (fast bool) {
	t.Helper()
	slow := parserOnly(a)
	id1, c1, err1 := a.Verify(tok)
	id2, c2, err2 := slow.Verify(tok)
	if reasonOf(err1) != reasonOf(err2) {
		t.Fatalf("token %q: fast path says %q, parser %q", tok, reasonOf(err1), reasonOf(err2))
	}
	if !reflect.DeepEqual(id1, id2) || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("token %q: fast path gives %+v %+v, parser %+v %+v", tok, id1, c1, id2, c2)
	}
	var tc tokenClaims
	return a.fast != nil && a.fast.verify(tok, &tc, time.Now())
}

// TestFastPathAgreesWithParser runs tokens of every shape through both
// paths: the fast path takes the common ones and must agree with the
// parser on all of them, down to the reason of a refusal.
func TestFastPathAgreesWithParser(t *testing.T) {
	t.Parallel()
	// A leeway of a minute: "expired within leeway" stays so however
	// slowly a loaded machine runs the table.
	a := newAuth(t, Config{Secret: testSecret, Leeway: time.Minute})
	now := time.Now().Unix()
	exp, iat := now+3600, now-60
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	plain := `{"alg":"HS256","typ":"JWT"}`
	tests := []struct {
		name, header, payload string
		fast                  bool // taken by the fast path
	}{
		{"plain", plain, `{"sub":"alice","exp":` + num(exp) + `,"iat":` + num(iat) + `,"jti":"j1"}`, true},
		{"typ first", `{"typ":"JWT","alg":"HS256"}`, `{"sub":"alice","exp":` + num(exp) + `}`, true},
		{"no typ", `{"alg":"HS256"}`, `{"sub":"alice","exp":` + num(exp) + `}`, true},
		{"rooms, publish, aud string, iss", plain, `{"sub":"bob","exp":` + num(exp) + `,"rooms":["chat:*"],"publish":["chat:a"],"aud":"herald","iss":"me"}`, true},
		{"aud list", plain, `{"sub":"bob","exp":` + num(exp) + `,"aud":["a","b"]}`, true},
		{"fractional exp", plain, `{"sub":"bob","exp":` + num(exp) + `.75}`, true},
		{"fractional times", plain, `{"sub":"bob","exp":` + num(exp) + `.123456789,"iat":1700000000.987654321,"nbf":-1.25}`, true},
		{"exp -0", plain, `{"sub":"bob","exp":-0,"iat":0}`, false},
		{"exp overflows", plain, `{"sub":"bob","exp":1e400}`, false},
		{"exponent exp", plain, `{"sub":"bob","exp":1.9e10}`, true}, // parsed fast, refused by check (lifetime) on both paths
		{"nbf in the past", plain, `{"sub":"bob","exp":` + num(exp) + `,"nbf":` + num(iat) + `}`, true},
		{"upper-case key", plain, `{"SUB":"carol","Exp":` + num(exp) + `}`, true},
		{"duplicate sub", plain, `{"sub":"x","sub":"y","exp":` + num(exp) + `}`, true},
		{"unknown claims", plain, `{"sub":"x","exp":` + num(exp) + `,"extra":{"deep":[1,2,{"a":null}]}}`, true},
		{"expired", plain, `{"sub":"x","exp":` + num(now-3600) + `}`, false},
		{"expired within leeway", plain, `{"sub":"x","exp":` + num(now-1) + `}`, true},
		{"not yet valid", plain, `{"sub":"x","exp":` + num(exp) + `,"nbf":` + num(now+600) + `}`, false},
		{"issued in the future", plain, `{"sub":"x","exp":` + num(exp) + `,"iat":` + num(now+600) + `}`, false},
		{"no exp", plain, `{"sub":"x"}`, false},
		{"exp null", plain, `{"sub":"x","exp":null}`, false},
		{"exp string", plain, `{"sub":"x","exp":"` + num(exp) + `"}`, false},
		{"iat string", plain, `{"sub":"x","exp":` + num(exp) + `,"iat":"1"}`, false},
		{"exp bool", plain, `{"sub":"x","exp":true}`, false},
		{"no sub", plain, `{"exp":` + num(exp) + `}`, true},                           // parsed fast, refused by check
		{"sub with control", plain, `{"sub":"a\u0001","exp":` + num(exp) + `}`, true}, // likewise
		{"sub number", plain, `{"sub":5,"exp":` + num(exp) + `}`, false},
		{"rooms not a list", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":"chat"}`, false},
		{"trailing data", plain, `{"sub":"x","exp":` + num(exp) + `} x`, false},
		{"not an object", plain, `[1]`, false},
		{"alg none", `{"alg":"none"}`, `{"sub":"x","exp":` + num(exp) + `}`, false},
		{"kid", `{"alg":"HS256","kid":"k"}`, `{"sub":"x","exp":` + num(exp) + `}`, false},
		{"crit", `{"alg":"HS256","crit":["x"]}`, `{"sub":"x","exp":` + num(exp) + `}`, false},
		{"spaced header", `{"alg": "HS256"}`, `{"sub":"x","exp":` + num(exp) + `}`, false},
		{"escapes in sub", plain, `{"sub":"a\\\"b\/c\u00e9\ud83d\ude00\n","exp":` + num(exp) + `}`, true}, // parsed fast, refused by check (control)
		{"escaped sub", plain, `{"sub":"\u0061lice\u00e9","exp":` + num(exp) + `}`, true},                 // accepted by both
		{"lone surrogate", plain, `{"sub":"a\ud800b","exp":` + num(exp) + `}`, true},                      // U+FFFD on both
		{"invalid UTF-8", plain, "{\"sub\":\"a\xffb\",\"exp\":" + num(exp) + "}", true},                   // U+FFFD on both
		{"non-ASCII sub", plain, `{"sub":"zoë","exp":` + num(exp) + `}`, true},
		{"spaces", plain, " {\n\t\"sub\" : \"x\" ,\r\"exp\": " + num(exp) + " , \"rooms\" : [ \"a\" , \"b\" ] }\n", true},
		{"rooms empty", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":[],"publish":null}`, true},
		{"rooms twice", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":["a","b","c"],"rooms":["d"]}`, true},
		{"rooms then null", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":["a"],"rooms":null}`, true},
		{"rooms null element", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":["a",null]}`, false},
		{"rooms number element", plain, `{"sub":"x","exp":` + num(exp) + `,"rooms":["a",1]}`, false},
		{"aud empty", plain, `{"sub":"x","exp":` + num(exp) + `,"aud":[]}`, true},
		{"aud null", plain, `{"sub":"x","exp":` + num(exp) + `,"aud":"a","aud":null}`, true},
		{"aud number", plain, `{"sub":"x","exp":` + num(exp) + `,"aud":1}`, false},
		{"sub null", plain, `{"sub":"x","sub":null,"exp":` + num(exp) + `}`, true},
		{"escaped key", plain, `{"\u0073ub":"x","exp":` + num(exp) + `}`, false},
		{"folded non-ASCII key", plain, `{"ſub":"x","exp":` + num(exp) + `}`, false},
		{"escaped unknown key", plain, `{"sub":"x","exp":` + num(exp) + `,"\u212a":1}`, false}, // keys with escapes are the parser's
		{"unknown values", plain, `{"sub":"x","a":-0.5e+3,"b":[true,false,null,"\u00e9\n",{}],"c":{"d":[]},"exp":` + num(exp) + `}`, true},
		{"bad escape in unknown", plain, `{"sub":"x","a":"\x","exp":` + num(exp) + `}`, false},
		{"leading zero", plain, `{"sub":"x","a":01,"exp":` + num(exp) + `}`, false},
		{"exp leading zero", plain, `{"sub":"x","exp":0` + num(exp) + `}`, false},
		{"comma at end", plain, `{"sub":"x","exp":` + num(exp) + `,}`, false},
		{"deep", plain, `{"sub":"x","exp":` + num(exp) + `,"d":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, false},
		{"jti and iss", plain, `{"sub":"x","exp":` + num(exp) + `,"jti":"j","iss":"i"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signRaw(t, testSecret, tt.header, tt.payload)
			if fast := sameAsParser(t, a, tok); fast != tt.fast {
				t.Errorf("fast path took it: %v, want %v", fast, tt.fast)
			}
		})
	}
	good := signRaw(t, testSecret, plain, `{"sub":"alice","exp":`+num(exp)+`}`)
	h, rest, _ := strings.Cut(good, ".")
	p, sig, _ := strings.Cut(rest, ".")
	for name, tok := range map[string]string{
		"other secret":        signRaw(t, []byte("another-secret-0123456789abcdefgh"), plain, `{"sub":"alice","exp":`+num(exp)+`}`),
		"signature cut":       h + "." + p + "." + sig[:42],
		"signature padded":    good + "=",
		"signature non-canon": h + "." + p + "." + sig[:42] + string(sig[42]^1),
		"four parts":          good + ".x",
		"payload padded":      h + "." + p + "=." + sig,
		"empty":               "..",
	} {
		t.Run(name, func(t *testing.T) {
			if sameAsParser(t, a, tok) {
				t.Error("fast path took it")
			}
		})
	}
}

// TestFastPathKeys: several HS256 secrets are each tried, as the parser
// tries a key set; a key with a kid leaves every token to the parser.
func TestFastPathKeys(t *testing.T) {
	t.Parallel()
	other := []byte("second-secret-0123456789abcdefghij")
	a := newAuth(t, Config{Secret: testSecret})
	a.add(key{alg: algHS256, key: other})
	a.fast = newHSFast(a.keys[algHS256], 0)
	tok := mint(t, jwt.SigningMethodHS256, other, claims("dave"), "")
	if !sameAsParser(t, a, tok) {
		t.Error("a token signed with the second secret did not take the fast path")
	}
	if newHSFast([]key{{alg: algHS256, kid: "k1", key: testSecret}}, 0) != nil {
		t.Error("a keyed secret got a fast path")
	}
}

// FuzzFastPath signs arbitrary headers and payloads: whatever the fast
// path accepts, the parser accepts with the same result.
func FuzzFastPath(f *testing.F) {
	f.Add(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"a","exp":99999999999}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a","exp":1e10,"iat":1,"nbf":-1,"aud":["x"],"rooms":["r"]}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a","exp":"1"}`)
	f.Fuzz(func(t *testing.T, header, payload string) {
		a := &Authenticator{cfg: Config{Secret: testSecret}.withDefaults(), keys: map[string][]key{}, allowed: map[string]bool{}}
		a.add(key{alg: algHS256, key: testSecret})
		validation := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(a.cfg.Leeway)}
		a.parser = jwt.NewParser(append(validation, jwt.WithValidMethods([]string{algHS256}), jwt.WithStrictDecoding())...)
		a.fast = newHSFast(a.keys[algHS256], a.cfg.Leeway)
		sameAsParser(t, a, signRaw(t, testSecret, header, payload))
	})
}
