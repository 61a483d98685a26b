// Herald admin console: plain JavaScript, no build step, no external assets.
'use strict';

const API = 'api/';
const $ = (sel) => document.querySelector(sel);
let csrf = '';
let timer = null;
let tail = null;

// ---- HTTP ----------------------------------------------------------------

async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, opts);
  let json = {};
  try { json = await res.json(); } catch { /* empty body */ }
  if (res.status === 401 && path !== 'login') showLogin('Your session ended; sign in again.');
  if (!res.ok) throw new Error(json.message || `${res.status} ${res.statusText}`);
  return json;
}

// ---- small helpers -------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k === 'onclick') e.addEventListener('click', v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? '')));
  return e;
}

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function duration(sec) {
  sec = Math.floor(sec);
  const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function ago(t) {
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  return s < 1 ? 'now' : `${duration(s)} ago`;
}

function toast(msg, error = false) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = error ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

/** confirmAction asks before an action; it resolves true on Confirm. */
function confirmAction(text) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}

/** act confirms, runs an action and records its outcome in the log. */
async function act(question, method, path, body, describe) {
  if (!(await confirmAction(question))) return null;
  const li = el('li', {}, `${new Date().toLocaleTimeString()} ${question.replace(/\?$/, '')}: `);
  $('#action-log').prepend(li);
  try {
    const res = await call(method, path, body);
    li.className = 'ok';
    li.dataset.action = res.action;
    li.append(`done (${describe(res)})`);
    toast(`Done: ${describe(res)}`);
    return res;
  } catch (err) {
    li.className = 'error';
    li.append(`failed: ${err.message}`);
    toast(`Failed: ${err.message}`, true);
    return null;
  }
}

// ---- sign-in -------------------------------------------------------------

function showLogin(msg = '') {
  stopPolling();
  stopTail();
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg;
  $('#password').focus();
}

function showApp(sess) {
  csrf = sess.csrf;
  $('#session').textContent = sess.session;
  $('#login').hidden = true;
  $('#app').hidden = false;
  route();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#login-error').textContent = '';
  try {
    const sess = await call('POST', 'login', { password: $('#password').value });
    $('#password').value = '';
    showApp(sess);
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
});

$('#logout').addEventListener('click', async () => {
  try { await call('POST', 'logout'); } catch { /* signed out anyway */ }
  csrf = '';
  showLogin('Signed out.');
});

// ---- pages ---------------------------------------------------------------

function route() {
  const page = (location.hash || '#overview').slice(1);
  const known = ['overview', 'rooms', 'connections', 'actions', 'tail'];
  const cur = known.includes(page) ? page : 'overview';
  for (const p of known) $(`#page-${p}`).hidden = p !== cur;
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.page === cur);
  document.body.dataset.page = cur;
  stopPolling();
  if (cur === 'overview') startPolling();
  if (cur === 'actions') refreshNodes();
}
window.addEventListener('hashchange', () => { if (!$('#app').hidden) route(); });

// ---- overview ------------------------------------------------------------

function startPolling() {
  const tick = async () => {
    try {
      renderOverview(await call('GET', 'overview'));
    } catch (err) {
      $('#silent').textContent = err.message;
    }
    if (timer !== null) timer = setTimeout(tick, 1000);
  };
  timer = 0;
  tick();
}

function stopPolling() {
  if (timer) clearTimeout(timer);
  timer = null;
}

