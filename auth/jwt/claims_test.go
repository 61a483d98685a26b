package jwt

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// refClaims is Claims as json.Unmarshal fills it (the same keys, the same
// types), with the time claims kept as they are spelled: what
// decodeClaims must agree with.
type refClaims struct {
	Iss     string           `json:"iss,omitempty"`
	Sub     string           `json:"sub,omitempty"`
	Aud     jwt.ClaimStrings `json:"aud,omitempty"`
	Exp     json.RawMessage  `json:"exp,omitempty"`
	Nbf     json.RawMessage  `json:"nbf,omitempty"`
	Iat     json.RawMessage  `json:"iat,omitempty"`
	Jti     string           `json:"jti,omitempty"`
	Rooms   []string         `json:"rooms,omitempty"`
	Publish []string         `json:"publish,omitempty"`
}

// agreesWithJSON decodes b with decodeClaims and with json.Unmarshal and
// fails unless whatever decodeClaims takes, json.Unmarshal takes too,
// with the same claims (nil and empty lists told apart). It reports
// whether decodeClaims took it.
func agreesWithJSON(t *testing.T, b []byte) bool {
	t.Helper()
	var got rawClaims
	if !decodeClaims(b, &got) {
		return false
	}
	var want refClaims
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%q: decodeClaims took it, json.Unmarshal says %v", b, err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"iss", got.iss, want.Iss}, {"sub", got.sub, want.Sub}, {"jti", got.jti, want.Jti},
		{"aud", got.aud, []string(want.Aud)}, {"rooms", got.rooms, want.Rooms}, {"publish", got.publish, want.Publish},
		{"exp", got.exp, []byte(want.Exp)}, {"nbf", got.nbf, []byte(want.Nbf)}, {"iat", got.iat, []byte(want.Iat)},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%q: %s is %#v, json.Unmarshal has %#v", b, f.name, f.got, f.want)
		}
	}
	// The time claims decodeClaims takes are numbers, where the fast
	// path's ParseFloat is json.Number's.
	for _, v := range [][]byte{got.exp, got.nbf, got.iat} {
		if v != nil && !json.Valid(v) || bytes.ContainsAny(v, `"ntf[{`) {
			t.Fatalf("%q: time claim %q is not a number", b, v)
		}
	}
	return true
}

// TestDecodeClaimsAgreesWithJSON runs claims of every shape through
// decodeClaims and json.Unmarshal: it takes the common ones and decodes
// them as json.Unmarshal does; what it does not take goes to the parser.
func TestDecodeClaimsAgreesWithJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, payload string
		taken         bool
	}{
		{"empty", `{}`, true},
		{"usual", `{"sub":"alice","exp":1999999999,"iat":1700000000,"jti":"j-1"}`, true},
		{"all claims", `{"iss":"i","sub":"s","aud":["a","b"],"exp":1.5,"nbf":-2,"iat":3e2,"jti":"j","rooms":["r*"],"publish":["p"]}`, true},
		{"aud string", `{"aud":"herald"}`, true},
		{"aud empty", `{"aud":[]}`, true},
		{"aud null", `{"aud":"x","aud":null}`, true},
		{"aud null element", `{"aud":["x",null]}`, false},
		{"aud object", `{"aud":{}}`, false},
		{"rooms empty", `{"rooms":[]}`, true},
		{"rooms null", `{"rooms":["a"],"rooms":null}`, true},
		{"rooms shorter twice", `{"rooms":["a","b","c"],"rooms":["d"]}`, true},
		{"rooms then empty", `{"rooms":["a"],"rooms":[]}`, true},
		{"rooms null element", `{"rooms":["a",null]}`, false},
		{"rooms string", `{"rooms":"a"}`, false},
		{"sub null", `{"sub":"x","sub":null}`, true},
		{"sub twice", `{"sub":"x","sub":"y"}`, true},
		{"sub number", `{"sub":1}`, false},
		{"sub true", `{"sub":true}`, false},
		{"upper-case keys", `{"SUB":"a","Exp":1,"ROOMS":["x"],"PuBlIsH":[],"AUD":"q","JTI":"j","ISS":"i","NBF":0,"IAT":0}`, true},
		{"escaped key", `{"\u0073ub":"x"}`, false},
		{"non-ASCII key", `{"ſub":"x"}`, false},
		{"control in key", "{\"s\x01\":1}", false},
		{"escapes", `{"sub":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}`, true},
		{"lone high surrogate", `{"sub":"\ud800"}`, true},
		{"lone low surrogate", `{"sub":"\udc00x"}`, true},
		{"high then non-low", `{"sub":"\ud800\u0041"}`, true},
		{"high then high", `{"sub":"\ud800\ud800\udc00"}`, true},
		{"upper-case hex", `{"sub":"\u00E9\uD83D\uDE00"}`, true},
		{"bad escape", `{"sub":"\x"}`, false},
		{"apostrophe escape", `{"sub":"\'"}`, false},
		{"short \\u", `{"sub":"\u00e"}`, false},
		{"control in string", "{\"sub\":\"a\x01\"}", false},
		{"invalid UTF-8", "{\"sub\":\"a\xff\xfeb\xc3\"}", true},
		{"UTF-8 surrogate", "{\"sub\":\"\xed\xa0\x80\"}", true},
		{"U+FFFD itself", "{\"sub\":\"\xef\xbf\xbd\"}", true},
		{"non-ASCII", `{"sub":"zoë 東京"}`, true},
		{"whitespace", " \t\r\n{ \"sub\" : \"a\" , \"exp\" : 1 } \n", true},
		{"numbers", `{"exp":0,"nbf":-0,"iat":-1.25e-3}`, true},
		{"number forms", `{"a":1E5,"b":1e+5,"c":0.0,"d":-9}`, true},
		{"leading zero", `{"exp":01}`, false},
		{"bare minus", `{"exp":-}`, false},
		{"dot without digits", `{"exp":1.}`, false},
		{"exponent without digits", `{"exp":1e}`, false},
		{"plus sign", `{"exp":+1}`, false},
		{"exp string", `{"exp":"1"}`, false},
		{"exp null", `{"exp":null}`, false},
		{"unknown nested", `{"x":{"y":[1,{"z":null},"s",true,false,[]]},"sub":"a"}`, true},
		{"unknown bad literal", `{"x":nul}`, false},
		{"unknown bad nested", `{"x":[1,]}`, false},
		{"unknown missing colon", `{"x":{"y" 1}}`, false},
		{"unknown bad key", `{"x":{1:2}}`, false},
		{"deep", `{"x":` + strings.Repeat("[", 60) + strings.Repeat("]", 60) + `}`, true},
		{"too deep", `{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, false},
		{"trailing comma", `{"sub":"a",}`, false},
		{"trailing data", `{"sub":"a"}x`, false},
		{"two objects", `{}{}`, false},
		{"unclosed", `{"sub":"a"`, false},
		{"unclosed string", `{"sub":"a}`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"empty input", ``, false},
		{"BOM", "\xef\xbb\xbf{}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if taken := agreesWithJSON(t, []byte(tt.payload)); taken != tt.taken {
				t.Errorf("%q taken: %v, want %v", tt.payload, taken, tt.taken)
			}
		})
	}
}

