// Package socketio is the server side of the Socket.IO protocol (revision
// 5) over an Engine.IO connection: namespaces, CONNECT with its auth
// payload, EVENT and ACK in both directions, binary attachments,
// DISCONNECT from either side and the connect errors. It knows nothing of
// Herald's core (rooms, identities, sessions): the embedding code decides
// through the hooks of Config, and drives sockets through Socket's
// methods.
//
// A Server serves one set of namespaces. Each Engine.IO connection is
// handed to Server.Accept, which returns the Client that multiplexes the
// connection's namespaces; the Engine.IO layer then passes every message
// it receives to Client.HandleText or Client.HandleBinary, and tells
// Client.HandleClose once the connection is gone. The adapter sees the
// connection only through the small EngineConn interface, so a WebSocket,
// a long-polling session or an in-memory pipe serve alike.
//
// Like the reference server, the adapter closes the Engine.IO connection
// on anything the protocol does not allow: a packet that does not decode,
// a packet for a namespace the client has not joined other than a
// CONNECT, a CONNECT to a namespace it is already in, a CONNECT_ERROR from
// the client, a binary message that no binary packet announced, and a
// connection that joins no namespace within Config.ConnectTimeout. A
// CONNECT to a namespace the server does not serve, or one the OnConnect
// hook refuses, is answered with a CONNECT_ERROR and the connection stays
// open.
//
// Connection state recovery is the hooks' business: OnConnect sees the
// pid and offset a reconnecting client sends in its auth payload and
// returns the pid to hand back (ConnectResult.PID), and an Event's Offset
// is appended as its last argument, which the client keeps and sends back
// on its next reconnect.
//
// # Encoding once
//
// Prepare encodes an event for one namespace once; Socket.Send queues the
// same bytes to each recipient, as a broadcast should.
//
// # Concurrency contract
//
//   - HandleText and HandleBinary must be called from one goroutine at a
//     time per Client (the connection's reader); the hooks OnConnect,
//     OnEvent and OnDisconnect for packets of that client run on it, so a
//     slow hook delays only its own connection.
//   - HandleClose may be called from any goroutine, more than once; only
//     the first call counts.
//   - Socket's Emit, EmitWithAck, Send and Disconnect, and Client.Close,
//     are safe from any goroutine. They queue packets with the
//     EngineConn's SendText and SendBinary, which must not block: a
//     packet and its attachments are queued under one lock per Client, so
//     they are never interleaved with another packet's.
//   - The acks' timers are stopped when the client closes. The connect
//     timeout is one timer per Server for all its clients (their
//     deadlines in accept order): a client that joined or closed is
//     dropped from it at its deadline, without effect. The package starts
//     no goroutine of its own.
package socketio
