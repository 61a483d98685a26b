// Test helpers (outside test/, which node --test runs whole): build and run real Herald server processes on free ports.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';

export const REPO = fileURLToPath(new URL('../../..', import.meta.url));
export const API_KEY = 'test-api-key-0123456789';

const run = promisify(execFile);

/**
 * buildBinaries compiles Go main packages (import paths relative to the repo)
 * into a fresh temporary directory, once, so tests can kill and restart the
 * real processes (go run would leave its child behind).
 */
export async function buildBinaries(pkgs) {
  const dir = await mkdtemp(join(tmpdir(), 'herald-js-'));
  const bins = {};
  for (const pkg of pkgs) {
    const out = join(dir, pkg.split('/').pop());
    try {
      await run('go', ['build', '-o', out, pkg], { cwd: REPO, maxBuffer: 16 << 20 });
    } catch (err) {
      throw new Error(`go build ${pkg} failed (is Go on PATH?):\n${err.stderr || err.message}`);
    }
    bins[pkg] = out;
  }
  return { bins, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * freePort asks the kernel for a TCP port on 127.0.0.1 that is free now.
 * Another process may bind it before the one it is meant for: servers
 * that can bind port 0 do (startServer), others are checked and moved
 * (startRedis).
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * listeningAddr returns the addr of the "listening" line in a Herald
 * process's log (slog, text or JSON), or null while there is none.
 */
export function listeningAddr(log) {
  for (const line of log.split('\n')) {
    if (line.startsWith('{')) {
      try {
        const l = JSON.parse(line);
        if (l.msg === 'listening' && l.addr) return l.addr;
      } catch {
        // a partial line
      }
      continue;
    }
    const m = /(?:^|\s)msg="?listening"?\s(?:.*\s)?addr=(\S+)/.exec(line);
    if (m) return m[1];
  }
  return null;
}

/** addressInUse reports whether a process's log says it could not bind its port. */
const addressInUse = (log) => /address already in use|EADDRINUSE/i.test(log);

/**
 * startServer runs bin with args and --addr, waits until it logs the
 * address it bound ("listening", at level info or below) and /healthz
 * answers there, and returns a handle to stop (signal) or await it.
 * Without a port the server binds 127.0.0.1:0 and names the port it got:
 * a port picked free here could be taken by another test's process
 * before the server binds it, and that process would answer for it.
 * With a port (a restart where the clients were), a start that finds
 * it held is tried again until timeout.
 */
export async function startServer(bin, { port, args = [], timeout = 20000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const s = await startServerOnce(bin, port, args, deadline);
    if (s) return s;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** startServerOnce is one start of startServer; null when port was held. */
async function startServerOnce(bin, port, args, deadline) {
  const proc = spawn(bin, [...args, '--addr', `127.0.0.1:${port ?? 0}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (b) => (log += b));
  proc.stderr.on('data', (b) => (log += b));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => (gone = true));
  let addr = null;
  let held = false;
  try {
    await waitFor(async () => {
      if (gone) {
        if (port !== undefined && addressInUse(log) && Date.now() < deadline) {
          held = true;
          return true;
        }
        throw new Error(`server exited before it was healthy:\n${log}`);
      }
      addr ??= listeningAddr(log);
      if (!addr) return false;
      try {
        return (await fetch(`http://${addr}/healthz`)).ok;
      } catch {
        return false;
      }
    }, { timeout: Math.max(deadline - Date.now(), 1), what: `${bin} healthy` });
  } catch (err) {
    if (!gone) proc.kill('SIGKILL');
    throw err;
  }
  if (held) return null;
  const base = `http://${addr}`;
  return {
    port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
    base,
    ws: `ws://${addr}/ws`,
    proc,
    exited,
    log: () => log,
    /** stop sends signal (SIGKILL by default) and waits for the exit. */
    async stop(signal = 'SIGKILL') {
      if (!gone) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * startRedis runs redis-server (bin) on a free port without persistence
 * and resolves once it logs that it accepts connections; one that could
 * not bind its port (taken by another process since it was found free)
 * is started again on another.
 */
export async function startRedis(bin, { attempts = 5, timeout = 10000 } = {}) {
  for (let i = 0; i < attempts; i++) {
    const port = await freePort();
    const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stdout.on('data', (b) => (log += b));
    proc.stderr.on('data', (b) => (log += b));
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    let gone = false;
    exited.then(() => (gone = true));
    // "Ready to accept connections" comes after the bind: a server found
    // on the port before it may be another process.
    await waitFor(() => gone || /Ready to accept connections/.test(log), { what: 'redis-server ready', timeout });
    if (!gone) {
      return { port, proc, stop: async () => { if (!gone) proc.kill('SIGKILL'); await exited; } };
    }
    if (!addressInUse(log)) throw new Error(`redis-server exited:\n${log}`);
  }
  throw new Error(`redis-server found its port taken ${attempts} times`);
}

/**
 * freezableProxy forwards TCP connections to 127.0.0.1:target. freeze()
 * makes every connection open at that moment go silent both ways without
 * ever closing, on the client's side, as a dead server or a NAT that
 * dropped its mapping does; connections made afterwards flow normally.
 */
export async function freezableProxy(target) {
  const pairs = new Set();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on('data', (b) => pair.frozen || upstream.write(b));
    upstream.on('data', (b) => pair.frozen || client.write(b));
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on('close', () => pair.frozen || client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    freeze() {
      for (const p of pairs) p.frozen = true;
    },
    /**
     * cut resets every connection open now, as a network failure does, and
     * refuses new ones until restore.
     */
    cut() {
      refusing = true;
      for (const p of pairs) {
        p.client.resetAndDestroy();
        p.upstream.resetAndDestroy();
      }
    },
    restore() {
      refusing = false;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** waitFor polls cond until it returns truthy, or fails after timeout ms. */
export async function waitFor(cond, { timeout = 10000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** apiPublish posts body to the server's publish API and returns its JSON. */
export async function apiPublish(base, body, key = API_KEY) {
  const res = await fetch(`${base}/api/v1/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`publish: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * recordingWebSocket returns a ws subclass that logs, for the test, every
 * socket made (url and time), every frame sent and every frame received.
 */
export function recordingWebSocket() {
  const rec = { sockets: [], sent: [], received: [] };
  class Recording extends WebSocket {
    constructor(url, ...rest) {
      super(url, ...rest);
      rec.sockets.push({ url, at: Date.now() });
      this.on('message', (data, isBinary) => {
        if (!isBinary) rec.received.push(JSON.parse(data.toString()));
      });
    }
    send(data, ...rest) {
      rec.sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  return { WebSocket: Recording, rec };
}

/** collector returns a handler that pushes what it is called with, and the list. */
export function collector() {
  const got = [];
  const fn = (...args) => got.push(args.length === 1 ? args[0] : args);
  return { fn, got };
}