function renderOverview(ov) {
  $('#total-nodes').textContent = ov.totals.nodes;
  $('#total-conns').textContent = ov.totals.connections;
  const last = ov.series[ov.series.length - 1] || {};
  $('#rate-in').textContent = (last.inPerSec || 0).toFixed(1);
  $('#rate-out').textContent = (last.outPerSec || 0).toFixed(1);
  $('#updated').textContent = new Date(ov.at).toLocaleTimeString();
  $('#silent').textContent = ov.error || (ov.silent.length ? `Not answering: ${ov.silent.join(', ')}` : '');
  fill($('#nodes tbody'), ov.nodes.map((n) => el('tr', { 'data-node': n.node },
    el('td', {}, el('code', {}, n.node), n.console ? ' ' : '', n.console ? el('span', { class: 'pill' }, 'console') : ''),
    el('td', {}, n.version),
    el('td', {}, duration(n.uptimeSec)),
    el('td', { class: 'conns' }, n.connections),
    el('td', {}, n.rooms),
    el('td', {}, el('span', { class: n.draining ? 'pill bad' : 'pill' }, n.draining ? 'draining' : 'serving')),
    el('td', {}, el('span', { class: n.broker === 'up' ? 'pill' : 'pill bad', title: n.broker }, n.broker === 'up' ? 'up' : 'down')),
    el('td', {}, bytes(n.heapBytes)),
    el('td', {}, bytes(n.sysBytes)),
    el('td', {}, `${n.numGC} (last ${n.gcPauseMs.toFixed(2)} ms)`),
    el('td', {}, n.goroutines),
  )));
  const s = ov.series;
  const t = s.map((p) => p.t);
  chart($('#chart-conns'), t, [{ color: '#1f8a4c', values: s.map((p) => p.connections) }]);
  chart($('#chart-msgs'), t, [
    { color: '#2456d6', values: s.map((p) => p.inPerSec) },
    { color: '#e08a1e', values: s.map((p) => p.outPerSec) },
  ]);
  const reasons = [...new Set(s.flatMap((p) => Object.keys(p.disconnects || {})))].sort();
  const palette = ['#c62f2f', '#7b3fc4', '#e08a1e', '#2456d6', '#1f8a4c', '#6b7385', '#b5338a'];
  const lines = reasons.map((r, i) => ({ label: r, color: palette[i % palette.length], values: s.map((p) => (p.disconnects || {})[r] || 0) }));
  $('#disc-keys').replaceChildren(...lines.map((l) => {
    const k = el('span', { class: 'key' }, l.label);
    k.style.borderColor = l.color;
    return k;
  }));
  chart($('#chart-disc'), t, lines.length ? lines : [{ color: '#c62f2f', values: s.map(() => 0) }]);
}

/** chart draws lines (values over times t) on a canvas, y from 0. */
function chart(canvas, t, lines) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height, L = 40, B = 18, T = 8, R = 8;
  ctx.clearRect(0, 0, W, H);
  const maxV = Math.max(1, ...lines.flatMap((l) => l.values));
  const top = niceCeil(maxV);
  const t1 = t.length ? t[t.length - 1] : Date.now();
  const t0 = Math.min(t.length ? t[0] : t1, t1 - 60000);
  const x = (ti) => L + ((ti - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - B - T);
  ctx.strokeStyle = '#e1e4ea';
  ctx.fillStyle = '#6b7385';
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
    ctx.fillText(String(+v.toFixed(2)), 2, y(v) + 4);
  }
  ctx.fillText(`${Math.round((t1 - t0) / 1000)} s`, L, H - 4);
  ctx.fillText('now', W - R - 22, H - 4);
  ctx.lineWidth = 2;
  for (const l of lines) {
    ctx.strokeStyle = l.color;
    ctx.beginPath();
    l.values.forEach((v, i) => (i ? ctx.lineTo(x(t[i]), y(v)) : ctx.moveTo(x(t[i]), y(v))));
    ctx.stroke();
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 4, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- rooms ---------------------------------------------------------------

$('#room-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const res = await call('GET', `rooms?prefix=${encodeURIComponent($('#room-prefix').value)}`);
    fill($('#rooms tbody'), res.rooms.map((r) => el('tr', { 'data-room': r.room },
      el('td', {}, el('code', {}, r.room)),
      el('td', {}, r.members),
      el('td', {}, Object.entries(r.nodes).map(([n, k]) => `${n}: ${k}`).join(', ')),
      el('td', {}, el('button', { class: 'small quiet', onclick: () => showRoom(r.room) }, 'Details')),
    )));
    if (!res.rooms.length) fill($('#rooms tbody'), [el('tr', {}, el('td', { colSpan: 4, class: 'muted' }, 'No room with members matches.'))]);
  } catch (err) {
    toast(err.message, true);
  }
});

