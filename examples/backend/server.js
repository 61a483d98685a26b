// An example backend for Herald's proxy hooks and webhooks (docs/backend.md),
// in Node 20 with no dependencies.
//
//   HERALD_BACKEND_SECRET=... node server.js [port]
//
// It prints "listening <port>" once it accepts requests (port 0: any free one).
// GET /events lists the webhook events received, de-duplicated by their id.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');

const secret = process.env.HERALD_BACKEND_SECRET || '';
if (secret.length < 32) {
  console.error('set HERALD_BACKEND_SECRET (at least 32 bytes), the same as herald serve --backend-secret');
  process.exit(2);
}
const maxSkewSeconds = 300;

// verify checks X-Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
function verify(header, body) {
  const parts = Object.fromEntries((header || '').split(',').map((p) => p.trim().split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1) return false;
  if (Math.abs(Date.now() / 1000 - t) > maxSkewSeconds) return false;
  const want = crypto.createHmac('sha256', secret).update(`${parts.t}.`).update(body).digest();
  const got = Buffer.from(parts.v1, 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

const events = new Map(); // id -> event: at least once in, exactly once here

const hooks = {
  // Who connects: the token names the user here; a real app would look up
  // its session cookie (req.cookies) or verify the token.
  connect(req) {
    if (!req.token || req.token === 'deny') {
      return { allow: false, status: 401, code: 'login_required', message: 'log in first' };
    }
    return { allow: true, user: req.token, rooms: ['lobby'], data: { via: 'node' } };
  },
  // A private:<user> room is its user's alone.
  join(req) {
    if (req.room.startsWith('private:') && req.room !== `private:${req.conn.user}`) {
      return { allow: false, code: 'forbidden', message: 'not your room' };
    }
    return { allow: true };
  },
  // Moderation: no spam, no links.
  publish(req) {
    if (req.event === 'spam') return { allow: false, code: 'moderated', message: 'no spam' };
    const text = req.data && req.data.text;
    if (typeof text === 'string' && /https?:\/\//.test(text)) {
      return { allow: true, data: { ...req.data, text: text.replace(/https?:\/\/\S+/g, '[link removed]') } };
    }
    return { allow: true };
  },
  // RPC: the answer is the client's reply.
  emit(req) {
    if (req.event === 'add') return { reply: { sum: req.data.a + req.data.b, by: req.conn.user } };
    return { error: { code: 'unknown_event', message: `no handler for ${req.event}` } };
  },
  events(req) {
    for (const e of req.events) if (!events.has(e.id)) events.set(e.id, e);
    return {};
  },
};

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/events') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify([...events.values()]));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const hook = hooks[req.url.slice(1)];
    if (req.method !== 'POST' || !hook) {
      res.writeHead(404).end();
      return;
    }
    if (!verify(req.headers['x-herald-signature'], body)) {
      res.writeHead(401).end('bad signature');
      return;
    }
    let answer;
    try {
      answer = hook(JSON.parse(body));
    } catch (err) {
      res.writeHead(500).end(String(err));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
});
server.keepAliveTimeout = 120000;
server.listen(Number(process.argv[2] || 3000), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
