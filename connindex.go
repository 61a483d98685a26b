package herald

import "github.com/heraldrt/herald/auth"

// connIndex finds a node's connections by user id and by token id (jti),
// so that revoking a user or a token, disconnecting a user and handing a
// session its carried messages (takeCarriedFor) visit the connections
// concerned instead of every connection of the node (among
// 100,000 connections a revocation's scan took ≈ 100 ms of CPU, a lookup
// ≈ 2 µs; BenchmarkFindUserConns).
//
// A connection is indexed under its user id (ConnInfo.UserID, which a
// refresh never changes) and, while its identity has one, under its
// token's jti, for as long as it is in Server.conns. The index is guarded
// by Server.connsMu, like conns: addConn and removeConn update both, and
// setIdentity, which a refresh calls, moves the connection to its new jti
// under that lock, so an entry never outlives its connection. Lock order:
// connsMu, then a connection's identMu.
//
// Cost: a user's only connection is one entry of a map of string to
// pointer whose key is the connection's own user id string (nothing is
// copied): 27 B per connection measured at 100,000, spare room included
// (TestConnIndexBytesPerConn; a swiss table's load, hence the figure,
// varies between its growths); a connection with a jti pays that again.
// A key with several connections moves to a map of slices.
type connIndex struct {
	users  keyIndex
	tokens keyIndex
}

// keyIndex maps a key to the connections indexed under it. Its zero value
// is empty and ready.
type keyIndex struct {
	one  map[string]*conn   // keys of exactly one connection
	many map[string][]*conn // keys of two or more
}

func (x *keyIndex) add(k string, c *conn) {
	if other, ok := x.one[k]; ok {
		delete(x.one, k)
		if x.many == nil {
			x.many = map[string][]*conn{}
		}
		x.many[k] = []*conn{other, c}
		return
	}
	if cs, ok := x.many[k]; ok {
		x.many[k] = append(cs, c)
		return
	}
	if x.one == nil {
		x.one = map[string]*conn{}
	}
	x.one[k] = c
}

func (x *keyIndex) remove(k string, c *conn) {
	if x.one[k] == c {
		delete(x.one, k)
		return
	}
	cs, ok := x.many[k]
	if !ok {
		return
	}
	for i, o := range cs {
		if o == c {
			cs[i] = cs[len(cs)-1]
			cs[len(cs)-1] = nil
			cs = cs[:len(cs)-1]
			break
		}
	}
	switch len(cs) {
	case 0:
		delete(x.many, k)
	case 1:
		delete(x.many, k)
		x.one[k] = cs[0]
	default:
		x.many[k] = cs
	}
}

// appendTo appends the connections indexed under k to dst.
func (x *keyIndex) appendTo(dst []*conn, k string) []*conn {
	if c, ok := x.one[k]; ok {
		return append(dst, c)
	}
	return append(dst, x.many[k]...)
}

// find returns the first connection indexed under k that match accepts,
// or nil.
func (x *keyIndex) find(k string, match func(*conn) bool) *conn {
	if c, ok := x.one[k]; ok {
		if match(c) {
			return c
		}
		return nil
	}
	for _, c := range x.many[k] {
		if match(c) {
			return c
		}
	}
	return nil
}

func (x *keyIndex) len() int {
	n := len(x.one)
	for _, cs := range x.many {
		n += len(cs)
	}
	return n
}

// tokenKey is the jti c is indexed under, "" for none. connsMu must be
// held (every change of c.ident after addConn holds it).
func tokenKey(c *conn) string {
	if c.ident == nil {
		return ""
	}
	return c.ident.TokenID
}

// add indexes c; connsMu must be held.
func (x *connIndex) add(c *conn) {
	x.users.add(c.info.UserID, c)
	if jti := tokenKey(c); jti != "" {
		x.tokens.add(jti, c)
	}
}

// remove forgets c; connsMu must be held.
func (x *connIndex) remove(c *conn) {
	x.users.remove(c.info.UserID, c)
	if jti := tokenKey(c); jti != "" {
		x.tokens.remove(jti, c)
	}
}

// setIdentity replaces c's identity (a refresh) and moves c in the index
// to the new identity's jti.
func (s *Server) setIdentity(c *conn, id *auth.Identity) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	_, indexed := s.conns[c]
	if indexed {
		if jti := tokenKey(c); jti != "" {
			s.index.tokens.remove(jti, c)
		}
	}
	c.identMu.Lock()
	c.ident = id
	c.identMu.Unlock()
	if indexed && id.TokenID != "" {
		s.index.tokens.add(id.TokenID, c)
	}
}

// connsOf returns this node's connections of user and of the token jti
// (either may be empty), each once.
func (s *Server) connsOf(user, jti string) []*conn {
	s.connsMu.Lock()
	var out []*conn
	if user != "" {
		out = s.index.users.appendTo(out, user)
	}
	if jti != "" {
		out = s.index.tokens.appendTo(out, jti)
	}
	s.connsMu.Unlock()
	if user != "" && jti != "" && len(out) > 1 {
		// A connection of the user with that token is in both lists.
		seen := make(map[*conn]struct{}, len(out))
		kept := out[:0]
		for _, c := range out {
			if _, dup := seen[c]; !dup {
				seen[c] = struct{}{}
				kept = append(kept, c)
			}
		}
		out = kept
	}
	return out
}
