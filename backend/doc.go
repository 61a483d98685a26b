// Package backend proxies Herald's hooks to an application's HTTP backend,
// so that a Rails, Django, Laravel or Node app running next to the
// standalone server decides who connects, who joins which room, what gets
// published and how custom events are answered, and learns of
// connections, disconnections and presence through webhooks.
//
// A Proxy produces herald.Hooks (Proxy.Hooks): the library's own hooks
// decide, so the binary and an embedding Go program go through the same
// code path. Each hook is one POST of JSON to <URL>/<hook>, signed with
// HMAC-SHA256 over the timestamp and the body (see Sign and Verify), with
// a timeout per hook, a bound on the calls in flight per node, retries
// only for the hooks that ask a question (connect, join) and a circuit
// breaker that fails calls at once while the backend is down. The
// contract is in docs/backend.md.
//
// Webhooks (the "events" hook) go through a Queue: this node's events in
// order, posted in batches at least once with backoff, each with an
// idempotency key. The memory queue is lost with the process; the Redis
// queue (backend/redisqueue) keeps them across a crash, and another
// node posts a dead node's queue and the disconnected events of the
// connections it held once its lease lapses.
//
// Concurrency: a Proxy is safe for concurrent use; it owns one goroutine
// for the events (and one for the queue's lease) that Close stops.
package backend
