// Herald client for browsers and Node: wire protocol v1 (docs/protocol.md).
//
// One HeraldClient owns at most one WebSocket at a time. After connect() it
// keeps a connection up by itself:
//
//   - after a network cut or an unexpected close it waits an exponential
//     backoff with full jitter (a random delay in [0, min·2ⁿ], capped at max)
//     and dials again;
//   - after a server_shutdown frame it keeps receiving on the draining
//     node until the server's retryAfterMs has passed (counted from the
//     frame), then closes its side and dials again at once, so that little
//     is missed while it moves;
//   - after close codes that mean "do not come back" (1008, 4003, 4004) it
//     stops for good (state "closed", error in onState's info);
//   - where the socket reports a refused upgrade's HTTP status (ws in Node;
//     browsers do not), it stops on 400 and 404, and on 401 and 403 with a
//     fixed token, or after three in a row with a token function.
//
// The server keeps no room membership across connections, so the client
// remembers the rooms joined with join() (and forgotten with leave()) and
// joins them again on every new connection before it reports "connected".
// In rooms that keep history, every event carries an offset and an epoch;
// the client remembers the last it received per room and sends it when it
// joins the room again, so the server replays what was missed first
// (onRecovery(room, recovered) says whether it could: false means the
// app should fetch the room's state again; so does onGap(room)).
// Events published with ack are acknowledged in batches once every handler
// has returned; the server redelivers what it does not see acknowledged, so
// events whose msgId was seen recently are dropped.
//
// Everything runs on the caller's event loop: handlers are called in the
// order frames arrived and need no locking.
//
// This file has no dependencies and is copied verbatim into demo/static by
// `go generate ./demo`; keep it self-contained.

/**
 * Close codes after which the client does not reconnect: those of the
 * server's table (protocol.CloseCodes, docs/protocol.md) that say "no". A Go
 * test compares the two.
 */
export const NO_RECONNECT_CODES = Object.freeze([1008, 4003, 4004]);

// How many reconnects in a row the server may refuse with 401 or 403 before
// a client with a token function gives up (the function may come up with a
// token the server accepts).
const MAX_AUTH_REFUSALS = 3;

const DEFAULTS = Object.freeze({
  reconnect: { min: 500, max: 30000 },
  ackInterval: 500,
  ackMax: 64,
  requestTimeout: 10000,
  dedupSize: 4096,
  tokenParam: 'token',
});

// The protocol allows 1–1024 ids in one ack frame.
const MAX_ACK_IDS = 1024;
// A connection that lived this long resets the backoff (capped by max).
const STABLE_AFTER_MS = 10000;
// How long close() waits for the closing handshake before giving up on it.
const CLOSE_WAIT_MS = 1000;
const OPEN = 1;
// HEARTBEAT_ID is the id of the ping requests sent where pings are hidden;
// no request waits for it, so its reply only proves the server alive.
const HEARTBEAT_ID = 'heartbeat';

/**
 * HeraldError is every failure the client reports. code is the server's
 * error code (no_handler, forbidden, not_joined, …) for a refused request,
 * or one of the client's own: timeout, disconnected, closed, connect_failed,
 * refused.
 */
export class HeraldError extends Error {
  constructor(code, message, extra = undefined) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

export class HeraldClient {
  #url;
  #opts;
  #WebSocket;
  #state = 'idle';
  #closed = false;
  #connectPromise = null;
  #firstConnect = null; // {resolve, reject} until the first "connected"
  #everConnected = false;

  #session = null; // {ws, welcomed, retryAt, started, done, liveTimer}
  #welcome = null;
  #attempt = 0;
  #refusals = 0; // reconnects refused with 401/403 in a row
  #sleepTimer = null;
  #wakeSleep = null;

  #nextId = 1;
  #pending = new Map(); // request id → {resolve, reject, timer}
  #waiters = new Set(); // requests waiting for "connected": {resolve, reject}
  #rooms = new Set();
  #positions = new Map(); // room → {offset, epoch, msgId}: the last event received

  #handlers = new Map(); // event name → Set of fn(data, message)
  #anyHandlers = new Set(); // fn(message)
  #seen = new Map(); // msgId → true, oldest first
  #ackIds = [];
  #ackTimer = null;

