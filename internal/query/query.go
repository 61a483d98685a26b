package query

import (
	"net/url"
	"strings"
)

// Get returns the first value of key in raw, a URL's RawQuery, as
// url.ParseQuery(raw) followed by Values.Get(key) would: pairs are
// separated by '&', a pair with a ';' or that does not unescape is
// skipped, and keys and values are unescaped ('+' is a space).
func Get(raw, key string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue
			}
		}
		if k != key {
			continue
		}
		if !strings.ContainsAny(v, "%+") {
			return v
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		return uv
	}
	return ""
}