async function showRoom(name) {
  try {
    const r = await call('GET', `room?name=${encodeURIComponent(name)}`);
    $('#room-detail').hidden = false;
    $('#room-name').textContent = r.room;
    fill($('#room-members tbody'), r.members.map((m) => el('tr', {}, el('td', {}, m.user), el('td', {}, m.node), el('td', {}, m.connections))));
    fill($('#room-presence tbody'), r.presence
      ? r.presence.map((p) => el('tr', {}, el('td', {}, p.user), el('td', {}, p.connections)))
      : [el('tr', {}, el('td', { colSpan: 2, class: 'error' }, r.presenceError))]);
    const h = r.history;
    $('#room-history-state').textContent = !h.enabled ? h.message : h.error ? `History unavailable: ${h.error}` : `the ${h.messages.length} most recent, newest first`;
    $('#room-history').hidden = !h.enabled || !!h.error;
    fill($('#room-history tbody'), (h.messages || []).slice().reverse().map((m) => el('tr', {},
      el('td', {}, m.offset ?? ''), el('td', {}, new Date(m.ts / 1e6).toLocaleTimeString()), el('td', {}, m.event),
      el('td', {}, m.from || m.cid || ''), el('td', {}, el('code', {}, JSON.stringify(m.data ?? null))))));
  } catch (err) {
    toast(err.message, true);
  }
}

// ---- connections ---------------------------------------------------------

$('#conn-form').addEventListener('submit', (e) => { e.preventDefault(); findConns(); });

async function findConns() {
  const by = $('#conn-by').value, q = $('#conn-query').value.trim();
  try {
    const res = await call('GET', `connections?${by}=${encodeURIComponent(q)}`);
    $('#conn-summary').textContent = `${res.connections.length} connection(s) on ${res.nodes.length} node(s) that answered (${res.nodes.join(', ')})`;
    fill($('#conns tbody'), res.connections.map((c) => el('tr', { 'data-conn': c.id, 'data-user': c.user },
      el('td', {}, el('code', {}, c.id)),
      el('td', {}, c.user),
      el('td', {}, c.node),
      el('td', {}, c.remoteAddr),
      el('td', {}, c.rooms.join(', ')),
      el('td', { title: c.connectedAt }, ago(c.connectedAt)),
      el('td', { title: c.lastSeen }, ago(c.lastSeen)),
      el('td', {}, c.protocol + (c.compressed ? ' + deflate' : '')),
      el('td', {}, c.pendingAcks),
      el('td', {}, c.queued),
      el('td', {},
        el('button', { class: 'small quiet publish', onclick: () => prefill('pub', 'user', c.user) }, 'Publish'),
        ' ',
        el('button', { class: 'small quiet tail', onclick: () => startTail('user', c.user) }, 'Tail'),
        ' ',
        el('button', { class: 'small danger disconnect', onclick: () => disconnectConn(c) }, 'Disconnect')),
    )));
  } catch (err) {
    toast(err.message, true);
  }
}

async function disconnectConn(c) {
  const res = await act(`Disconnect connection ${c.id} of ${c.user} on ${c.node}?`, 'POST', 'disconnect', { conn: c.id }, (r) => `closed on ${r.node}`);
  if (res) setTimeout(findConns, 300);
}

// ---- actions -------------------------------------------------------------

function prefill(form, kind, target) {
  location.hash = '#actions';
  $(`#${form}-kind`).value = kind;
  $(`#${form}-target`).value = target;
}

async function refreshNodes() {
  try {
    const ov = await call('GET', 'overview');
    const sel = $('#drain-node');
    const cur = sel.value;
    sel.replaceChildren(...ov.nodes.map((n) => el('option', { value: n.node }, `${n.node} (${n.connections} connections${n.draining ? ', draining' : ''})`)));
    if (cur) sel.value = cur;
  } catch { /* the overview shows why */ }
}