  /**
   * @param {string} url ws:, wss:, http: or https: URL of the server's
   *   WebSocket endpoint (relative URLs resolve against location in a page).
   * @param {object} [options] see herald.d.ts.
   */
  constructor(url, options = {}) {
    const o = options ?? {};
    const WS = o.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      throw new TypeError(
        'herald: no WebSocket implementation: pass one as options.WebSocket (in Node 20: `import { WebSocket } from "ws"`)',
      );
    }
    const rc = { ...DEFAULTS.reconnect, ...(o.reconnect ?? {}) };
    rc.min = positive(rc.min, DEFAULTS.reconnect.min);
    rc.max = Math.max(positive(rc.max, DEFAULTS.reconnect.max), rc.min);
    this.#url = url;
    this.#WebSocket = WS;
    this.#opts = {
      token: o.token,
      tokenParam: o.tokenParam || DEFAULTS.tokenParam,
      params: o.params ?? {},
      protocols: o.protocols,
      reconnect: rc,
      ackInterval: positive(o.ackInterval, DEFAULTS.ackInterval),
      ackMax: Math.min(Math.floor(positive(o.ackMax, DEFAULTS.ackMax)), MAX_ACK_IDS),
      requestTimeout: positive(o.requestTimeout, DEFAULTS.requestTimeout),
      dedupSize: Math.floor(positive(o.dedupSize, DEFAULTS.dedupSize)),
      onState: o.onState,
      onRecovery: o.onRecovery,
      onGap: o.onGap,
      onError: o.onError ?? ((err) => console.error('herald:', err)),
    };
  }

  /** The current state: idle, connecting, connected, reconnecting or closed. */
  get state() {
    return this.#state;
  }

  /** The welcome frame of the current (or last) connection, or null. */
  get welcome() {
    return this.#welcome;
  }

  /** The rooms the client is in, and joins again after a reconnect. */
  get rooms() {
    return [...this.#rooms];
  }

  /**
   * connect opens the first connection. It resolves with the welcome frame
   * once connected, and rejects (state "closed") if that first attempt
   * fails: later losses are retried by the client itself. Calling it again
   * returns the same promise.
   */
  connect() {
    if (this.#connectPromise) return this.#connectPromise;
    if (this.#closed) return Promise.reject(new HeraldError('closed', 'herald: client is closed'));
    this.#connectPromise = new Promise((resolve, reject) => {
      this.#firstConnect = { resolve, reject };
    });
    this.#setState('connecting', { attempt: 0 });
    this.#run();
    return this.#connectPromise;
  }

  /** join enters room; the client re-joins it after every reconnect. */
  async join(room) {
    const data = await this.#request({ type: 'join', room });
    if (!this.#closed) {
      this.#rooms.add(room);
      this.#joined(room, data);
    }
    return data;
  }

  /**
   * position returns {offset, epoch, msgId} of the last event of room
   * received (before any, the room's position when it was joined; msgId
   * is '' when the server gave none), for rooms that keep history;
   * undefined otherwise.
   */
  position(room) {
    const p = this.#positions.get(room);
    return p ? { ...p } : undefined;
  }

  // joined records a position (a join's reply, an event's) unless it is
  // behind the one recorded in the same epoch. A reply that says
  // recovered false gives the room's position now, which may be behind
  // (a history rolled back): it is taken as it is.
  #joined(room, data) {
    if (!data || typeof data !== 'object' || !(data.offset > 0 || typeof data.epoch === 'string')) return;
    const msgId = typeof data.msgId === 'string' ? data.msgId : '';
    const old = this.#positions.get(room);
    const offset = data.offset ?? 0;
    if (old && data.recovered !== false && old.epoch === data.epoch &&
      (old.offset > offset || (old.offset === offset && (old.msgId !== '' || msgId === '')))) return;
    this.#positions.set(room, { offset, epoch: data.epoch ?? '', msgId });
  }

  /**
   * leave exits room. Leaving a room the connection is not in (for example
   * while reconnecting) succeeds: the room is forgotten either way.
   */
  async leave(room) {
    this.#rooms.delete(room);
    this.#positions.delete(room);
    if (this.#state !== 'connected') return { room };
    try {
      return await this.#request({ type: 'leave', room });
    } catch (err) {
      if (err.code === 'not_joined' || err.code === 'disconnected') return { room };
      throw err;
    }
  }

  /**
   * publish sends an event to every member of room (the client must have
   * joined it) and resolves with the message's msgId.
   */
  async publish(room, event, data, { ack = false, idempotencyKey = undefined } = {}) {
    const frame = { type: 'publish', room, event };
    if (data !== undefined) frame.data = data;
    if (ack) frame.ack = true;
    // In a room that keeps history, a retry with the same key is stored
    // and delivered once, and answered with the first one's msgId.
    if (idempotencyKey !== undefined) frame.idempotencyKey = String(idempotencyKey);
    const reply = await this.#request(frame);
    return reply?.msgId;
  }

  /** emit hands a custom event to the server's OnEvent hook; resolves with its reply. */
  emit(event, data) {
    const frame = { type: 'emit', event };
    if (data !== undefined) frame.data = data;
    return this.#request(frame);
  }

  /** on calls fn(data, message) for every event named event; returns an unsubscribe function. */
  on(event, fn) {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** off removes a handler added with on. */
  off(event, fn) {
    const set = this.#handlers.get(event);
    if (!set) return;
    set.delete(fn);
    if (set.size === 0) this.#handlers.delete(event);
  }

  /** onAny calls fn(message) for every event; returns an unsubscribe function. */
  onAny(fn) {
    this.#anyHandlers.add(fn);
    return () => this.#anyHandlers.delete(fn);
  }

  /**
   * close stops the client for good: pending acks are sent, the socket is
   * closed with 1000, and pending requests reject with code "closed".
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#flushAcks();
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.#wake();
    const s = this.#session;
    const err = new HeraldError('closed', 'herald: client closed');
    this.#failAll(err);
    this.#setState('closed', {});
    if (this.#firstConnect) {
      this.#firstConnect.reject(err);
      this.#firstConnect = null;
    }
    if (s && s.ws.readyState <= OPEN) {
      try {
        s.ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
      let t;
      await Promise.race([s.done, new Promise((r) => (t = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(t);
      if (s.ws.readyState !== 3 && typeof s.ws.terminate === 'function') s.ws.terminate();
    }
  }

  // ---- connection lifecycle ----

  async #run() {
    while (!this.#closed) {
      let end;
      try {
        end = await this.#serve();
      } catch (error) {
        end = { error }; // token provider failed, or a bad URL
      }
      if (this.#closed) return;
      if (!this.#everConnected) {
        const detail = end.error ? end.error.message : `close ${end.code}${end.reason ? ` ${end.reason}` : ''}`;
        this.#stop(new HeraldError('connect_failed', `herald: connect failed: ${detail}`, {
          closeCode: end.code, reason: end.reason, cause: end.error,
        }));
        return;
      }
      if (end.welcomed) this.#refusals = 0;
      if (end.status !== undefined && this.#refusedForGood(end.status)) {
        this.#stop(new HeraldError('refused', `herald: the server refused the reconnect with HTTP ${end.status}`, {
          status: end.status,
        }));
        return;
      }
      if (NO_RECONNECT_CODES.includes(end.code)) {
        this.#stop(new HeraldError('closed', `herald: server closed the connection for good: ${end.code} ${end.reason ?? ''}`.trim(), {
          closeCode: end.code, reason: end.reason,
        }));
        return;
      }
      let delay;
      if (end.retryAt !== undefined) {
        // The server asked for this delay: it is not a failure.
        delay = Math.max(0, end.retryAt - Date.now());
        this.#attempt = 0;
      } else {
        if (end.welcomed && Date.now() - end.started >= Math.min(STABLE_AFTER_MS, this.#opts.reconnect.max)) {
          this.#attempt = 0;
        }
        delay = this.#backoff();
      }
      this.#setState('reconnecting', {
        attempt: this.#attempt,
        delayMs: delay,
        closeCode: end.code,
        reason: end.reason,
        retryAfterMs: end.retryAfterMs,
        error: end.error,
      });
      await this.#sleep(delay);
    }
  }

  // refusedForGood reports whether a refused upgrade would be refused again:
  // 400 and 404 (the request itself is wrong), 401 and 403 (the
  // credentials) unless a token function may supply better ones.
  #refusedForGood(status) {
    switch (status) {
      case 400:
      case 404:
        return true;
      case 401:
      case 403:
        this.#refusals++;
        return typeof this.#opts.token !== 'function' || this.#refusals >= MAX_AUTH_REFUSALS;
      default:
        return false;
    }
  }

  #backoff() {
    const { min, max } = this.#opts.reconnect;
    const ceil = Math.min(max, min * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.floor(Math.random() * (ceil + 1));
  }

  #sleep(ms) {
    return new Promise((resolve) => {
      this.#wakeSleep = resolve;
      this.#sleepTimer = setTimeout(resolve, ms);
    });
  }

  #wake() {
    clearTimeout(this.#sleepTimer);
    this.#wakeSleep?.();
    this.#wakeSleep = null;
  }

  #stop(err) {
    this.#closed = true;
    this.#failAll(err);
    this.#setState('closed', { error: err, closeCode: err.closeCode, reason: err.reason });
    if (this.#firstConnect) {
      this.#firstConnect.reject(err);
      this.#firstConnect = null;
    }
  }

  async #dialURL() {
    const base = globalThis.location?.href;
    const u = base ? new URL(this.#url, base) : new URL(this.#url);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    for (const [k, v] of Object.entries(this.#opts.params)) {
      if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    }
    const w = this.#welcome;
    if (w && typeof w.sessionId === 'string' && typeof w.resumeToken === 'string' && w.resumeToken) {
      // Resume the session on whichever node answers: same user, rooms restored.
      u.searchParams.set('sessionId', w.sessionId);
      u.searchParams.set('resumeToken', w.resumeToken);
      // Rooms that keep history are joined again with their position
      // (onWelcome), not restored by the resume.
      u.searchParams.set('recover', '1');
    }
    const tok = this.#opts.token;
    if (tok !== undefined && tok !== null) {
      // Called before every attempt so that an expiring token is refreshed.
      const t = typeof tok === 'function' ? await tok() : tok;
      if (t) u.searchParams.set(this.#opts.tokenParam, String(t));
    }
    return u.toString();
  }

  // serve runs one connection and resolves with how it ended.
  async #serve() {
    const url = await this.#dialURL();
    if (this.#closed) return {};
    const ws = this.#opts.protocols ? new this.#WebSocket(url, this.#opts.protocols) : new this.#WebSocket(url);
    let resolveDone;
    const s = {
      ws,
      welcomed: false,
      started: 0,
      retryAt: undefined,
      retryAfterMs: undefined,
      status: undefined, // HTTP status of a refused upgrade, where visible
      done: new Promise((r) => (resolveDone = r)),
      liveTimer: null,
      leaveTimer: null, // after server_shutdown: when to leave
      lastSeen: 0,
      pingAt: 0, // when the last ping request went out (browsers)
    };
    this.#session = s;
    ws.onopen = null;
    ws.onerror = (ev) => {
      // The close event that follows says the rest. ws (Node) reports a
      // refused upgrade as "Unexpected server response: 401"; browsers do
      // not tell the status.
      const m = /Unexpected server response: (\d{3})/.exec(ev?.message ?? ev?.error?.message ?? '');
      if (m) s.status = Number(m[1]);
    };
    ws.onmessage = (ev) => this.#onMessage(s, ev.data);
    ws.onclose = (ev) => {
      if (s.ended) return;
      s.ended = true;
      clearInterval(s.liveTimer);
      clearTimeout(s.leaveTimer);
      if (this.#session === s) this.#session = null;
      this.#failAll(new HeraldError('disconnected', 'herald: connection lost'), false);
      this.#ackIds = [];
      clearTimeout(this.#ackTimer);
      this.#ackTimer = null;
      resolveDone({
        code: ev.code,
        reason: ev.reason,
        welcomed: s.welcomed,
        started: s.started,
        retryAt: s.retryAt,
        retryAfterMs: s.retryAfterMs,
        status: s.status,
      });
    };
    // ws (Node) exposes pings: watch them to spot a dead server (the
    // protocol's 2 × heartbeatMs). Browsers hide pings; there watchPings
    // asks with a ping request instead.
    if (pingsVisible(ws)) {
      ws.on('ping', () => (s.lastSeen = Date.now()));
    }
    return s.done;
  }

  // watchPings gives the connection up when nothing, ping or frame, came
  // from the server for 2 × heartbeatMs. Where pings are hidden (browsers),
  // it sends a ping request after heartbeatMs of silence, whose reply
  // counts as a frame; a dead server sends none, and the socket, which
  // might take minutes to notice, is abandoned as closed with 1006.
  #watchPings(s, heartbeatMs) {
    if (!(heartbeatMs > 0)) return;
    const visible = pingsVisible(s.ws);
    s.lastSeen = Date.now();
    s.liveTimer = setInterval(
      () => {
        const quiet = Date.now() - s.lastSeen;
        if (quiet > 2 * heartbeatMs) {
          if (visible) s.ws.terminate();
          else this.#abandon(s);
        } else if (!visible && quiet >= heartbeatMs && !(s.pingAt > s.lastSeen) && s.ws.readyState === OPEN) {
          s.pingAt = Date.now(); // one ping per silence
          s.ws.send(JSON.stringify({ type: 'ping', id: HEARTBEAT_ID }));
        }
      },
      visible ? heartbeatMs : heartbeatMs / 4,
    );
  }

  // abandon ends a session whose server stopped answering, without waiting
  // for the socket's own close, which needs the dead server's reply.
  #abandon(s) {
    const { ws } = s;
    ws.onclose?.({ code: 1006, reason: 'server not responding' });
    ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close(1000, 'server not responding');
    } catch {
      // already closing
    }
  }

  #onMessage(s, raw) {
    if (typeof raw !== 'string') return; // v1 is text only
    let f;
    try {
      f = JSON.parse(raw);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    s.lastSeen = Date.now();
    if (!s.welcomed) {
      if (f.type === 'welcome') this.#onWelcome(s, f);
      return;
    }
    switch (f.type) {
      case 'event':
        this.#onEvent(f);
        break;
      case 'gap':
        // The server's node may have missed messages of the room that
        // history cannot give back.
        if (typeof f.room === 'string' && this.#opts.onGap) this.#call(this.#opts.onGap, f.room);
        break;
      case 'reply': {
        const p = this.#takePending(f.id);
        p?.resolve(f.data);
        break;
      }
      case 'error': {
        if (f.id === HEARTBEAT_ID) break; // a server from before ping: alive all the same
        const err = new HeraldError(f.code ?? 'unknown', f.message ?? f.code ?? 'herald: request failed');
        const p = this.#takePending(f.id);
        if (p) p.reject(err);
        else this.#report(err);
        break;
      }
      case 'server_shutdown': {
        const ms = Number.isFinite(f.retryAfterMs) ? Math.max(0, f.retryAfterMs) : 0;
        s.retryAfterMs = ms;
        s.retryAt = Date.now() + ms;
        // Keep receiving from the draining node until then: it still
        // delivers, and leaving at once would miss that much.
        clearTimeout(s.leaveTimer);
        s.leaveTimer = setTimeout(() => {
          this.#flushAcks();
          try {
            s.ws.close(1000, 'server shutdown');
          } catch {
            // already closing
          }
        }, ms);
        break;
      }
      default:
      // Unknown frame types are ignored (protocol rule).
    }
  }

  async #onWelcome(s, f) {
    s.welcomed = true;
    s.started = Date.now();
    this.#welcome = f;
    this.#watchPings(s, Number.isFinite(f.heartbeatMs) ? f.heartbeatMs : 0);
    const rooms = [...this.#rooms];
    // With the last position seen, the server replays what was missed of
    // a room that keeps history before its live events.
    const joins = rooms.map((room) => {
      const frame = { type: 'join', room };
      const p = this.#positions.get(room);
      // The msgId of the message at the offset lets the server check that
      // its history still has it there (not so after a rollback).
      if (p) Object.assign(frame, { offset: p.offset, epoch: p.epoch }, p.msgId ? { msgId: p.msgId } : {});
      return this.#request(frame, true).then((data) => {
        if (this.#session !== s) return data;
        this.#joined(room, data);
        if (typeof data?.recovered === 'boolean' && this.#opts.onRecovery) {
          this.#call(this.#opts.onRecovery, room, data.recovered);
        }
        return data;
      });
    });
    const results = await Promise.allSettled(joins);
    if (this.#session !== s || this.#closed) return; // lost while re-joining
    results.forEach((r, i) => {
      if (r.status === 'rejected' && r.reason?.code !== 'disconnected') {
        this.#rooms.delete(rooms[i]);
        this.#positions.delete(rooms[i]);
        r.reason.room = rooms[i];
        this.#report(r.reason);
      }
    });
    this.#everConnected = true;
    this.#setState('connected', { welcome: f });
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
    if (this.#firstConnect) {
      this.#firstConnect.resolve(f);
      this.#firstConnect = null;
    }
  }

  #onEvent(f) {
    const id = typeof f.msgId === 'string' ? f.msgId : '';
    if (typeof f.room === 'string' && Number.isSafeInteger(f.offset) && f.offset > 0) {
      // Forward only within an epoch: a redelivered acked message may be
      // older than the last event.
      this.#joined(f.room, { offset: f.offset, epoch: typeof f.epoch === 'string' ? f.epoch : '', msgId: id });
    }
    const dup = id !== '' && this.#seen.has(id);
    if (id !== '' && !dup) {
      this.#seen.set(id, true);
      if (this.#seen.size > this.#opts.dedupSize) this.#seen.delete(this.#seen.keys().next().value);
    }
    if (!dup) {
      const msg = { room: f.room, event: f.event, data: f.data, msgId: f.msgId, ts: f.ts };
      if (typeof f.from === 'string') msg.from = f.from; // set by the server: cannot be forged
      if (f.ack === true) msg.ack = true;
      if (f.offset !== undefined) msg.offset = f.offset;
      if (f.epoch !== undefined) msg.epoch = f.epoch;
      for (const fn of [...(this.#handlers.get(f.event) ?? [])]) this.#call(fn, msg.data, msg);
      for (const fn of [...this.#anyHandlers]) this.#call(fn, msg);
    }
    // A redelivered duplicate is acknowledged again: the earlier ack may
    // have been lost, and the server keeps redelivering until it sees one.
    if (f.ack === true && id !== '') this.#queueAck(id);
  }

  #call(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      this.#report(err);
    }
  }

  #queueAck(id) {
    this.#ackIds.push(id);
    if (this.#ackIds.length >= this.#opts.ackMax) {
      this.#flushAcks();
    } else if (!this.#ackTimer) {
      this.#ackTimer = setTimeout(() => this.#flushAcks(), this.#opts.ackInterval);
    }
  }

  #flushAcks() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    const ws = this.#session?.ws;
    while (this.#ackIds.length > 0 && ws?.readyState === OPEN) {
      const msgIds = this.#ackIds.splice(0, MAX_ACK_IDS);
      ws.send(JSON.stringify({ type: 'ack', msgIds }));
    }
  }

  // ---- requests ----

  async #request(frame, internal = false) {
    const deadline = Date.now() + this.#opts.requestTimeout;
    if (this.#closed) throw new HeraldError('closed', 'herald: client is closed');
    if (this.#state === 'idle') throw new HeraldError('closed', 'herald: call connect() first');
    if (!internal && this.#state !== 'connected') await this.#whenConnected(deadline);
    const s = this.#session;
    if (!s || s.ws.readyState !== OPEN) throw new HeraldError('disconnected', 'herald: connection lost');
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new HeraldError('timeout', `herald: no reply to ${frame.type} within ${this.#opts.requestTimeout} ms`));
      }, Math.max(0, deadline - Date.now()));
      this.#pending.set(id, { resolve, reject, timer });
      s.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  #whenConnected(deadline) {
    return new Promise((resolve, reject) => {
      const w = {};
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new HeraldError('timeout', 'herald: not connected in time'));
      }, Math.max(0, deadline - Date.now()));
      w.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      w.reject = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      this.#waiters.add(w);
    });
  }

  #takePending(id) {
    if (id === undefined || id === null) return undefined;
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  // failAll rejects in-flight requests, and when waiters is true, also the
  // calls waiting for a connection (those outlive a disconnect otherwise).
  #failAll(err, waiters = true) {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.#pending.delete(id);
    }
    if (!waiters) return;
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
  }

  #setState(state, info) {
    this.#state = state;
    if (this.#opts.onState) this.#call(this.#opts.onState, state, info);
  }

  #report(err) {
    try {
      this.#opts.onError(err);
    } catch {
      // an error handler that throws has nowhere left to report to
    }
  }
}

// pingsVisible reports whether ws shows the server's pings (ws in Node
// does; browsers' WebSocket does not) and can be torn down at once.
function pingsVisible(ws) {
  return typeof ws.on === 'function' && typeof ws.terminate === 'function';
}

function positive(v, def) {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : def;
}
