// The admin console in headless Chromium against two herald nodes on Redis.
// Run by TestAdminConsoleBrowser (admin_browser_test.go), which starts the
// nodes and passes NODE_A, NODE_B, ADMIN_PASSWORD, SHOTS (where screenshots
// go), CHROMIUM_PATH and JS_DIR (clients/js, for playwright-core and ws).

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.JS_DIR, 'package.json'));
const { chromium } = require('playwright-core');
const { WebSocket } = require('ws');

const { NODE_A, NODE_B, ADMIN_PASSWORD, SHOTS } = process.env;
const TIMEOUT = 15000;
const problems = [];

function step(name) {
  console.log(`- ${name}`);
}

/** client opens a WebSocket as user (anonymous id) and joins rooms. */
async function client(base, user, rooms = []) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, { headers: { 'X-Client-Id': user } });
  const c = { ws, user, frames: [], closed: null };
  ws.on('message', (b) => c.frames.push(JSON.parse(b.toString())));
  ws.on('close', (code, reason) => (c.closed = { code, reason: reason.toString() }));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
  await until(() => c.frames.find((f) => f.type === 'welcome') || c.closed, `${user} welcome`);
  if (!c.frames.find((f) => f.type === 'welcome')) {
    throw Object.assign(new Error(`closed before the welcome: ${c.closed.code} ${c.closed.reason}`), { closed: c.closed });
  }
  for (const [i, room] of rooms.entries()) {
    ws.send(JSON.stringify({ type: 'join', id: `j${i}`, room }));
    await until(() => c.frames.find((f) => f.type === 'reply' && f.id === `j${i}`), `${user} joined ${room}`);
  }
  return c;
}

