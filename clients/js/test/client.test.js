// Integration tests: the JS client against a real `herald serve` process.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { HeraldClient, HeraldError } from '../src/herald.js';
import {
  API_KEY, apiPublish, buildBinaries, collector, freezableProxy, recordingWebSocket, startRedis, startServer, waitFor,
} from '../testutil/helpers.js';

const ACK_TIMEOUT_MS = 300;
const SERVE = [
  'serve', '--api-key', API_KEY, '--log-format', 'text',
  '--drain-timeout', '2s', '--drain-retry-after', '1s', `--ack-timeout`, `${ACK_TIMEOUT_MS}ms`,
];

let bin;
let cleanup;
let srv; // shared by the tests that do not stop their server
const clients = [];

before(async () => {
  const b = await buildBinaries(['./cmd/herald']);
  bin = b.bins['./cmd/herald'];
  cleanup = b.cleanup;
  srv = await startServer(bin, { args: SERVE });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await srv?.stop();
  await cleanup?.();
});

/** client makes a HeraldClient closed at the end of the file. */
function client(url, opts = {}) {
  const c = new HeraldClient(url, {
    WebSocket,
    reconnect: { min: 50, max: 500 },
    onError: () => {},
    ...opts,
  });
  clients.push(c);
  return c;
}

