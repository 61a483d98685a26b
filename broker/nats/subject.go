package nats

import "strings"

const hexDigits = "0123456789ABCDEF"

// escapeToken turns a room name into one valid subject token. Bytes other
// than ASCII letters, digits and -_:=@+~ are percent-encoded (so '.', '*',
// '>', whitespace and '%' itself never reach the subject). The empty room
// becomes "%", which no escaped name can produce.
func escapeToken(room string) string {
	if room == "" {
		return "%"
	}
	n := 0
	for i := 0; i < len(room); i++ {
		if !plain(room[i]) {
			n++
		}
	}
	if n == 0 {
		return room
	}
	var b strings.Builder
	b.Grow(len(room) + 2*n)
	for i := 0; i < len(room); i++ {
		c := room[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func plain(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_:=@+~", c) >= 0
}