async function until(cond, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const clients = [];
try {
  const ctx = await browser.newContext({ viewport: { width: 1180, height: 720 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => m.type() === 'error' && !/status of 40[13]|status of 429/.test(m.text()) && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  step('sign in on node-a');
  assert.equal((await page.goto(`${NODE_A}/admin/`)).status(), 200);
  await page.locator('#login:not([hidden])').waitFor();
  await shot(page, 'login');
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('#login-button');
  await page.locator('#app:not([hidden])').waitFor();

  step('the overview shows both nodes, with no connection');
  const conns = (node) => page.locator(`#nodes tr[data-node="${node}"] td.conns`);
  await until(async () => (await conns('node-a').count()) === 1 && (await conns('node-b').count()) === 1, 'both nodes listed');
  await until(async () => (await conns('node-a').textContent()) === '0' && (await conns('node-b').textContent()) === '0', 'both at 0');

  step('clients connect: the counts move');
  const ada = await client(NODE_B, 'ada', ['lobby']);
  const bob = await client(NODE_A, 'bob', ['lobby', 'ops']);
  const cy = await client(NODE_A, 'cy', ['lobby']);
  clients.push(ada, bob, cy);
  await until(async () => (await conns('node-b').textContent()) === '1', 'node-b counts ada');
  await until(async () => (await conns('node-a').textContent()) === '2', 'node-a counts bob and cy');
  assert.equal(await page.locator('#total-conns').textContent(), '3');
  // Some traffic for the charts.
  for (let i = 0; i < 20; i++) {
    bob.ws.send(JSON.stringify({ type: 'publish', id: `p${i}`, room: 'lobby', event: 'chat', data: { text: `hello ${i}` } }));
    await new Promise((r) => setTimeout(r, 60));
  }
  cy.ws.close();
  await until(async () => (await conns('node-a').textContent()) === '1', 'node-a after cy left');
  await page.waitForTimeout(2500);
  await shot(page, 'overview');

  step('rooms: search by prefix, members on both nodes, history state');
  await page.click('a[data-page="rooms"]');
  await page.fill('#room-prefix', 'lob');
  await page.click('#room-search');
  const lobby = page.locator('#rooms tr[data-room="lobby"]');
  await lobby.waitFor();
  assert.match(await lobby.textContent(), /node-a: 1/);
  assert.match(await lobby.textContent(), /node-b: 1/);
  await lobby.locator('button').click();
  await page.locator('#room-members tbody tr', { hasText: 'ada' }).waitFor();
  assert.match(await page.locator('#room-members tbody').textContent(), /bob.*node-a|node-a.*bob/s);
  // lobby keeps history (--history lobby=100): bob's messages, with offsets.
  await page.locator('#room-history tbody tr').nth(4).waitFor();
  assert.match(await page.locator('#room-history tbody').textContent(), /hello 19/);
  await shot(page, 'rooms');

  step('live tail of the room');
  await page.click('a[data-page="tail"]');
  await page.selectOption('#tail-kind', 'room');
  await page.fill('#tail-target', 'lobby');
  await page.click('#tail-start');
  await page.locator('#tail-status[data-state="open"]').waitFor();
  for (let i = 0; i < 3; i++) {
    bob.ws.send(JSON.stringify({ type: 'publish', id: `t${i}`, room: 'lobby', event: 'chat', data: { text: `while tailing ${i}` } }));
  }
  await page.locator('#tail-events li[data-event="chat"]').nth(2).waitFor();

  step('connections: find ada by user id, cluster-wide');
  await page.click('a[data-page="connections"]');
  await page.selectOption('#conn-by', 'user');
  await page.fill('#conn-query', 'ada');
  await page.click('#conn-search');
  const adaRow = page.locator('#conns tr[data-user="ada"]');
  await adaRow.waitFor();
  assert.match(await adaRow.textContent(), /node-b/);
  assert.match(await adaRow.textContent(), /lobby/);
  await shot(page, 'connections');

  step('publish to her room from the console: she receives it');
  await page.click('a[data-page="actions"]');
  await page.selectOption('#pub-kind', 'room');
  await page.fill('#pub-target', 'lobby');
  await page.fill('#pub-event', 'notice');
  await page.fill('#pub-data', '{"text":"hello from the console"}');
  await page.click('#pub-button');
  await page.locator('#confirm[open]').waitFor();
  await page.click('#confirm-yes');
  await page.locator('#action-log li.ok[data-action="publish"]').waitFor();
  await until(() => ada.frames.find((f) => f.type === 'event' && f.event === 'notice' && f.data?.text === 'hello from the console'), 'ada receives the console publication');

  step('the tail saw it');
  await page.click('a[data-page="tail"]');
  await page.locator('#tail-events li[data-event="notice"]').waitFor();
  await shot(page, 'tail');
  await page.click('#tail-stop');

  step('disconnect ada from the connections page: she goes');
  await page.click('a[data-page="connections"]');
  await page.click('#conn-search');
  await adaRow.locator('button.disconnect').click();
  await page.click('#confirm-yes');
  await until(() => ada.closed, 'ada closed');
  assert.equal(ada.closed.code, 4004);
  await until(async () => (await adaRow.count()) === 0, 'ada gone from the list');
  await page.click('a[data-page="overview"]');
  await until(async () => (await conns('node-b').textContent()) === '0', 'node-b back to 0');

  step('revoke ada: her reconnect is refused on both nodes');
  await page.click('a[data-page="actions"]');
  await page.fill('#revoke-sub', 'ada');
  await page.click('#revoke-button');
  await page.click('#confirm-yes');
  await page.locator('#action-log li.ok[data-action="revoke"]').waitFor();
  // node-a applied it before answering; node-b when the control message
  // arrives (milliseconds): a connect to it in between may be admitted,
  // and is then closed with 4003. From then on her upgrades are refused.
  for (const base of [NODE_A, NODE_B]) {
    await until(async () => {
      let c;
      try {
        c = await client(base, 'ada');
      } catch (e) {
        if (e.status === 401) return true;
        if (e.closed?.code === 4003) return false; // closed before its welcome: try again
        throw e;
      }
      await until(() => c.closed, `ada's connection to ${base}, admitted as her revocation was sent, closed`, 2000);
      assert.equal(c.closed.code, 4003, `ada's connection to ${base} closed with 4003`);
      return false;
    }, `ada's reconnect to ${base} refused (401)`, 5000);
  }
  await shot(page, 'actions');

  step('an action without the CSRF token is refused');
  const forged = await page.evaluate(async () => {
    const res = await fetch('api/publish', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ room: 'lobby', event: 'forged' }) });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(forged.status, 403);
  assert.equal(forged.body.error, 'csrf');
  await page.waitForTimeout(300);
  assert.ok(!bob.frames.find((f) => f.event === 'forged'), 'the forged publication was delivered');

  step('a wrong password is refused, then throttled (node-b)');
  const ctx2 = await browser.newContext();
  const p2 = await ctx2.newPage();
  p2.setDefaultTimeout(TIMEOUT);
  await p2.goto(`${NODE_B}/admin/`);
  await p2.locator('#login:not([hidden])').waitFor();
  let last = '';
  for (let i = 0; i < 6; i++) {
    await p2.fill('#password', 'wrong-password-123');
    await p2.evaluate(() => (document.querySelector('#login-error').textContent = ''));
    await p2.click('#login-button');
    last = await until(async () => (await p2.locator('#login-error').textContent()) || false, 'a sign-in error');
    if (i < 5) assert.match(last, /wrong password/);
  }
  assert.match(last, /too many failed sign-ins/);
  const metrics = await (await fetch(`${NODE_B}/metrics`)).text();
  assert.match(metrics, /herald_admin_logins_total\{result="bad_credential"\} 5/);
  assert.match(metrics, /herald_admin_logins_total\{result="throttled"\} [1-9]/);
  await ctx2.close();

  step('drain node-b from the console on node-a');
  await page.click('a[data-page="actions"]');
  await until(async () => (await page.locator('#drain-node option[value="node-b"]').count()) === 1, 'node-b in the drain list');
  await page.selectOption('#drain-node', 'node-b');
  await page.click('#drain-button');
  await page.click('#confirm-yes');
  await page.locator('#action-log li.ok[data-action="drain"]').waitFor();
  await page.click('a[data-page="overview"]');
  await until(() => page.evaluate(() => {
    const row = document.querySelector('#nodes tr[data-node="node-b"]');
    return !row || /draining/.test(row.textContent);
  }), 'node-b draining or gone');

  step('sign out');
  await page.click('#logout');
  await page.locator('#login:not([hidden])').waitFor();
  const after = await page.evaluate(async () => (await fetch('api/session')).status);
  assert.equal(after, 401);

  assert.deepEqual(problems, [], 'browser console errors');
  console.log('ok');
} finally {
  for (const c of clients) c.ws.terminate();
  await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]);
}
// Keep-alive sockets of fetch would hold the process for a while.
process.exit(0);
