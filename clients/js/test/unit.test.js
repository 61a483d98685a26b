// Unit tests: the client's decisions, against a scripted in-memory WebSocket,
// for cases a real server cannot be made to produce on demand.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeraldClient, HeraldError, NO_RECONNECT_CODES } from '../src/herald.js';
import { waitFor } from '../testutil/helpers.js';

/** fakeServer returns a WebSocket constructor whose sockets the test drives. */
function fakeServer() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('send on a socket not open');
      this.sent.push(JSON.parse(data));
    }
    close(code = 1005, reason = '') {
      if (this.readyState >= 2) return;
      this.readyState = 2;
      queueMicrotask(() => this.serverClose(code, reason));
    }
    // --- the test's side ---
    welcome(user = 'u', heartbeatMs = 30000) {
      this.readyState = 1;
      this.onopen?.({});
      this.frame({ type: 'welcome', protocol: 1, connectionId: 'c', sessionId: 's', userId: user, heartbeatMs });
    }
    frame(f) {
      this.onmessage?.({ data: JSON.stringify(f) });
    }
    serverClose(code, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    requests(type) {
      return this.sent.filter((f) => f.type === type);
    }
  }
  return { WebSocket: FakeWebSocket, sockets };
}

function newClient(fake, opts = {}) {
  return new HeraldClient('ws://herald.test/ws', {
    WebSocket: fake.WebSocket,
    reconnect: { min: 1, max: 4 },
    onError: () => {},
    ...opts,
  });
}

async function connected(fake, c) {
  const p = c.connect();
  await waitFor(() => fake.sockets.length > 0);
  fake.sockets.at(-1).welcome();
  return p;
}

describe('close codes', () => {
  const cases = [
    ...NO_RECONNECT_CODES.map((code) => ({ name: `${code}: stop`, code, reconnect: false })),
    ...[1000, 1001, 1006, 1011, 1013, 4008].map((code) => ({ name: `${code}: reconnect`, code, reconnect: true })),
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const fake = fakeServer();
      const states = [];
      const c = newClient(fake, { onState: (s, info) => states.push([s, info]) });
      await connected(fake, c);
      fake.sockets[0].serverClose(tc.code, 'bye');
      if (tc.reconnect) {
        await waitFor(() => fake.sockets.length === 2, { what: 'a reconnect' });
        fake.sockets[1].welcome();
        await waitFor(() => c.state === 'connected');
        await c.close();
      } else {
        await waitFor(() => c.state === 'closed');
        await new Promise((r) => setTimeout(r, 30));
        assert.equal(fake.sockets.length, 1, 'reconnected');
        const [, info] = states.at(-1);
        assert.equal(info.closeCode, tc.code);
        assert.equal(info.error.code, 'closed');
      }
    });
  }
});

describe('requests', () => {
  it('in flight when the connection drops: reject with disconnected', async () => {
    const fake = fakeServer();
    const c = newClient(fake);
    await connected(fake, c);
    const p = c.publish('r', 'e', 1);
    fake.sockets[0].serverClose(1006);
    await assert.rejects(p, (err) => err instanceof HeraldError && err.code === 'disconnected');
    await c.close();
  });

  it('made while reconnecting: sent once the rooms are joined again', async () => {
    const fake = fakeServer();
    const c = newClient(fake);
    await connected(fake, c);
    const join = c.join('lobby');
    fake.sockets[0].frame({ type: 'reply', id: fake.sockets[0].requests('join')[0].id, data: { room: 'lobby' } });
    await join;
    fake.sockets[0].serverClose(1006);
    await waitFor(() => c.state === 'reconnecting');
    const emitted = c.emit('ping', 1);
    await waitFor(() => fake.sockets.length === 2);
    const s = fake.sockets[1];
    s.welcome();
    await waitFor(() => s.sent.length === 1);
    assert.deepEqual(s.sent.map((f) => [f.type, f.room]), [['join', 'lobby']], 'the emit overtook the re-join');
    s.frame({ type: 'reply', id: s.sent[0].id, data: { room: 'lobby' } });
    await waitFor(() => s.requests('emit').length === 1);
    s.frame({ type: 'reply', id: s.requests('emit')[0].id, data: { pong: 1 } });
    assert.deepEqual(await emitted, { pong: 1 });
    await c.close();
  });

  it('time out', async () => {
    const fake = fakeServer();
    const c = newClient(fake, { requestTimeout: 30 });
    await connected(fake, c);
    await assert.rejects(c.join('x'), (err) => err.code === 'timeout');
    await c.close();
  });

  it('after close: reject with closed', async () => {
    const fake = fakeServer();
    const c = newClient(fake);
    await connected(fake, c);
    await c.close();
    await assert.rejects(c.join('x'), (err) => err.code === 'closed');
    assert.equal(fake.sockets.length, 1);
  });
});

