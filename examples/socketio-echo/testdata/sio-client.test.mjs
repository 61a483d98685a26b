// Drives examples/socketio-echo with the real socket.io-client: run by
// socketio_test.go with SOCKETIO_URL set to the example's address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io, Manager } from "socket.io-client";

const URL = process.env.SOCKETIO_URL;
assert.ok(URL, "SOCKETIO_URL is not set");

// connect opens a socket and waits for its "auth" event, which the
// example emits right after accepting the CONNECT.
function connect(uri, opts) {
  const socket = io(uri, { forceNew: true, reconnection: false, ...opts });
  return new Promise((resolve, reject) => {
    socket.once("auth", (auth) => resolve({ socket, auth }));
    socket.once("connect_error", reject);
  });
}

function once(socket, event) {
  return new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// echo checks message → message-back and message-with-ack with text and
// binary arguments on a connected socket.
async function echo(socket) {
  const args = [1, "2", { 3: [true] }, Uint8Array.from([1, 2, 3]), { nested: Uint8Array.from([4, 5]) }];
  socket.emit("message", ...args);
  const back = await withTimeout(once(socket, "message-back"), 5000, "message-back");
  assert.deepEqual(back.slice(0, 3), [1, "2", { 3: [true] }]);
  assert.deepEqual([...new Uint8Array(back[3])], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(back[4].nested)], [4, 5]);

  const acked = await withTimeout(
    new Promise((resolve) => socket.emit("message-with-ack", "a", Uint8Array.from([9]), 7, (...r) => resolve(r))),
    5000,
    "message-with-ack",
  );
  assert.equal(acked[0], "a");
  assert.deepEqual([...new Uint8Array(acked[1])], [9]);
  assert.equal(acked[2], 7);

  // A server-to-client ack: the example emits "ack-request" with an ack
  // and reports the client's answer as "ack-response".
  socket.once("ack-request", (n, bytes, ack) => ack(n * 2, Uint8Array.from([...new Uint8Array(bytes)].reverse())));
  socket.emit("request-ack", 21, Uint8Array.from([1, 2, 3]));
  const answer = await withTimeout(once(socket, "ack-response"), 5000, "ack-response");
  assert.equal(answer[0], 42);
  assert.deepEqual([...new Uint8Array(answer[1])], [3, 2, 1]);
}

test("polling, then the upgrade to WebSocket", async () => {
  const { socket, auth } = await connect(URL, { auth: { token: "abc" } });
  try {
    assert.deepEqual(auth, { token: "abc" });
    assert.equal(socket.io.engine.transport.name === "polling" || socket.io.engine.transport.name === "websocket", true);
    if (socket.io.engine.transport.name !== "websocket") {
      await withTimeout(new Promise((resolve) => socket.io.engine.once("upgrade", resolve)), 5000, "upgrade");
    }
    assert.equal(socket.io.engine.transport.name, "websocket");
    await echo(socket);
  } finally {
    socket.disconnect();
  }
});

test("WebSocket only", async () => {
  const { socket, auth } = await connect(URL, { transports: ["websocket"] });
  try {
    assert.deepEqual(auth, {});
    assert.equal(socket.io.engine.transport.name, "websocket");
    await echo(socket);
  } finally {
    socket.disconnect();
  }
});

test("polling only", async () => {
  const { socket } = await connect(URL, { transports: ["polling"] });
  try {
    assert.equal(socket.io.engine.transport.name, "polling");
    await echo(socket);
  } finally {
    socket.disconnect();
  }
});

test("two namespaces over one connection", async () => {
  const manager = new Manager(URL, { reconnection: false, transports: ["websocket"] });
  const main = manager.socket("/");
  const custom = manager.socket("/custom", { auth: { room: "x" } });
  try {
    const [[a], [b]] = await withTimeout(Promise.all([once(main, "auth"), once(custom, "auth")]), 5000, "auth on / and /custom");
    assert.deepEqual(a, {});
    assert.deepEqual(b, { room: "x" });
    assert.notEqual(main.id, custom.id);
    assert.equal(manager.engine.transport.name, "websocket");
    // Leaving /custom keeps / working on the same connection.
    custom.disconnect();
    await echo(main);
  } finally {
    main.disconnect();
    custom.disconnect();
  }
});

test("an unknown namespace is refused", async () => {
  const socket = io(`${URL}/random`, { forceNew: true, reconnection: false });
  try {
    const [err] = await withTimeout(once(socket, "connect_error"), 5000, "connect_error");
    assert.equal(err.message, "Invalid namespace");
  } finally {
    socket.disconnect();
  }
});

test("the client disconnects and connects again", async () => {
  const { socket } = await connect(URL, { transports: ["websocket"] });
  const firstID = socket.id;
  socket.disconnect();
  socket.connect();
  await withTimeout(once(socket, "auth"), 5000, "auth after reconnect");
  try {
    assert.notEqual(socket.id, firstID);
    await echo(socket);
  } finally {
    socket.disconnect();
  }
});
