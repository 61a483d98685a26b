// Browser test: the demo chat (demo/static) in headless Chromium, two pages
// talking through a real Herald server (demo/internal/demoserver).
//
// Needs Chromium at $CHROMIUM_PATH (default /usr/bin/chromium; Debian:
// `apt-get install -y chromium`). playwright-core only drives it: it never
// downloads a browser. Without Chromium the test is skipped, or fails when
// CI is set.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { API_KEY, apiPublish, buildBinaries, freezableProxy, startServer } from '../testutil/helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const INSTALL = `${CHROMIUM} not found; install it with: apt-get update && apt-get install -y chromium`;
const missing = !existsSync(CHROMIUM);
const skip = missing && !process.env.CI ? INSTALL : false;
const TIMEOUT = 15000;

describe('demo chat in Chromium', { skip }, () => {
  let build;
  let srv;
  let browser;
  const problems = []; // console errors and uncaught page errors

  before(async () => {
    if (missing) throw new Error(INSTALL); // CI is set: a missing browser is a failure
    build = await buildBinaries(['./demo/internal/demoserver']);
    srv = await startServer(build.bins['./demo/internal/demoserver'], { args: ['--api-key', API_KEY] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000 });
  });

  after(async () => {
    await browser?.close();
    await srv?.stop('SIGTERM');
    await build?.cleanup();
  });

  /** open loads the demo in a fresh browser context and joins room as name. */
  async function open(name, room) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('console', (m) => m.type() === 'error' && problems.push(`${name} console: ${m.text()} (${m.location().url})`));
    page.on('pageerror', (e) => problems.push(`${name} page error: ${e.message}`));
    const res = await page.goto(`${srv.base}/demo/`);
    assert.equal(res.status(), 200);
    await page.fill('#name', name);
    await page.fill('#room', room);
    await page.click('#join-button');
    await page.locator('#text:enabled').waitFor();
    await page.locator('#status[data-state="connected"]').waitFor();
    return page;
  }

  async function say(page, text) {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
  }

  /** seen waits until page shows a message of kind (mine, other, server) from who. */
  function seen(page, kind, who, text) {
    return page.locator(`#messages li.${kind}[data-from="${who}"]`).filter({ hasText: text }).waitFor();
  }

  it('two pages in one room see each other, and the server API', async () => {
    problems.length = 0;
    const ada = await open('ada', 'lobby');
    const bob = await open('bob', 'lobby');

    await say(ada, 'hello from ada');
    await seen(bob, 'other', 'ada', 'hello from ada');
    await seen(ada, 'mine', 'ada', 'hello from ada');

    await say(bob, 'hi ada, bob here');
    await seen(ada, 'other', 'bob', 'hi ada, bob here');

    await apiPublish(srv.base, { room: 'lobby', event: 'message', data: { text: 'from the API' } });
    await Promise.all([seen(ada, 'server', 'server', 'from the API'), seen(bob, 'server', 'server', 'from the API')]);
    // Every event is shown, not only "message": other names with their
    // name, and a direct message to one user on that user's page only.
    await apiPublish(srv.base, { room: 'lobby', event: 'alert', data: { level: 'high' } });
    await seen(bob, 'server', 'server', '[alert] {"level":"high"}');
    await apiPublish(srv.base, { user: 'ada', event: 'dm', data: 'just for you' });
    await seen(ada, 'server', 'server', '[dm] "just for you"');

    // Message text is shown as text, never parsed as HTML.
    const evil = '<img src=x onerror="window.pwned=1">';
    await say(bob, evil);
    await seen(ada, 'other', 'bob', evil);
    assert.equal(await ada.locator('#messages img').count(), 0);
    assert.equal(await ada.evaluate(() => window.pwned), undefined);

    assert.deepEqual(problems, []);
  });

  it('a page in another room does not see the lobby', async () => {
    problems.length = 0;
    const carol = await open('carol', 'kitchen');
    const dave = await open('dave', 'lobby');
    await say(dave, 'lobby only');
    await seen(dave, 'mine', 'dave', 'lobby only');
    await say(carol, 'kitchen only');
    await seen(carol, 'mine', 'carol', 'kitchen only');
    assert.equal(await carol.locator('#messages li', { hasText: 'lobby only' }).count(), 0);
    assert.deepEqual(problems, []);
  });

  // Browsers hide WebSocket pings, and a server that went silent (dead, or
  // a NAT that dropped the mapping) is noticed by the socket only after
  // minutes. The client pings with a request and gives up after
  // 2 × heartbeatMs of silence.
  it('a page notices a silent server within 2 × heartbeatMs and reconnects', async () => {
    const hbMs = 1000;
    const quick = await startServer(build.bins['./demo/internal/demoserver'], {
      args: ['--api-key', API_KEY, '--heartbeat-interval', `${hbMs}ms`],
    });
    const proxy = await freezableProxy(quick.port);
    const ctx = await browser.newContext();
    // The silence counts from the last message the page received, which
    // can come up to a heartbeat before the freeze (the page's own ping
    // and its reply): note when each message arrives, on the page's clock.
    await ctx.addInitScript(() => {
      const Native = window.WebSocket;
      window.lastMessageAt = 0;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          this.addEventListener('message', () => { window.lastMessageAt = Date.now(); });
        }
      };
    });
    try {
      const page = await ctx.newPage();
      page.setDefaultTimeout(TIMEOUT);
      await page.goto(`${proxy.base}/demo/`);
      await page.fill('#name', 'erin');
      await page.fill('#room', 'lobby');
      await page.click('#join-button');
      await page.locator('#status[data-state="connected"]').waitFor();
      // Record every state the page shows: "reconnecting" may last only
      // a few milliseconds before the next connection is up.
      await page.evaluate(() => {
        window.states = [];
        const status = document.getElementById('status');
        new MutationObserver(() => window.states.push({ state: status.dataset.state, at: Date.now(), lastMessageAt: window.lastMessageAt }))
          .observe(status, { attributes: true, attributeFilter: ['data-state'] });
      });

      proxy.freeze();
      const noticed = await page.waitForFunction(
        () => window.states.find((s) => s.state === 'reconnecting'),
        null,
        { timeout: 10 * hbMs },
      );
      const { at, lastMessageAt } = await noticed.jsonValue();
      const silence = at - lastMessageAt;
      assert.ok(lastMessageAt > 0 && silence >= 2 * hbMs && silence < 4 * hbMs, `noticed after ${silence} ms of silence`);
      // A new connection through the proxy flows again.
      await page.waitForFunction(() => window.states.at(-1)?.state === 'connected');
    } finally {
      await ctx.close();
      await proxy.close();
      await quick.stop('SIGTERM');
    }
  });
});
