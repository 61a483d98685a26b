'use strict';
// Reference server on Node ws speaking the Herald protocol v1 subset the
// benchmark uses: welcome on connect, join -> reply, publish -> event to
// every member of the room (encoded once). Env: PORT, HOST (127.0.0.1),
// JWT_SECRET (when set, an "Authorization: Bearer" HS256 token is required).
const http = require('node:http');
const { WebSocketServer } = require('ws');
const { verify, bearer } = require('./jwt');

const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || '127.0.0.1';
const secret = process.env.JWT_SECRET || '';

const rooms = new Map(); // room -> Set<ws>
let seq = 0;
let connSeq = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024, clientTracking: false });

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  if (!req.url.startsWith('/ws')) {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  let user = 'anon-' + (++connSeq);
  if (secret) {
    const claims = verify(bearer(req.headers.authorization), secret);
    if (!claims) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    user = claims.sub;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, user));
});

function send(ws, obj) {
  ws.send(JSON.stringify(obj));
}

function onConnection(ws, user) {
  const joined = new Set();
  ws.on('error', () => {});
  send(ws, { type: 'welcome', protocol: 1, connectionId: String(connSeq), userId: user, heartbeatMs: 0, resumed: false });
  ws.on('message', (buf, isBinary) => {
    if (isBinary) return;
    let m;
    try {
      m = JSON.parse(buf);
    } catch {
      send(ws, { type: 'error', code: 'bad_message', message: 'invalid JSON' });
      return;
    }
    switch (m.type) {
      case 'join': {
        if (typeof m.room !== 'string' || m.room === '') {
          send(ws, { type: 'error', id: m.id, code: 'bad_request', message: 'room required' });
          return;
        }
        let set = rooms.get(m.room);
        if (!set) rooms.set(m.room, (set = new Set()));
        set.add(ws);
        joined.add(m.room);
        if (m.id !== undefined) send(ws, { type: 'reply', id: m.id, data: { room: m.room } });
        return;
      }
      case 'publish': {
        if (!joined.has(m.room)) {
          send(ws, { type: 'error', id: m.id, code: 'not_joined', message: 'join first' });
          return;
        }
        const msgId = String(++seq);
        const frame = Buffer.from(JSON.stringify({ type: 'event', room: m.room, event: m.event, data: m.data, msgId, ts: Date.now() }));
        for (const member of rooms.get(m.room)) member.send(frame, { binary: false });
        if (m.id !== undefined) send(ws, { type: 'reply', id: m.id, data: { msgId } });
        return;
      }
      default:
        send(ws, { type: 'error', id: m.id, code: 'unknown_type', message: 'unknown type' });
    }
  });
  ws.on('close', () => {
    for (const r of joined) {
      const set = rooms.get(r);
      if (!set) continue;
      set.delete(ws);
      if (set.size === 0) rooms.delete(r);
    }
  });
}

server.listen(port, host, () => {
  console.log(`ws-server listening on ${host}:${port} (ws ${require('ws/package.json').version}, node ${process.version})`);
});
