'use strict';
// Reference server on Socket.IO 4.8 speaking the benchmark's scenario as
// Socket.IO events: "welcome" on connect, "join" {id, room} -> "reply"
// {id, data}, "publish" {room, event, data} -> "event" to the room.
// WebSocket transport only, no compression. Env: PORT, HOST (127.0.0.1),
// JWT_SECRET (Authorization: Bearer HS256 token required), REDIS_URL (use
// @socket.io/redis-adapter so several nodes share rooms).
const http = require('node:http');
const { Server } = require('socket.io');
const { verify, bearer } = require('./jwt');

const port = Number(process.env.PORT || 8091);
const host = process.env.HOST || '127.0.0.1';
const secret = process.env.JWT_SECRET || '';
const redisURL = process.env.REDIS_URL || '';

let seq = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  if (!req.url.startsWith('/socket.io/')) {
    res.writeHead(404);
    res.end();
  }
});
const io = new Server(server, {
  serveClient: false,
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 64 * 1024,
});

if (secret) {
  io.use((socket, next) => {
    const claims = verify(bearer(socket.handshake.headers.authorization), secret);
    if (!claims) return next(new Error('unauthorized'));
    socket.data.user = claims.sub;
    next();
  });
}

io.on('connection', (socket) => {
  socket.emit('welcome', { type: 'welcome', protocol: 1, connectionId: socket.id, userId: socket.data.user || socket.id });
  socket.on('join', (m) => {
    if (!m || typeof m.room !== 'string' || m.room === '') {
      socket.emit('herald_error', { type: 'error', id: m && m.id, code: 'bad_request' });
      return;
    }
    socket.join(m.room);
    socket.emit('reply', { type: 'reply', id: m.id, data: { room: m.room } });
  });
  socket.on('publish', (m) => {
    if (!m || !socket.rooms.has(m.room)) {
      socket.emit('herald_error', { type: 'error', id: m && m.id, code: 'not_joined' });
      return;
    }
    io.to(m.room).emit('event', { type: 'event', room: m.room, event: m.event, data: m.data, msgId: String(++seq), ts: Date.now() });
  });
});

async function main() {
  if (redisURL) {
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = createClient({ url: redisURL });
    const sub = pub.duplicate();
    pub.on('error', (e) => console.error('redis pub:', e.message));
    sub.on('error', (e) => console.error('redis sub:', e.message));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  server.listen(port, host, () => {
    console.log(`socketio-server listening on ${host}:${port} (socket.io ${require('socket.io/package.json').version}, node ${process.version}, redis ${redisURL ? 'on' : 'off'})`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
