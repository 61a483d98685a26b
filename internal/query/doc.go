// Package query reads one parameter of a URL's raw query without parsing
// the whole of it into a url.Values: a handshake that needs two or three
// parameters then allocates nothing but the values that are escaped. It
// keeps no state and is safe for concurrent use.
package query