describe('rooms', () => {
  it('join, publish and receive, on every member', async () => {
    const alice = client(`${srv.ws}?clientId=alice`);
    const bob = client(srv.ws, { params: { clientId: 'bob' } });
    const wa = await alice.connect();
    const wb = await bob.connect();
    assert.equal(wa.userId, 'alice');
    assert.equal(wb.userId, 'bob');
    assert.equal(alice.state, 'connected');
    const a = collector();
    const b = collector();
    const any = collector();
    alice.on('message', a.fn);
    bob.on('message', b.fn);
    bob.onAny(any.fn);
    assert.deepEqual(await alice.join('chat'), { room: 'chat' });
    await bob.join('chat');

    const msgId = await alice.publish('chat', 'message', { text: 'hi' });
    assert.equal(typeof msgId, 'string');
    await waitFor(() => a.got.length === 1 && b.got.length === 1, { what: 'both members got the message' });
    const [data, msg] = b.got[0];
    assert.deepEqual(data, { text: 'hi' });
    assert.equal(msg.room, 'chat');
    assert.equal(msg.event, 'message');
    assert.equal(msg.msgId, msgId);
    assert.ok(Math.abs(msg.ts - Date.now()) < 60000, `ts ${msg.ts} is a Unix ms time`);
    assert.equal(any.got[0].msgId, msgId);

    // Leaving stops delivery; the other member still gets messages.
    await bob.leave('chat');
    assert.deepEqual(bob.rooms, []);
    await alice.publish('chat', 'message', { text: 'second' });
    await waitFor(() => a.got.length === 2, { what: 'second message' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.got.length, 1, 'bob left the room but still got a message');
  });

  it('refused requests reject with the server error code', async () => {
    const c = client(`${srv.ws}?clientId=carol`);
    await c.connect();
    const cases = [
      { name: 'emit without OnEvent hook', call: () => c.emit('typing', { on: true }), code: 'no_handler' },
      { name: 'publish to a room not joined', call: () => c.publish('elsewhere', 'm', 1), code: 'not_joined' },
      { name: 'join another user room', call: () => c.join('user:dave'), code: 'forbidden' },
      { name: 'empty room name', call: () => c.join(''), code: 'bad_request' },
    ];
    for (const tc of cases) {
      await assert.rejects(tc.call(), (err) => {
        assert.ok(err instanceof HeraldError, `${tc.name}: ${err}`);
        assert.equal(err.code, tc.code, tc.name);
        assert.ok(err.message.length > 0, tc.name);
        return true;
      }, tc.name);
    }
    assert.equal(c.state, 'connected', 'an error frame closed the connection');
    assert.deepEqual(c.rooms, [], 'a refused join was remembered');
  });

  it('receives messages published through the server API, to a room and to the user', async () => {
    const c = client(`${srv.ws}?clientId=erin`);
    await c.connect();
    await c.join('news');
    const got = collector();
    c.onAny(got.fn);
    const r1 = await apiPublish(srv.base, { room: 'news', event: 'headline', data: { t: 'x' } });
    const r2 = await apiPublish(srv.base, { user: 'erin', event: 'dm', data: 'just for you' });
    await waitFor(() => got.got.length === 2, { what: 'two API messages' });
    assert.deepEqual(got.got.map((m) => [m.room, m.event, m.msgId]), [
      ['news', 'headline', r1.msgId],
      ['user:erin', 'dm', r2.msgId],
    ]);
  });
});

describe('reconnect', () => {
  it('stops when the server refuses the reconnect for good: 401 with a fixed token, three with a function', async () => {
    // The token is signed with the first server's secret; the second server,
    // on the same port, has another secret and answers the reconnect with 401.
    const secretA = 'js-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const secretB = 'js-test-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    const mint = async () => {
      const p = spawn(bin, ['token', '--jwt-secret', secretA, '--sub', 'gwen', '--ttl', '1h']);
      let out = '';
      p.stdout.on('data', (b) => (out += b));
      await new Promise((resolve) => p.on('exit', resolve));
      return out.trim();
    };
    const token = await mint();
    for (const variant of ['fixed', 'function']) {
      const s1 = await startServer(bin, { args: [...SERVE, '--jwt-secret', secretA] });
      const states = [];
      const c = client(s1.ws, {
        token: variant === 'fixed' ? token : async () => token,
        onState: (st, info) => states.push({ st, info }),
      });
      await c.connect();
      await s1.stop('SIGKILL');
      const s2 = await startServer(bin, { port: s1.port, args: [...SERVE, '--jwt-secret', secretB] });
      try {
        await waitFor(() => c.state === 'closed', { timeout: 15000, what: `${variant}: client closed` });
        const err = states.at(-1).info.error;
        assert.equal(err?.code, 'refused', `${variant}: ${err}`);
        assert.equal(err.status, 401);
        const metrics = await (await fetch(`${s2.base}/metrics`)).text();
        const rejected = metrics.split('\n').filter((l) => l.startsWith('herald_upgrades_rejected_total'))
          .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
        assert.equal(rejected, variant === 'fixed' ? 1 : 3, `${variant}: upgrades refused by the second server`);
      } finally {
        await c.close();
        await s2.stop();
      }
    }
  });

  it('reconnects after the server is killed and restarted, and re-joins its rooms', async () => {
    const s1 = await startServer(bin, { args: SERVE });
    let tokens = 0;
    const { WebSocket: WS, rec } = recordingWebSocket();
    const states = [];
    const c = client(`${s1.ws}?clientId=frank`, {
      WebSocket: WS,
      token: async () => `tok-${++tokens}`,
      tokenParam: 'access_token',
      onState: (st) => states.push(st),
    });
    await c.connect();
    await c.join('ops');
    await c.join('dev');
    const got = collector();
    c.onAny(got.fn);

    await s1.stop('SIGKILL');
    await waitFor(() => c.state === 'reconnecting', { what: 'state reconnecting' });
    // A few attempts fail against the closed port before the restart.
    await waitFor(() => rec.sockets.length >= 3, { what: 'reconnect attempts while down' });
    const s2 = await startServer(bin, { port: s1.port, args: SERVE });
    try {
      await waitFor(() => c.state === 'connected', { what: 'reconnected' });
      assert.deepEqual(c.rooms.sort(), ['dev', 'ops']);
      await apiPublish(s2.base, { room: 'ops', event: 'alert', data: 1 });
      await apiPublish(s2.base, { room: 'dev', event: 'build', data: 2 });
      await waitFor(() => got.got.length === 2, { what: 'messages in both re-joined rooms' });

      // The token provider runs before every attempt; its value goes in the
      // configured query parameter, next to the URL's own.
      assert.equal(tokens, rec.sockets.length);
      rec.sockets.forEach((s, i) => {
        const u = new URL(s.url);
        assert.equal(u.searchParams.get('access_token'), `tok-${i + 1}`);
        assert.equal(u.searchParams.get('clientId'), 'frank');
      });
      assert.deepEqual(states.slice(0, 3), ['connecting', 'connected', 'reconnecting']);
      assert.equal(states.at(-1), 'connected');
    } finally {
      await c.close();
      await s2.stop();
    }
  });

  it('resumes its session on a server that shares Redis, after a kill -9 and restart', async (t) => {
    const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
    if (!redisBin) {
      if (process.env.CI) throw new Error('redis-server not found: apt-get install -y redis-server');
      t.skip('redis-server not found');
      return;
    }
    const redis = await startRedis(redisBin);
    try {
      const args = [...SERVE, '--redis-url', `redis://127.0.0.1:${redis.port}/0`];
      const s1 = await startServer(bin, { args });
      const { WebSocket: WS, rec } = recordingWebSocket();
      const c = client(`${s1.ws}?clientId=kim`, { WebSocket: WS });
      const first = await c.connect();
      assert.equal(first.resumed, false);
      await c.join('ops');
      await s1.stop('SIGKILL');
      const s2 = await startServer(bin, { port: s1.port, args });
      try {
        await waitFor(() => c.state === 'connected' && c.welcome.resumed === true, { what: 'resumed' });
        assert.equal(c.welcome.sessionId, first.sessionId);
        assert.deepEqual(c.welcome.rooms, ['ops'], 'the server restored the room');
        const u = new URL(rec.sockets.at(-1).url);
        assert.equal(u.searchParams.get('sessionId'), first.sessionId);
        assert.ok(u.searchParams.get('resumeToken'));
      } finally {
        await c.close();
        await s2.stop();
      }
    } finally {
      await redis.stop();
    }
  });

  it('honours server_shutdown: reconnects no sooner than retryAfterMs', async () => {
    const s1 = await startServer(bin, { args: SERVE });
    const { WebSocket: WS, rec } = recordingWebSocket();
    const reconnecting = [];
    const c = client(`${s1.ws}?clientId=grace`, {
      WebSocket: WS,
      // A backoff far below retryAfterMs, so an early reconnect would show.
      reconnect: { min: 10, max: 50 },
      onState: (st, info) => st === 'reconnecting' && reconnecting.push(info),
    });
    await c.connect();
    await c.join('lobby');
    const during = collector();
    c.onAny(during.fn);

    const stopped = s1.stop('SIGTERM');
    await waitFor(() => rec.received.some((f) => f.type === 'server_shutdown'), { what: 'server_shutdown' });
    // Until retryAfterMs has passed the client still receives from the
    // draining node.
    await apiPublish(s1.base, { room: 'lobby', event: 'during-drain', data: true });
    await waitFor(() => during.got.some((e) => e.event === 'during-drain'), { what: 'a message from the draining node' });
    await stopped;
    const shutdown = rec.received.find((f) => f.type === 'server_shutdown');
    assert.ok(shutdown, 'no server_shutdown frame before the server exited');
    const exit = await s1.exited;
    assert.equal(exit.code, 0, `drain exit:\n${s1.log()}`);
    const info = reconnecting[0];
    assert.equal(info.retryAfterMs, shutdown.retryAfterMs);
    assert.ok(shutdown.retryAfterMs >= 500 && shutdown.retryAfterMs <= 1500, `retryAfterMs ${shutdown.retryAfterMs}`);

    const s2 = await startServer(bin, { port: s1.port, args: SERVE });
    try {
      await waitFor(() => c.state === 'connected', { timeout: 15000, what: 'reconnected after drain' });
      // The socket closed by the client after server_shutdown is the first;
      // the next one must wait out retryAfterMs from the frame's arrival.
      const frameAt = rec.sockets[0].at; // lower bound of the frame's arrival
      const firstRetry = rec.sockets[1];
      assert.ok(firstRetry, 'no reconnect attempt');
      const waited = firstRetry.at - frameAt;
      assert.ok(waited >= shutdown.retryAfterMs, `reconnected after ${waited} ms < retryAfterMs ${shutdown.retryAfterMs}`);
      const got = collector();
      c.onAny(got.fn);
      await apiPublish(s2.base, { room: 'lobby', event: 'back', data: true });
      await waitFor(() => got.got.length === 1, { what: 'message in the re-joined room' });
    } finally {
      await c.close();
      await s2.stop();
    }
  });

  it('spots a frozen server by its missing pings (2 × heartbeatMs)', async () => {
    const s1 = await startServer(bin, { args: [...SERVE, '--heartbeat-interval', '200ms'] });
    const c = client(`${s1.ws}?clientId=heidi`);
    try {
      const w = await c.connect();
      assert.equal(w.heartbeatMs, 200);
      await new Promise((r) => setTimeout(r, 700)); // pings keep a live server's connection up
      assert.equal(c.state, 'connected');
      s1.proc.kill('SIGSTOP'); // the TCP connection stays open, but nothing answers
      const stopped = Date.now();
      await waitFor(() => c.state === 'reconnecting', { timeout: 3000, what: 'the dead server spotted' });
      // The last ping came up to one interval before the freeze.
      assert.ok(Date.now() - stopped >= 150, `gave up after ${Date.now() - stopped} ms`);
    } finally {
      s1.proc.kill('SIGCONT');
      await c.close();
      await s1.stop();
    }
  });

  it('does not reconnect when the first connection fails', async () => {
    // Port 1: nothing listens there (a port merely found free could be
    // bound by another test's server meanwhile).
    const c = client('ws://127.0.0.1:1/ws');
    await assert.rejects(c.connect(), (err) => err instanceof HeraldError && err.code === 'connect_failed');
    assert.equal(c.state, 'closed');
  });
});

describe('recovery', () => {
  it('gets what was published while it was cut off, once and in order, and says whether it recovered', async () => {
    const s = await startServer(bin, { args: [...SERVE, '--history', 'h:*=1000,tiny:*=3'] });
    const proxy = await freezableProxy(s.port);
    const recoveries = [];
    const { WebSocket: WS, rec } = recordingWebSocket();
    const c = client(`${proxy.base.replace('http', 'ws')}/ws?clientId=rita`, {
      WebSocket: WS,
      onRecovery: (room, recovered) => recoveries.push([room, recovered]),
    });
    try {
      await c.connect();
      const joined = await c.join('h:feed');
      assert.equal(typeof joined.epoch, 'string');
      await c.join('tiny:x');
      const got = collector();
      c.on('n', got.fn);
      for (let i = 1; i <= 5; i++) {
        const r = await apiPublish(s.base, { room: 'h:feed', event: 'n', data: i });
        assert.equal(r.offset, i);
      }
      await apiPublish(s.base, { room: 'tiny:x', event: 't', data: 0 });
      await waitFor(() => got.got.length === 5, { what: 'the first 5' });
      const fifth = got.got[4][1].msgId;
      assert.deepEqual(c.position('h:feed'), { offset: 5, epoch: joined.epoch, msgId: fifth });

      proxy.cut();
      await waitFor(() => c.state === 'reconnecting', { what: 'state reconnecting' });
      for (let i = 6; i <= 20; i++) await apiPublish(s.base, { room: 'h:feed', event: 'n', data: i });
      for (let i = 1; i <= 5; i++) await apiPublish(s.base, { room: 'tiny:x', event: 't', data: i });
      proxy.restore();
      await waitFor(() => c.state === 'connected', { what: 'reconnected' });
      await waitFor(() => recoveries.length === 2, { what: 'both rooms reported' });
      for (let i = 21; i <= 25; i++) await apiPublish(s.base, { room: 'h:feed', event: 'n', data: i });
      await waitFor(() => got.got.length === 25, { what: 'all 25' });
      assert.deepEqual(got.got.map(([d]) => d), Array.from({ length: 25 }, (_, i) => i + 1));
      assert.deepEqual(got.got.map(([, m]) => m.offset), Array.from({ length: 25 }, (_, i) => i + 1));
      assert.deepEqual(recoveries.sort(), [['h:feed', true], ['tiny:x', false]]);
      const rejoin = rec.sent.filter((f) => f.type === 'join' && f.room === 'h:feed').at(-1);
      assert.equal(rejoin.offset, 5);
      assert.equal(rejoin.epoch, joined.epoch);
      assert.equal(rejoin.msgId, fifth); // checked by the server against its history
      assert.equal(new URL(rec.sockets.at(-1).url).searchParams.get('recover'), '1');
    } finally {
      await c.close();
      await proxy.close();
      await s.stop();
    }
  });

  it('publishes with an idempotency key: a retry is delivered once, with the same reply', async () => {
    const s = await startServer(bin, { args: [...SERVE, '--history', 'h:*=100'] });
    const c = client(`${s.ws}?clientId=ida`);
    try {
      await c.connect();
      await c.join('h:idem');
      const got = collector();
      c.on('e', got.fn);
      const a = await c.publish('h:idem', 'e', 1, { idempotencyKey: 'k1' });
      const b = await c.publish('h:idem', 'e', 1, { idempotencyKey: 'k1' });
      assert.equal(a, b);
      await c.publish('h:idem', 'e', 2);
      await waitFor(() => got.got.length === 2, { what: 'two events' });
      assert.deepEqual(got.got.map(([d]) => d), [1, 2]);
    } finally {
      await c.close();
      await s.stop();
    }
  });
});

describe('acknowledged delivery', () => {
  it('acks in batches, so the server does not redeliver', async () => {
    const { WebSocket: WS, rec } = recordingWebSocket();
    const c = client(`${srv.ws}?clientId=heidi`, { WebSocket: WS, ackInterval: 100, ackMax: 3 });
    await c.connect();
    await c.join('orders');
    const got = collector();
    c.on('order', got.fn);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await apiPublish(srv.base, { room: 'orders', event: 'order', data: i, ack: true })).msgId);
    await waitFor(() => got.got.length === 5, { what: 'five acked messages' });
    // Long enough for every redelivery of an unacknowledged message.
    await new Promise((r) => setTimeout(r, ACK_TIMEOUT_MS * 4));
    const deliveries = rec.received.filter((f) => f.type === 'event' && ids.includes(f.msgId));
    assert.equal(deliveries.length, 5, 'the server redelivered: acks were not sent or not accepted');
    const acks = rec.sent.filter((f) => f.type === 'ack');
    assert.deepEqual(acks.flatMap((f) => f.msgIds).sort(), [...ids].sort());
    assert.ok(acks.length < 5 && acks.every((f) => f.msgIds.length <= 3), `acks not batched: ${JSON.stringify(acks)}`);
    assert.ok(!rec.received.some((f) => f.type === 'error'), 'an ack was refused');
  });

  it('control: the server does redeliver to a client that does not ack', async () => {
    // Without this, the test above would pass against a server that never redelivers.
    const ws = new WebSocket(`${srv.ws}?clientId=ivan`);
    const frames = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await waitFor(() => frames.some((f) => f.type === 'welcome'), { what: 'welcome' });
    ws.send(JSON.stringify({ type: 'join', id: 1, room: 'orders2' }));
    await waitFor(() => frames.some((f) => f.type === 'reply'), { what: 'join reply' });
    const { msgId } = await apiPublish(srv.base, { room: 'orders2', event: 'order', data: 1, ack: true });
    await waitFor(() => frames.filter((f) => f.msgId === msgId).length >= 2, { what: 'a redelivery' });
    ws.close();
  });

  it('drops redeliveries of a msgId it has seen, and still acks them', async () => {
    const { WebSocket: WS, rec } = recordingWebSocket();
    // Acks held back past the server's ack timeout: the server redelivers.
    const c = client(`${srv.ws}?clientId=judy`, { WebSocket: WS, ackInterval: ACK_TIMEOUT_MS * 3, ackMax: 64 });
    await c.connect();
    await c.join('dedup');
    const got = collector();
    c.onAny(got.fn);
    const { msgId } = await apiPublish(srv.base, { room: 'dedup', event: 'e', data: 'once', ack: true });
    await waitFor(() => rec.received.filter((f) => f.msgId === msgId).length >= 2, { what: 'a redelivery on the wire' });
    await waitFor(() => rec.sent.some((f) => f.type === 'ack'), { timeout: 5000, what: 'the batched ack' });
    assert.equal(got.got.length, 1, `handler saw ${got.got.length} deliveries of one message`);
    assert.equal(got.got[0].msgId, msgId);
    const acked = rec.sent.filter((f) => f.type === 'ack').flatMap((f) => f.msgIds);
    assert.ok(acked.includes(msgId));
  });
});
