// One session: every counter the API gives (exact numbers, units beside), its tracks,
// issues, gaps (with reconnect windows), segments (from its playlist), and the
// recording's player and MP4. A session that is not over is refreshed every second.

import { kickSession } from './actions.js';
import { api, ApiError, media } from './api.js';
import { h, notify } from './dom.js';
import * as fmt from './format.js';
import { POLL_MS } from './live.js';
import { Player } from './player.js';

/** The counters, in the order shown; fields the API adds later are shown after them. */
const FIELDS = [
  ['name', 'Stream'],
  ['status', 'Status'],
  ['created_at', 'Started (first media)'],
  ['last_seen', 'Last media'],
  ['ended_at', 'Ended'],
  ['end_reason', 'End reason'],
  ['err_message', 'Error'],
  ['duration', 'Duration'],
  ['media_duration', 'Media duration'],
  ['ingest_seconds', 'Ingest seconds'],
  ['reconnects', 'Reconnects'],
  ['gap_seconds', 'Time in gaps'],
  ['bytes_received', 'Bytes received'],
  ['media_bytes', 'Media bytes'],
  ['ingest_rate', 'Ingest rate'],
  ['is_healthy', 'Healthy'],
  ['encoder', 'Encoder'],
  ['remote_addr', 'Publisher address'],
  ['source_segments', 'Segments'],
  ['source_segments_duration', 'Segments duration'],
  ['source_bytes', 'Segment bytes'],
  ['viewer_seconds', 'Viewer seconds'],
  ['record', 'Recorded'],
  ['recording_status', 'Recording'],
  ['updated_at', 'Updated'],
  ['id', 'Session id'],
  ['stream_id', 'Stream id'],
  ['playback_id', 'Playback id'],
];
/** Shown in their own sections, not as counters. */
const SECTIONS = new Set(['tracks', 'issues', 'gaps', 'recording_url', 'mp4_url']);
const TRACK_COLUMNS = ['kind', 'track_id', 'codec', 'profile', 'width', 'height', 'fps',
  'sample_rate', 'channels', 'bitrate', 'bytes', 'frames', 'keyframes'];
const MAX_SEGMENT_ROWS = 500;

