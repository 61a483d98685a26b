// Package engineio is the server side of Engine.IO protocol revision 4,
// the transport layer under Socket.IO: sessions over HTTP long-polling
// and WebSocket, the upgrade from one to the other, heartbeats, payload
// batching and the reference server's handshake, errors and statuses.
// The byte format is package protocol/engineio's; WebSockets are
// package transport's connections.
//
// A Server is an http.Handler mounted at a path ("/engine.io/",
// "/socket.io/"). Each session is a Socket; Config.OnConnection gives it
// a Handler for its messages (or Config.NewOwner makes the Socket inside
// an object of the application's, an Owner, whose OnConnection does: the
// session and the application's state for it in one allocation). A broadcast is encoded once with
// Server.NewMessage and the same bytes are queued to every Socket with
// Socket.Send, whichever transport each one uses.
//
// # Transports
//
// Polling: the handshake GET is answered at once with the open packet;
// then each GET waits until packets are buffered for the session and
// takes them all, joined by the record separator (binary as 'b' and
// base64), and each POST carries packets from the client (at most
// MaxPayload bytes, answered "ok"). Two GETs, or two POSTs, at once
// break the transport's rules and close the session, as does a GET
// abandoned by the client.
//
// WebSocket: one packet per frame, binary messages as binary frames.
// A WebSocket opened with the sid of a polling session is a probe: it
// answers "2probe" with "3probe" and ends the pending GET with a noop,
// and on "5" it becomes the session's transport; what was buffered for
// the next poll is sent on it, in order, and later polls are refused. A
// GET that comes once the probe is open may have been sent after the
// client's "2probe" and "5", which another goroutine reads: it waits for
// the "5" (up to 100 ms after the probe's answer) and is refused when it
// comes, as a server reading in arrival order would refuse it.
//
// # Bounds
//
// Whatever a client can make the server hold is bounded: request bodies
// by MaxPayload; what waits to be sent to one client by
// MaxBufferedBytes (the polling buffer, or the WebSocket's send queue),
// beyond which the session closes with ErrBufferFull; the number of
// sessions by Config.AllowRequest, which the application uses to refuse
// handshakes, and those on long-polling, which hold no socket, by
// Config.MaxPolling, exactly: each polling handshake reserves its place
// atomically before it is vetted. A session that stops answering pings closes after
// PingInterval+PingTimeout (over WebSocket, not while what the client
// sent waits unread, in its socket or as whole frames in the read buffer
// behind a message the Handler still holds: the server, not the client,
// is late; any message, like a pong, gives the pong PingInterval+
// PingTimeout more, as the reference server's), and a sid the server
// does not know (closed,
// or opened on another node behind a load balancer without sticky
// sessions) is answered 400 {"code":1,"message":"Session ID unknown"} at
// once. The server knows by their sid only the sessions that began on
// polling: one opened on WebSocket is never asked for again by its
// client, so it saves the map entry, and a request carrying its sid gets
// that same answer (the reference server's is code 3, "Bad request").
//
// # Concurrency contract
//
// An idle WebSocket session holds no goroutine: frames are read with
// transport's TryRead and NotifyReadable. A polling session holds the
// goroutine of its pending GET (net/http's) and nothing else.
// Heartbeats of every session of a Server run on one timer and heap
// (no timer per socket). Socket.Send never blocks. A Handler's methods
// for one Socket never run concurrently; OnMessage runs on the
// goroutine that read the message and OnClose runs once, after the last
// OnMessage. Socket.mu guards a session's state and is held only for
// field updates; the lock order is Socket.mu, then the clock's. An
// upgrade's "5" waits for a POST in progress, so that the POST's
// messages and the WebSocket's are never handled at once. Every
// goroutine the Server starts (WebSocket readers and closing handshakes,
// upgrade timeouts, closes run off the clock) is counted and Shutdown
// waits for it. Shutdown finds the sessions in the
// sid map and, for those opened on WebSocket, in the clock's heap, which
// holds each of them from add to its end.
package engineio
