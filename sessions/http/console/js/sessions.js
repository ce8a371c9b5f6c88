// Sessions: the ledger, newest first, with the API's filters (stream, status, since,
// until) and offset paging. The filters live in the page's address (#/sessions?...), so a
// filtered list can be bookmarked; the token never is.

import { api } from './api.js';
import { h, notify, pager } from './dom.js';
import * as fmt from './format.js';

const LIMIT = 25;
const MAX_LIMIT = 1000;

/** "2026-11-21T19:24" (a datetime-local field, read as UTC) <-> the API's ISO time. */
const toApiTime = (local) => (local ? `${local}:00Z` : null);
const toField = (iso) => (iso ? iso.slice(0, 16) : '');

export function mount(root, { params, navigate, caps }) {
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const limit = Math.min(MAX_LIMIT, Math.max(1, Number(params.get('limit')) || LIMIT));
  const filters = {
    stream_id: params.get('stream_id') || '',
    status: params.get('status') || '',
    since: params.get('since') || '',
    until: params.get('until') || '',
  };
  let stopped = false;

  const stream = h('select', { id: 'filter-stream' }, h('option', { value: '' }, 'All streams'));
  const status = h('select', { id: 'filter-status' }, h('option', { value: '' }, 'Any status'),
    caps.sessionStatuses.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const since = h('input', { id: 'filter-since', type: 'datetime-local', value: toField(filters.since) });
  const until = h('input', { id: 'filter-until', type: 'datetime-local', value: toField(filters.until) });
  const form = h('form', { id: 'session-filters', class: 'inline-form', onsubmit: apply },
    h('div', { class: 'field' }, h('label', { for: 'filter-stream' }, 'Stream'), stream),
    h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'filter-since' }, 'Since (UTC)'), since),
    h('div', { class: 'field' }, h('label', { for: 'filter-until' }, 'Until (UTC)'), until),
    h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'button', class: 'quiet', onclick: () => navigate('sessions', {}) }, 'Clear'));
  const body = h('tbody');
  const paging = h('div');
  root.append(h('section', { class: 'page', id: 'sessions-page' },
    h('h1', {}, 'Sessions'), form,
    h('div', { class: 'table-wrap' },
      h('table', { id: 'sessions-table' },
        h('caption', { class: 'visually-hidden' }, 'Sessions, newest first'),
        h('thead', {}, h('tr', {},
          ['Started', 'Stream', 'Status', 'Duration', 'Received', 'Average rate', 'Ended by', 'Health', 'Recording']
            .map((label) => h('th', { scope: 'col' }, label)))),
        body)),
    paging));

  function apply(event) {
    event.preventDefault();
    navigate('sessions', {
      limit: limit === LIMIT ? null : limit,
      stream_id: stream.value || null,
      status: status.value || null,
      since: toApiTime(since.value),
      until: toApiTime(until.value),
    });
  }

  function row(session) {
    const average = session.duration > 0 ? session.bytes_received / session.duration : null;
    return h('tr', { dataset: { sessionId: session.id } },
      h('td', {}, h('a', { href: `#/session/${encodeURIComponent(session.id)}` }, fmt.time(session.created_at))),
      h('td', {}, session.name),
      h('td', {}, h('span', { class: `badge ${session.status}` }, session.status)),
      h('td', {}, fmt.duration(session.duration)),
      h('td', {}, fmt.bytes(session.bytes_received)),
      h('td', {}, average === null ? '—' : fmt.bitrate(average)),
      h('td', {}, session.end_reason || '—'),
      h('td', { class: session.is_healthy ? '' : 'warn' }, fmt.health(session)),
      h('td', {}, session.record ? session.recording_status || 'waiting' : '—'));
  }

  async function loadStreams() {
    try {
      const data = await api('api/streams', { query: { limit: 1000 } });
      if (stopped) return;
      for (const s of data.items) stream.append(h('option', { value: s.id, selected: s.id === filters.stream_id }, s.name));
      if (filters.stream_id && !data.items.some((s) => s.id === filters.stream_id)) {
        stream.append(h('option', { value: filters.stream_id, selected: true }, `${filters.stream_id} (deleted)`));
      }
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Streams: ${error.message}`, 'error');
    }
  }

  async function load() {
    try {
      const data = await api('api/sessions', { query: { ...filters, offset, limit } });
      if (stopped) return;
      body.replaceChildren(...data.items.map(row));
      if (data.items.length === 0) {
        body.append(h('tr', {}, h('td', { colspan: '9', class: 'empty' }, 'No sessions match.')));
      }
      paging.replaceChildren(pager({ offset, limit, total: data.total, shown: data.items.length },
        (next) => navigate('sessions', { ...filters, offset: next || null, limit: limit === LIMIT ? null : limit })));
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Sessions: ${error.message}`, 'error');
    }
  }

  loadStreams();
  load();
  return () => {
    stopped = true;
  };
}