export function mount(root, { arg: id, navigate }) {
  let stopped = false;
  let timer = 0;
  let shownState = null;
  let shownStatus = null;
  let player = null;

  const heading = h('h1', {}, 'Session');
  const actions = h('div', { class: 'actions' });
  const counters = h('dl', { class: 'counters', id: 'session-counters' });
  const tracks = h('div', { class: 'table-wrap', id: 'session-tracks' });
  const issues = h('div', { id: 'session-issues' });
  const gaps = h('section', { id: 'session-gaps', hidden: true, 'aria-labelledby': 'gaps-title' });
  const recording = h('section', { class: 'panel', id: 'session-recording', 'aria-labelledby': 'recording-title' });
  const segments = h('section', { id: 'session-segments', 'aria-labelledby': 'segments-title' });
  const page = h('section', { class: 'page', id: 'session-page', dataset: { sessionId: id } },
    h('p', {}, h('a', { href: '#/sessions' }, '← Sessions')),
    heading, actions,
    h('div', { class: 'session-layout' },
      h('section', { 'aria-labelledby': 'counters-title' }, h('h2', { id: 'counters-title' }, 'Counters'), counters),
      h('div', {},
        recording,
        h('section', { 'aria-labelledby': 'tracks-title' }, h('h2', { id: 'tracks-title' }, 'Tracks'), tracks),
        h('section', { 'aria-labelledby': 'issues-title' }, h('h2', { id: 'issues-title' }, 'Issues'), issues),
        gaps)),
    segments);
  root.append(page);

  function renderCounters(session) {
    const known = FIELDS.filter(([name]) => session[name] !== undefined);
    const extra = Object.keys(session)
      .filter((name) => !SECTIONS.has(name) && !FIELDS.some(([f]) => f === name))
      .map((name) => [name, name.replaceAll('_', ' ')]);
    counters.replaceChildren(...[...known, ...extra].map(([name, label]) => h('div', { class: 'fact' },
      h('dt', {}, label),
      h('dd', { dataset: { field: name, value: JSON.stringify(session[name]) } }, fmt.fieldText(name, session[name])))));
  }

  function renderTracks(session) {
    const list = session.tracks || [];
    if (list.length === 0) {
      tracks.replaceChildren(h('p', { class: 'empty' }, 'No tracks.'));
      return;
    }
    const seen = new Set(list.flatMap((t) => Object.keys(t)));
    const columns = [...TRACK_COLUMNS.filter((c) => seen.has(c)), ...[...seen].filter((c) => !TRACK_COLUMNS.includes(c))];
    const text = (column, value) => {
      if (value === null || value === undefined) return '—';
      if (column === 'bitrate') return fmt.bits(value);
      return typeof value === 'number' ? fmt.integer(value) : String(value);
    };
    tracks.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.replaceAll('_', ' '))))),
      h('tbody', {}, list.map((track) => h('tr', {}, columns.map((c) =>
        h('td', { dataset: { field: c, value: JSON.stringify(track[c] ?? null) } }, text(c, track[c]))))))));
  }

  function renderIssues(session) {
    const list = session.issues || [];
    issues.replaceChildren(list.length === 0
      ? h('p', { class: 'empty' }, 'None.')
      : h('ul', { class: 'issues' }, list.map((issue) => h('li', {},
        h('code', {}, issue.code || 'issue'), ' ', issue.message || '', issueTimes(issue)))));
  }

  function issueTimes(issue) {
    const started = issue.started_at || issue.at;
    if (!started) return '';
    if (issue.ended_at) return ` (${fmt.time(started)} to ${fmt.time(issue.ended_at)})`;
    return ` (since ${fmt.time(started)}, open)`;
  }

  function renderGaps(session) {
    // Sessions get gaps with reconnect windows; a server without them sends no field.
    gaps.hidden = !Array.isArray(session.gaps);
    if (gaps.hidden) return;
    gaps.replaceChildren(h('h2', { id: 'gaps-title' }, 'Gaps'),
      session.gaps.length === 0
        ? h('p', { class: 'empty' }, 'None: the encoder never reconnected.')
        : h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['From', 'To', 'Seconds'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, session.gaps.map((gap) => h('tr', {},
            h('td', {}, fmt.time(gap.from)), h('td', {}, fmt.time(gap.to)), h('td', {}, String(gap.seconds))))))));
  }

  function renderActions(session) {
    const buttons = [h('a', { href: `#/sessions?stream_id=${encodeURIComponent(session.stream_id)}` }, 'All sessions of this stream')];
    if (session.status !== 'ended') {
      buttons.unshift(h('a', { href: '#/live' }, 'Watch on Live now'),
        h('button', { type: 'button', class: 'danger kick', onclick: () => kick(session) }, 'Kick'));
    }
    actions.replaceChildren(...buttons);
  }

  /** The recording and the segments change only with these; not on every refresh. */
  function mediaState(session) {
    return `${session.status}/${session.record}/${session.recording_status}/${session.playback_id}`;
  }

  function renderRecording(session) {
    if (player) player.destroy();
    player = null;
    const title = h('h2', { id: 'recording-title' }, 'Recording');
    if (!session.record) {
      recording.replaceChildren(title, h('p', { class: 'empty' }, 'Not recorded (turn recording on for the stream on the Streams page).'));
      return;
    }
    if (!session.playback_id) {
      recording.replaceChildren(title, h('p', { class: 'empty' }, 'Its stream was deleted: the recording is no longer served.'));
      return;
    }
    if (session.recording_status !== 'ready') {
      const why = session.recording_status === 'failed'
        ? `Failed: ${session.err_message || 'no reason given'}`
        : session.status === 'ended' ? 'The MP4 is being made.' : 'Recording: the MP4 is made when the session ends.';
      recording.replaceChildren(title, h('p', {}, why));
      return;
    }
    const video = h('video', { id: 'recording-player', controls: true, playsinline: true });
    const status = h('p', { class: 'muted' });
    recording.replaceChildren(title, video, status,
      h('p', {}, h('a', { href: media.mp4(session), download: `${session.name}-${session.id}.mp4`, id: 'mp4-link' }, 'Download the MP4'),
        ` (${fmt.duration(session.media_duration)} of media)`),
      h('p', { class: 'muted' }, 'Viewers\' URLs: ', h('code', {}, session.recording_url || '—'), ' and ', h('code', {}, session.mp4_url || '—')));
    player = new Player(video, status);
    player.load(media.vod(session), { live: false });
  }

  async function renderSegments(session) {
    const title = h('h2', { id: 'segments-title' }, 'Segments');
    const summary = h('p', {}, `${fmt.integer(session.source_segments)} segments, `
      + `${fmt.duration(session.source_segments_duration)}, ${fmt.bytes(session.source_bytes)}.`);
    let source = null;
    if (session.playback_id && session.record && session.recording_status !== 'failed') source = media.vod(session);
    else if (session.playback_id && session.status === 'live') source = media.sessionPlaylist(session);
    if (!source) {
      segments.replaceChildren(title, summary, h('p', { class: 'empty' },
        session.record ? 'Its files are gone.' : 'Not recorded: only the live window is kept, and it is deleted after the session ends.'));
      return;
    }
    segments.replaceChildren(title, summary, h('p', { class: 'muted' }, 'Reading the playlist…'));
    const response = await fetch(source, { cache: 'no-store', credentials: 'omit' }).catch(() => null);
    if (stopped) return;
    if (!response || !response.ok) {
      segments.replaceChildren(title, summary, h('p', { class: 'empty' }, 'Its playlist is not available (yet).'));
      return;
    }
    const listed = parsePlaylist(await response.text());
    const rows = listed.slice(0, MAX_SEGMENT_ROWS).map((segment) => h('tr', { class: segment.discontinuity ? 'discontinuity' : '' },
      h('td', {}, String(segment.sequence)),
      h('td', {}, h('a', { href: new URL(segment.uri, source).href }, segment.uri)),
      h('td', {}, segment.duration.toFixed(3)),
      h('td', {}, segment.dateTime ? fmt.time(segment.dateTime.replace(/[+-]00:?00$/, 'Z')) : '—'),
      h('td', {}, segment.discontinuity ? 'discontinuity' : '')));
    segments.replaceChildren(title, summary,
      h('p', { class: 'muted' }, session.record ? 'From the recording\'s playlist (vod.m3u8).' : 'The live window (index.m3u8).'),
      h('div', { class: 'table-wrap' }, h('table', { id: 'segments-table' },
        h('thead', {}, h('tr', {}, ['#', 'File', 'Seconds', 'Program date-time', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))),
      listed.length > MAX_SEGMENT_ROWS ? h('p', { class: 'muted' }, `and ${listed.length - MAX_SEGMENT_ROWS} more`) : null);
  }

  async function kick(session) {
    await kickSession(session);
    refresh();
  }

  async function refresh() {
    clearTimeout(timer);
    let session;
    try {
      session = await api(`api/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 404) {
        heading.textContent = 'No such session';
        page.querySelector('.session-layout').replaceChildren(h('p', { class: 'empty' }, `No session has the id ${id}.`));
        return;
      }
      if (error.status !== 401) notify(`Session: ${error.message}`, 'error');
      timer = setTimeout(refresh, 5 * POLL_MS);
      return;
    }
    if (stopped) return;
    heading.textContent = `${session.name}: ${fmt.time(session.created_at)}`;
    renderCounters(session);
    renderTracks(session);
    renderIssues(session);
    renderGaps(session);
    // Drawn again only when they change, so the keyboard focus stays on a button.
    if (session.status !== shownStatus) renderActions(session);
    shownStatus = session.status;
    const state = mediaState(session);
    if (state !== shownState) {
      shownState = state;
      renderRecording(session);
      renderSegments(session);
    }
    page.dataset.status = session.status;
    page.dataset.loaded = 'true';
    const waiting = session.status !== 'ended' || (session.record && session.recording_status === 'waiting');
    if (waiting) timer = setTimeout(refresh, session.status !== 'ended' ? POLL_MS : 2 * POLL_MS);
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (player) player.destroy();
  };
}

/** The segments of an HLS media playlist: sequence number, URI, duration, program
 *  date-time, and whether a discontinuity comes before it. */
export function parsePlaylist(text) {
  const found = [];
  let sequence = 0;
  let duration = 0;
  let dateTime = null;
  let discontinuity = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) sequence = Number(line.split(':')[1]) || 0;
    else if (line.startsWith('#EXTINF:')) duration = parseFloat(line.slice(8)) || 0;
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) dateTime = line.slice(25);
    else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line && !line.startsWith('#')) {
      found.push({ sequence, uri: line, duration, dateTime, discontinuity });
      sequence += 1;
      duration = 0;
      dateTime = null;
      discontinuity = false;
    }
  }
  return found;
}