// FuzzDecodeClaims: whatever decodeClaims takes, json.Unmarshal takes
// with the same claims.
func FuzzDecodeClaims(f *testing.F) {
	for _, s := range []string{
		`{"sub":"alice","exp":1999999999,"iat":1700000000,"jti":"j-1"}`,
		`{"iss":"i","sub":"s","aud":["a","b"],"exp":1.5,"nbf":-2,"iat":3e2,"rooms":["r*"],"publish":["p"]}`,
		`{"SUB":"a","aud":"x","aud":null,"rooms":[],"rooms":null}`,
		`{"sub":"\"\\\/\b\f\n\r\t\u0041\ud83d\ude00\ud800"}`,
		"{\"sub\":\"a\xff\",\"x\":{\"y\":[1,-0.5e+3,true,null]}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		agreesWithJSON(t, b)
	})
}

// TestValidAgreesWithValidator compares hsFast.valid with the parser's
// jwt.Validator (the options New gives it) around its boundaries.
func TestValidAgreesWithValidator(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 500_000_000)
	var offsets []time.Duration
	for _, d := range []time.Duration{0, time.Nanosecond, time.Microsecond, time.Second, time.Hour} {
		offsets = append(offsets, -d, d)
	}
	for _, leeway := range []time.Duration{0, time.Second, time.Minute} {
		for _, exp := range offsets {
			for _, other := range offsets {
				for _, which := range []string{"", "nbf", "iat", "both"} {
					agreesWithValidator(t, leeway, now, tokenClaims{
						exp: now.Add(exp), hasExp: true,
						nbf: now.Add(other), hasNbf: which == "nbf" || which == "both",
						iat: now.Add(-other), hasIat: which == "iat" || which == "both",
					})
				}
			}
		}
		agreesWithValidator(t, leeway, now, tokenClaims{}) // no exp
	}
}

// FuzzValidAgreesWithValidator: hsFast.valid and jwt.Validator agree on
// any times.
func FuzzValidAgreesWithValidator(f *testing.F) {
	f.Add(int64(time.Second), int64(0), int64(time.Hour), int64(-time.Minute), int64(0), uint8(7))
	f.Fuzz(func(t *testing.T, leeway, now, exp, nbf, iat int64, has uint8) {
		if leeway < 0 {
			leeway = -leeway
		}
		n := time.Unix(0, now)
		agreesWithValidator(t, time.Duration(leeway%int64(time.Hour)), n, tokenClaims{
			exp: n.Add(time.Duration(exp)), hasExp: has&1 != 0,
			nbf: n.Add(time.Duration(nbf)), hasNbf: has&2 != 0,
			iat: n.Add(time.Duration(iat)), hasIat: has&4 != 0,
		})
	})
}

func agreesWithValidator(t *testing.T, leeway time.Duration, now time.Time, tc tokenClaims) {
	t.Helper()
	v := jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }))
	var c Claims
	tc.fill(&c)
	want := v.Validate(&c) == nil
	if got := (&hsFast{leeway: leeway}).valid(&tc, now); got != want {
		t.Fatalf("leeway %v, now %v, claims %+v: valid says %v, jwt.Validator %v", leeway, now, tc, got, want)
	}
}