describe('delivery', () => {
  it('acks a redelivered duplicate again, without handing it out twice', async () => {
    const fake = fakeServer();
    const got = [];
    const c = newClient(fake, { ackMax: 1 });
    c.on('e', (data) => got.push(data));
    await connected(fake, c);
    const s = fake.sockets[0];
    const ev = { type: 'event', room: 'r', event: 'e', data: 7, msgId: 'm1', ts: 1, ack: true };
    s.frame(ev);
    s.frame(ev);
    assert.deepEqual(got, [7]);
    assert.deepEqual(s.requests('ack').map((f) => f.msgIds), [['m1'], ['m1']]);
    await c.close();
  });

  it('forgets the oldest msgIds past dedupSize', async () => {
    const fake = fakeServer();
    const got = [];
    const c = newClient(fake, { dedupSize: 2 });
    c.onAny((m) => got.push(m.msgId));
    await connected(fake, c);
    const s = fake.sockets[0];
    for (const id of ['a', 'b', 'a', 'c', 'a']) s.frame({ type: 'event', room: 'r', event: 'e', msgId: id, ts: 1 });
    assert.deepEqual(got, ['a', 'b', 'c', 'a']);
    await c.close();
  });

  it('close sends the acks still pending', async () => {
    const fake = fakeServer();
    const c = newClient(fake, { ackInterval: 60000 });
    await connected(fake, c);
    const s = fake.sockets[0];
    s.frame({ type: 'event', room: 'r', event: 'e', msgId: 'x', ts: 1, ack: true });
    assert.equal(s.requests('ack').length, 0);
    await c.close();
    assert.deepEqual(s.requests('ack').map((f) => f.msgIds), [['x']]);
  });

  it('a throwing handler neither stops the others nor the ack', async () => {
    const fake = fakeServer();
    const errors = [];
    const c = newClient(fake, { ackMax: 1, onError: (e) => errors.push(e) });
    let second = 0;
    c.on('e', () => {
      throw new Error('boom');
    });
    c.on('e', () => second++);
    await connected(fake, c);
    fake.sockets[0].frame({ type: 'event', room: 'r', event: 'e', msgId: 'y', ts: 1, ack: true });
    assert.equal(second, 1);
    assert.equal(errors[0].message, 'boom');
    assert.equal(fake.sockets[0].requests('ack').length, 1);
    await c.close();
  });
});

describe('reconnect backoff', () => {
  it('full jitter within [0, min·2ⁿ], capped at max', async () => {
    const fake = fakeServer();
    const delays = [];
    const c = newClient(fake, {
      reconnect: { min: 2, max: 16 },
      onState: (s, info) => s === 'reconnecting' && delays.push(info.delayMs),
    });
    await connected(fake, c);
    fake.sockets[0].serverClose(1006);
    for (let n = 1; n <= 7; n++) {
      await waitFor(() => fake.sockets.length === n + 1);
      fake.sockets[n].serverClose(1006); // the attempt fails
    }
    await waitFor(() => delays.length >= 8);
    await c.close();
    delays.forEach((d, n) => {
      assert.ok(Number.isInteger(d) && d >= 0 && d <= Math.min(16, 2 * 2 ** n), `attempt ${n}: ${d} ms`);
    });
  });

  it('server_shutdown: keeps the socket for retryAfterMs, then dials', async () => {
    const fake = fakeServer();
    const c = newClient(fake);
    await connected(fake, c);
    const at = Date.now();
    fake.sockets[0].frame({ type: 'server_shutdown', retryAfterMs: 120, reason: 'server shutdown' });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(fake.sockets[0].readyState, 1, 'the socket was closed before retryAfterMs');
    await waitFor(() => fake.sockets.length === 2, { what: 'the reconnect' });
    assert.ok(Date.now() - at >= 120, `dialed after ${Date.now() - at} ms`);
    assert.equal(fake.sockets[0].readyState, 3, 'the old socket was not closed');
    await c.close();
  });
});

