// The demo chat: one HeraldClient per page, one room at a time.
import { HeraldClient } from './herald.js';

const $ = (id) => document.getElementById(id);
// The server's rule for anonymous client ids (docs/protocol.md).
const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

let client = null;
let name = '';
let room = '';

function wsURL() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}

// line appends one entry; text goes in as text, never as HTML.
function line(kind, who, text, ts) {
  const li = document.createElement('li');
  li.className = kind;
  if (who) {
    li.dataset.from = who;
    const b = document.createElement('span');
    b.className = 'who';
    b.textContent = who;
    li.append(b);
  }
  const t = document.createElement('span');
  t.className = 'text';
  t.textContent = text;
  li.append(t);
  if (ts) {
    const time = document.createElement('time');
    const d = new Date(ts);
    time.dateTime = d.toISOString();
    time.textContent = d.toLocaleTimeString();
    li.append(time);
  }
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

const system = (text) => line('system', '', text);

function showState(state, info) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = state === 'reconnecting' && info?.delayMs !== undefined
    ? `reconnecting in ${(info.delayMs / 1000).toFixed(1)} s`
    : state;
  const ready = state === 'connected' && room !== '';
  $('text').disabled = !ready;
  $('send-button').disabled = !ready;
  if (state === 'closed' && info?.error) system(`disconnected: ${info.error.message}`);
}

// onEvent shows every event of the room and of this user (user:<name>,
// direct messages from the publish API), whatever its name: a chat
// "message" as its text, any other event as [event] and its data.
function onEvent(msg) {
  if (msg.room !== room && msg.room !== `user:${name}`) return;
  // msg.from is the sender's user id as the server knows it (the clientId
  // the page connected with); messages from the publish API carry none.
  const fromServer = typeof msg.from !== 'string';
  const from = fromServer ? 'server' : msg.from;
  const data = msg.data;
  let text = typeof data?.text === 'string' ? data.text : JSON.stringify(data ?? null);
  if (msg.event !== 'message') text = `[${msg.event}] ${text}`;
  line(fromServer ? 'server' : from === name ? 'mine' : 'other', from, text, msg.ts);
}

async function join(e) {
  e.preventDefault();
  const n = $('name').value.trim();
  const r = $('room').value.trim();
  if (!NAME.test(n)) {
    system('A name is 1 to 128 letters, digits or . _ : @ -');
    return;
  }
  if (r === '' || r.startsWith('user:')) {
    system('Pick a room name (not user:…)');
    return;
  }
  $('join-button').disabled = true;
  try {
    if (!client) {
      client = new HeraldClient(wsURL(), {
        params: { clientId: n },
        onState: showState,
        onError: (err) => system(`error: ${err.message}`),
      });
      client.onAny(onEvent);
      try {
        await client.connect();
      } catch (err) {
        client = null;
        throw err;
      }
      name = n;
      $('name').disabled = true;
    }
    if (room && room !== r) await client.leave(room);
    room = '';
    await client.join(r);
    room = r;
    showState(client.state);
    system(`joined ${r} as ${name}`);
    $('text').focus();
  } catch (err) {
    system(`could not join: ${err.message}`);
  } finally {
    $('join-button').disabled = false;
  }
}

async function send(e) {
  e.preventDefault();
  const text = $('text').value;
  if (!client || !room || text.trim() === '') return;
  $('text').value = '';
  try {
    await client.publish(room, 'message', { from: name, text });
  } catch (err) {
    system(`not sent: ${err.message}`);
  }
}

$('join').addEventListener('submit', join);
$('send').addEventListener('submit', send);
addEventListener('pagehide', () => client?.close());
