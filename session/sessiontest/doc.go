// Package sessiontest is the conformance suite every session.Store runs:
// save, get, replace, touch, TTL expiry and delete, with the same table for
// the memory and Redis stores.
package sessiontest