describe('dead server where pings are hidden (browsers)', () => {
  it('pings after heartbeatMs of silence, stays while answered, gives up after 2 × heartbeatMs', async () => {
    const hb = 100;
    const fake = fakeServer();
    const closes = [];
    const c = newClient(fake, { onState: (st, info) => st === 'reconnecting' && closes.push([info.closeCode, info.reason]) });
    const p = c.connect();
    await waitFor(() => fake.sockets.length > 0);
    const s = fake.sockets[0];
    s.welcome('u', hb);
    await p;
    // Answered pings keep the connection for many heartbeats.
    const until = Date.now() + 6 * hb;
    let answered = 0;
    while (Date.now() < until) {
      const pings = s.requests('ping');
      if (pings.length > answered) {
        assert.equal(pings.at(-1).id, 'heartbeat');
        s.frame({ type: 'reply', id: 'heartbeat', data: {} });
        answered = pings.length;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(answered >= 3, `${answered} pings in ${6 * hb} ms`);
    assert.equal(c.state, 'connected');
    // A ping answered with an error (a server from before ping) proves it alive too.
    s.frame({ type: 'error', id: 'heartbeat', code: 'unknown_type', message: 'unknown type "ping"' });
    // Then silence: the socket is given up as 1006, well before the
    // browser would notice, and the client dials again.
    const quietFrom = Date.now();
    const pingsBefore = s.requests('ping').length;
    await waitFor(() => c.state === 'reconnecting', { what: 'giving up on the silent server' });
    const took = Date.now() - quietFrom;
    assert.equal(s.requests('ping').length - pingsBefore, 1, 'pings sent during the silence');
    assert.ok(took >= 2 * hb && took < 4 * hb, `gave up after ${took} ms of silence`);
    assert.deepEqual(closes, [[1006, 'server not responding']]);
    assert.ok(s.readyState >= 2, 'the old socket was not closed');
    await waitFor(() => fake.sockets.length === 2, { what: 'the reconnect' });
    await c.close();
  });
});

describe('construction', () => {
  it('needs a WebSocket implementation', () => {
    const saved = globalThis.WebSocket;
    try {
      delete globalThis.WebSocket;
      assert.throws(() => new HeraldClient('ws://x/ws'), /options\.WebSocket/);
    } finally {
      if (saved) globalThis.WebSocket = saved;
    }
  });

  it('turns http URLs into ws URLs and adds params and the token', async () => {
    const fake = fakeServer();
    const c = new HeraldClient('https://h.test/ws?a=1', {
      WebSocket: fake.WebSocket, token: 't0k', params: { clientId: 'ada' },
    });
    await connected(fake, c);
    assert.equal(fake.sockets[0].url, 'wss://h.test/ws?a=1&clientId=ada&token=t0k');
    await c.close();
  });

  it('a failing token provider fails the first connect', async () => {
    const fake = fakeServer();
    const c = newClient(fake, { token: async () => { throw new Error('no session'); } });
    await assert.rejects(c.connect(), (err) => err.code === 'connect_failed' && /no session/.test(err.message));
    assert.equal(fake.sockets.length, 0);
  });
});

describe('gaps and positions', () => {
  it('a gap frame reaches onGap with its room', async () => {
    const fake = fakeServer();
    const gaps = [];
    const c = newClient(fake, { onGap: (room) => gaps.push(room) });
    await connected(fake, c);
    fake.sockets[0].frame({ type: 'gap', room: 'news' });
    assert.deepEqual(gaps, ['news']);
    await c.close();
  });

  it('a join reply read after later events does not move the position back', async () => {
    const fake = fakeServer();
    const c = newClient(fake);
    await connected(fake, c);
    const s = fake.sockets[0];
    const joined = c.join('h:r');
    await waitFor(() => s.requests('join').length === 1);
    s.frame({ type: 'event', room: 'h:r', event: 'e', msgId: 'm8', offset: 8, epoch: 'E' });
    s.frame({ type: 'reply', id: s.requests('join')[0].id, data: { room: 'h:r', offset: 7, epoch: 'E' } });
    await joined;
    assert.deepEqual(c.position('h:r'), { offset: 8, epoch: 'E', msgId: 'm8' });
    await c.close();
  });

  it('a rejoin gives the msgId of its position; recovered false takes the reply\'s position, even behind', async () => {
    const fake = fakeServer();
    const recoveries = [];
    const c = newClient(fake, { onRecovery: (room, ok) => recoveries.push([room, ok]) });
    await connected(fake, c);
    let s = fake.sockets[0];
    const joined = c.join('h:r');
    await waitFor(() => s.requests('join').length === 1);
    s.frame({ type: 'reply', id: s.requests('join')[0].id, data: { room: 'h:r', offset: 7, epoch: 'E', msgId: 'm7' } });
    await joined;
    s.frame({ type: 'event', room: 'h:r', event: 'e', msgId: 'm8', offset: 8, epoch: 'E' });
    s.serverClose(1006);
    await waitFor(() => fake.sockets.length === 2);
    s = fake.sockets[1];
    s.welcome();
    await waitFor(() => s.requests('join').length === 1);
    const rejoin = s.requests('join')[0];
    assert.deepEqual([rejoin.offset, rejoin.epoch, rejoin.msgId], [8, 'E', 'm8']);
    // The history was rolled back: offset 8 is another message now.
    s.frame({ type: 'reply', id: rejoin.id, data: { room: 'h:r', offset: 5, epoch: 'E', msgId: 'x5', recovered: false } });
    await waitFor(() => recoveries.length === 1);
    assert.deepEqual(recoveries, [['h:r', false]]);
    assert.deepEqual(c.position('h:r'), { offset: 5, epoch: 'E', msgId: 'x5' });
    await c.close();
  });
});
