// Drives the npm engine.io-client (6.x) against the Engine.IO app of
// examples/socketio-echo: polling only, WebSocket only, and polling
// upgraded to WebSocket. Each run sends text and binary messages (one
// larger than a WebSocket frame buffer, several in one polling batch),
// expects them echoed in order, waits for two server pings and closes.
// Usage: node eio-client.cjs http://127.0.0.1:PORT
"use strict";
const { Socket } = require("engine.io-client");

const url = process.argv[2];

function run(name, opts, wantTransport) {
  return new Promise((resolve, reject) => {
    const socket = new Socket(url, { path: "/engine.io/", ...opts });
    const fail = (err) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`${name}: ${err}`));
    };
    const timer = setTimeout(() => fail("timed out"), 15000);
    const big = "x".repeat(100000);
    const want = ["hello", Buffer.from([1, 2, 3]), big, "é ✓", Buffer.alloc(0)];
    let got = 0;
    let pings = 0;
    let sent = false;
    const send = () => {
      if (sent) return;
      sent = true;
      for (const m of want) socket.send(m);
    };
    const maybeDone = () => {
      if (got === want.length && pings >= 2) {
        if (socket.transport.name !== wantTransport) {
          return fail(`transport ${socket.transport.name}, want ${wantTransport}`);
        }
        clearTimeout(timer);
        socket.close();
        resolve();
      }
    };
    socket.on("open", () => {
      if (wantTransport === "websocket" && socket.transport.name === "polling") {
        socket.on("upgrade", send); // messages after the upgrade
      } else {
        send();
      }
    });
    socket.on("message", (data) => {
      const w = want[got];
      const ok = typeof w === "string" ? data === w : Buffer.from(data).equals(w);
      if (!ok) return fail(`message ${got}: got ${String(data).slice(0, 40)}`);
      got++;
      maybeDone();
    });
    socket.on("ping", () => {
      pings++;
      maybeDone();
    });
    socket.on("error", (err) => fail(`error ${err}`));
    socket.on("close", (reason) => {
      if (got < want.length || pings < 2) fail(`closed: ${reason}`);
    });
  });
}

(async () => {
  await run("polling", { transports: ["polling"] }, "polling");
  console.log("ok polling");
  await run("websocket", { transports: ["websocket"] }, "websocket");
  console.log("ok websocket");
  await run("upgrade", { transports: ["polling", "websocket"] }, "websocket");
  console.log("ok upgrade");
})().catch((err) => {
  console.error(String(err));
  process.exit(1);
});
