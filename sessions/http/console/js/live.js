// Live now: every session that is not over (live, and reconnecting where the server has
// reconnect windows), polled from the API once a second; the selected one's player and
// its ingest-rate graph; kick and disable.

import { disableStream, kickSession } from './actions.js';
import { media, openSessions } from './api.js';
import { RateGraph } from './chart.js';
import { h, notify } from './dom.js';
import * as fmt from './format.js';
import { Player } from './player.js';

/** Milliseconds between two polls of the API (the page says it in data-poll-ms). */
export const POLL_MS = 1000;

/** The facts of a card: field (or derived name), label, text from the session. */
const FACTS = [
  ['encoder', 'Encoder', (s) => s.encoder || '—'],
  ['video', 'Video', (s) => fmt.videoSummary(s.tracks)],
  ['audio', 'Audio', (s) => fmt.audioSummary(s.tracks)],
  ['ingest_rate', 'Ingest rate', (s) => fmt.bitrate(s.ingest_rate)],
  ['duration', 'Duration', (s) => fmt.duration(s.duration)],
  ['bytes_received', 'Received', (s) => fmt.bytes(s.bytes_received)],
  ['health', 'Health', (s) => fmt.health(s)],
  ['reconnects', 'Reconnects', (s) => fmt.integer(s.reconnects)],
  ['gap_seconds', 'Time in gaps', (s) => fmt.duration(s.gap_seconds)],
  ['created_at', 'Started', (s) => fmt.time(s.created_at)],
];

function valueOf(session, name) {
  if (name === 'health') return session.is_healthy;
  if (name === 'video' || name === 'audio') return null;
  return session[name];
}

