// A socket.io-client 4.8 peer driven by the Go tests (socketio_test.go):
// it reads one JSON command per line on stdin and writes one JSON line per
// thing it sees on stdout. Buffers travel as {"$bin": base64}.
const { io } = require("socket.io-client");
const readline = require("readline");

const sockets = {};
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const enc = (v) => {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v instanceof ArrayBuffer ? new Uint8Array(v) : v).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(enc);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = enc(v[k]);
    return o;
  }
  return v;
};
const dec = (v) => {
  if (v && typeof v === "object" && !Array.isArray(v) && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
  if (Array.isArray(v)) return v.map(dec);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = dec(v[k]);
    return o;
  }
  return v;
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  const name = cmd.name || "s";
  switch (cmd.op) {
    case "connect": {
      const s = io(cmd.url, Object.assign({ forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 }, cmd.opts || {}));
      sockets[name] = s;
      s.on("connect", () => out({ name, type: "connect", id: s.id, recovered: s.recovered, transport: s.io.engine.transport.name }));
      s.io.engine && s.io.on("open", () => {
        s.io.engine.on("upgrade", (t) => out({ name, type: "upgrade", transport: t.name }));
      });
      s.on("connect_error", (e) => out({ name, type: "connect_error", message: e.message, data: e.data }));
      s.on("disconnect", (reason) => out({ name, type: "disconnect", reason }));
      s.onAny((event, ...args) => {
        let ack = null;
        if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
        out({ name, type: "event", event, args: enc(args) });
        if (ack) ack({ echo: args });
      });
      break;
    }
    case "emit": {
      const s = sockets[name];
      const args = dec(cmd.args || []);
      if (cmd.ack) {
        s.timeout(cmd.timeout || 5000).emit(cmd.event, ...args, (err, ...res) =>
          out({ name, type: "ack", tag: cmd.tag, err: err ? err.message : null, args: enc(res) }));
      } else {
        s.emit(cmd.event, ...args);
      }
      break;
    }
    case "disconnect":
      sockets[name].disconnect();
      break;
    case "exit":
      process.exit(0);
  }
});
out({ type: "ready" });