$('#pub-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = $('#pub-kind').value, target = $('#pub-target').value.trim(), event = $('#pub-event').value.trim();
  const raw = $('#pub-data').value.trim();
  let data;
  if (raw) {
    try { data = JSON.parse(raw); } catch { toast('Data is not valid JSON', true); return; }
  }
  const body = { [kind]: target, event };
  if (data !== undefined) body.data = data;
  await act(`Publish "${event}" to ${kind} ${target}?`, 'POST', 'publish', body, (r) => `message ${r.msgId} to ${r.room}`);
});

$('#disc-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = $('#disc-kind').value, target = $('#disc-target').value.trim();
  await act(kind === 'user' ? `Disconnect every connection of user ${target}?` : `Disconnect connection ${target}?`,
    'POST', 'disconnect', { [kind]: target }, (r) => (r.node ? `closed on ${r.node}` : `sent to every node`));
});

$('#revoke-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const sub = $('#revoke-sub').value.trim(), jti = $('#revoke-jti').value.trim();
  if (!sub && !jti) { toast('Give a user or a token id', true); return; }
  const what = [sub && `user ${sub}`, jti && `token ${jti}`].filter(Boolean).join(' and ');
  await act(`Revoke ${what}?`, 'POST', 'revoke', { sub: sub || undefined, jti: jti || undefined }, () => `${what} revoked on every node`);
});

$('#drain-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const node = $('#drain-node').value;
  if (!node) return;
  await act(`Drain node ${node}? Its clients are told to reconnect elsewhere and it shuts down.`, 'POST', 'drain', { node }, (r) => `${r.node} draining`);
  refreshNodes();
});

// ---- live tail -----------------------------------------------------------

$('#tail-form').addEventListener('submit', (e) => {
  e.preventDefault();
  startTail($('#tail-kind').value, $('#tail-target').value.trim());
});
$('#tail-stop').addEventListener('click', () => stopTail('stopped'));

function startTail(kind, target) {
  stopTail();
  location.hash = '#tail';
  $('#tail-kind').value = kind;
  $('#tail-target').value = target;
  $('#tail-events').replaceChildren();
  const src = new EventSource(`${API}tail?${kind}=${encodeURIComponent(target)}`);
  tail = src;
  $('#tail-stop').disabled = false;
  $('#tail-status').textContent = `Connecting to ${kind} ${target}…`;
  const add = (li) => {
    const list = $('#tail-events');
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  };
  src.addEventListener('open', (e) => {
    if (!e.data) return;
    const o = JSON.parse(e.data);
    $('#tail-status').dataset.state = 'open';
    $('#tail-status').textContent = `Watching ${o.room} (at most ${o.ratePerSec} events/s shown, for ${o.maxSec / 60} minutes)`;
  });
  src.onmessage = (e) => {
    const m = JSON.parse(e.data);
    add(el('li', { 'data-event': m.event },
      `${new Date(m.t).toLocaleTimeString()}  ${m.room}  ${m.event}  ${m.msgId}${m.offset ? ` #${m.offset}` : ''}${m.from ? ` from ${m.from}` : ''}\n`,
      m.truncated ? `(${m.truncated} bytes of data not shown)` : JSON.stringify(m.data ?? null)));
  };
  src.addEventListener('dropped', (e) => add(el('li', { class: 'dropped' }, `… ${JSON.parse(e.data).count} event(s) not shown (rate limit)`)));
  src.addEventListener('end', (e) => stopTail(`ended: ${JSON.parse(e.data).reason}`));
  src.onerror = () => { if (src.readyState === EventSource.CLOSED) stopTail('closed by the server'); };
}

function stopTail(why) {
  if (tail) tail.close();
  tail = null;
  $('#tail-stop').disabled = true;
  if (why) {
    $('#tail-status').dataset.state = 'closed';
    $('#tail-status').textContent = `Tail ${why}.`;
  }
}

// ---- start ---------------------------------------------------------------

call('GET', 'session').then(showApp, () => showLogin());