export function mount(root, { caps }) {
  let stopped = false;
  let timer = 0;
  let polling = false;
  let again = false;
  let selected = null;
  let playing = null;
  let updates = 0;
  let current = [];
  /** Sessions the operator kicked or disabled here: not played again meanwhile. */
  const ending = new Set();

  const list = h('div', { class: 'cards', id: 'live-list' });
  const empty = h('p', { class: 'empty', id: 'live-empty', hidden: true },
    'Nothing is live. Sessions appear here within a second of their first media packet.');
  const title = h('h2', { id: 'selected-title' }, 'No stream selected');
  const video = h('video', { id: 'player', controls: true, muted: true, playsinline: true });
  const playerStatus = h('p', { class: 'muted', id: 'player-status' }, 'Player: idle');
  const rateNow = h('span', { class: 'muted', id: 'rate-now' });
  const graphBox = h('div', { class: 'graph', id: 'rate-graph', role: 'img',
    'aria-label': 'Ingest rate of the selected stream and of all streams over the last 5 minutes' });
  const page = h('section', { class: 'page', id: 'live-page', dataset: { pollMs: String(POLL_MS), updates: '0' } },
    h('h1', {}, 'Live now'),
    h('div', { class: 'live-layout' },
      h('div', { class: 'live-sessions' }, empty, list),
      h('section', { class: 'live-detail', 'aria-labelledby': 'selected-title' },
        title, video, playerStatus,
        h('h3', {}, 'Ingest rate, last 5 minutes ', rateNow), graphBox)));
  root.append(page);
  const graph = new RateGraph(graphBox);
  const player = new Player(video, playerStatus);
  const cards = new Map();

  function card(session) {
    const fields = new Map();
    const facts = h('dl', { class: 'facts' });
    for (const [name, label] of FACTS) {
      const dd = h('dd', { dataset: { field: name } });
      const row = h('div', { class: 'fact' }, h('dt', {}, label), dd);
      fields.set(name, { row, dd });
      facts.append(row);
    }
    const badge = h('span', { class: 'badge' });
    const link = h('a', { href: `#/session/${encodeURIComponent(session.id)}` });
    const el = h('article', { class: 'card', dataset: { sessionId: session.id, streamId: session.stream_id } },
      h('header', {}, h('h2', {}, link), badge),
      facts,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'watch', onclick: () => select(session.id) }, 'Watch'),
        h('button', { type: 'button', class: 'quiet danger kick', onclick: () => kick(session.id) }, 'Kick'),
        h('button', { type: 'button', class: 'quiet danger disable', onclick: () => disable(session.id) }, 'Disable stream')));
    return { el, fields, badge, link };
  }

  function update(entry, session) {
    entry.link.textContent = session.name;
    entry.badge.textContent = session.status;
    entry.badge.className = `badge ${session.status}`;
    entry.el.classList.toggle('selected', session.id === selected);
    entry.el.querySelector('.watch').setAttribute('aria-pressed', String(session.id === selected));
    for (const [name, , text] of FACTS) {
      const { row, dd } = entry.fields.get(name);
      const value = valueOf(session, name);
      // Fields a server without reconnect windows does not send stay hidden.
      row.hidden = (name === 'reconnects' || name === 'gap_seconds') && session[name] === undefined;
      dd.textContent = text(session);
      dd.dataset.value = JSON.stringify(value ?? null);
    }
    entry.el.classList.toggle('unhealthy', !session.is_healthy);
  }

  function render(sessions) {
    current = sessions;
    const ids = new Set(sessions.map((s) => s.id));
    for (const [id, entry] of cards) {
      if (!ids.has(id)) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    for (const id of ending) if (!ids.has(id)) ending.delete(id);
    sessions.forEach((session, index) => {
      let entry = cards.get(session.id);
      if (!entry) {
        entry = card(session);
        cards.set(session.id, entry);
      }
      update(entry, session);
      // Cards are moved only when out of order: moving one would take the keyboard
      // focus off its buttons every second.
      if (list.children[index] !== entry.el) list.insertBefore(entry.el, list.children[index] || null);
    });
    empty.hidden = sessions.length > 0;
    if (!ids.has(selected)) select(sessions.length ? sessions[0].id : null, false);
    else showSelected();
  }

  function select(id, focus = true) {
    selected = id;
    for (const [sid, entry] of cards) {
      entry.el.classList.toggle('selected', sid === id);
      entry.el.querySelector('.watch').setAttribute('aria-pressed', String(sid === id));
    }
    graph.select(id);
    showSelected();
    if (focus && id) video.scrollIntoView({ block: 'nearest' });
  }

  function showSelected() {
    const session = current.find((s) => s.id === selected);
    if (!session) {
      title.textContent = 'No stream selected';
      rateNow.textContent = '';
      stopPlayer('idle');
      return;
    }
    title.textContent = session.name;
    rateNow.textContent = `(now ${fmt.bitrate(session.ingest_rate)})`;
    if (session.status !== 'live') {
      stopPlayer(`${session.status}: waiting for the encoder`);
    } else if (!session.playback_id) {
      stopPlayer('no playback (the stream was deleted)');
    } else if (session.source_segments < 1) {
      stopPlayer('waiting for the first segment');
    } else if (ending.has(session.id)) {
      stopPlayer('ending');
    } else if (playing !== session.id) {
      // The session's own playlist, not the stream's: it ends with #EXT-X-ENDLIST when the
      // session ends (and lingers a while), so the player stops cleanly, never on a 404.
      playing = session.id;
      player.load(media.sessionPlaylist(session), { live: true });
    }
  }

  function stopPlayer(why) {
    if (playing !== null) player.destroy();
    playing = null;
    player.say(why);
  }

  function sessionById(id) {
    return current.find((s) => s.id === id);
  }

  async function kick(id) {
    const session = sessionById(id);
    if (!session) return;
    const kicked = await kickSession(session, () => {
      ending.add(id);
      if (selected === id) stopPlayer('kicked');
    });
    if (!kicked) ending.delete(id);
    pollNow();
  }

  async function disable(id) {
    const session = sessionById(id);
    if (!session) return;
    const disabled = await disableStream({ id: session.stream_id, name: session.name }, () => {
      ending.add(id);
      if (selected === id) stopPlayer('stream disabled');
    });
    if (!disabled) ending.delete(id);
    pollNow();
  }

  async function poll() {
    if (stopped) return;
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    const started = performance.now();
    try {
      const sessions = await openSessions(caps);
      if (stopped) return;
      render(sessions);
      graph.add(Date.now() / 1000, sessions);
      updates += 1;
      page.dataset.updates = String(updates);
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Live now: ${error.message}`, 'error');
    } finally {
      polling = false;
    }
    if (stopped) return;
    if (again) {
      again = false;
      poll();
    } else {
      timer = setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  function pollNow() {
    clearTimeout(timer);
    poll();
  }

  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
    player.destroy();
    graph.destroy();
  };
}
