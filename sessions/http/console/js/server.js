// Server: GET /api/status (refreshed every few seconds) and GET /api/analytics totals
// for a chosen period and stream.

import { api } from './api.js';
import { h, notify } from './dom.js';
import * as fmt from './format.js';

const STATUS_EVERY_MS = 5000;
const PERIODS = [
  ['3600', 'Last hour'],
  ['86400', 'Last 24 hours'],
  ['604800', 'Last 7 days'],
  ['2592000', 'Last 30 days'],
  ['all', 'All time'],
  ['custom', 'Custom (UTC)'],
];

const fact = (label, value, field) => h('div', { class: 'fact' }, h('dt', {}, label),
  h('dd', { dataset: { field } }, value));

const lag = (value) => (value ? `p50 ${value.p50} ms · p99 ${value.p99} ms · max ${value.max} ms` : '—');

export function mount(root) {
  let stopped = false;
  let timer = 0;

  const status = h('dl', { class: 'counters', id: 'server-status' });
  const processes = h('div', { class: 'table-wrap' });
  const period = h('select', { id: 'analytics-period' },
    PERIODS.map(([value, label]) => h('option', { value, selected: value === '86400' }, label)));
  const since = h('input', { id: 'analytics-since', type: 'datetime-local' });
  const until = h('input', { id: 'analytics-until', type: 'datetime-local' });
  const custom = h('div', { class: 'inline-form', hidden: true },
    h('div', { class: 'field' }, h('label', { for: 'analytics-since' }, 'Since (UTC)'), since),
    h('div', { class: 'field' }, h('label', { for: 'analytics-until' }, 'Until (UTC)'), until));
  const stream = h('select', { id: 'analytics-stream' }, h('option', { value: '' }, 'All streams'));
  const totals = h('dl', { class: 'counters', id: 'analytics-totals' });
  const form = h('form', { id: 'analytics-form', class: 'inline-form', onsubmit: (event) => { event.preventDefault(); analytics(); } },
    h('div', { class: 'field' }, h('label', { for: 'analytics-period' }, 'Period'), period),
    h('div', { class: 'field' }, h('label', { for: 'analytics-stream' }, 'Stream'), stream),
    h('button', { type: 'submit' }, 'Show'));
  period.addEventListener('change', () => {
    custom.hidden = period.value !== 'custom';
    if (custom.hidden) analytics();
  });
  root.append(h('section', { class: 'page', id: 'server-page' },
    h('h1', {}, 'Server'),
    h('section', { 'aria-labelledby': 'status-title' }, h('h2', { id: 'status-title' }, 'Status'), status,
      h('h3', {}, 'Processes'), processes),
    h('section', { 'aria-labelledby': 'analytics-title' }, h('h2', { id: 'analytics-title' }, 'Analytics'),
      form, custom, totals)));

  async function loadStatus() {
    clearTimeout(timer);
    try {
      const s = await api('api/status');
      if (stopped) return;
      const store = s.store;
      status.replaceChildren(
        fact('Version', s.version, 'version'),
        fact('Uptime', fmt.duration(s.uptime_seconds), 'uptime_seconds'),
        fact('Live sessions', fmt.integer(s.live_sessions), 'live_sessions'),
        fact('Ingest rate', fmt.bitrate(s.ingest_rate), 'ingest_rate'),
        fact('Event-loop lag', lag(s.loop_lag_ms), 'loop_lag_ms'),
        fact('Segment availability', lag(s.segment_availability_ms), 'segment_availability_ms'),
        fact('Database writes', store
          ? `${store.status}: ${fmt.integer(store.pending_writes)} pending, ${fmt.integer(store.dropped_writes)} dropped`
            + (store.last_error ? ` (${store.last_error})` : '')
          : '—', 'store'));
      status.classList.toggle('degraded', Boolean(store && store.status !== 'ok'));
      processes.replaceChildren((s.processes || []).length === 0
        ? h('p', { class: 'empty' }, 'One process.')
        : h('table', {},
          h('thead', {}, h('tr', {}, ['#', 'PID', 'Live sessions'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, s.processes.map((p) => h('tr', {},
            h('td', {}, String(p.index)), h('td', {}, p.pid === null ? 'restarting' : String(p.pid)),
            h('td', {}, fmt.integer(p.live_sessions)))))));
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Status: ${error.message}`, 'error');
    }
    if (!stopped) timer = setTimeout(loadStatus, STATUS_EVERY_MS);
  }

  function range() {
    if (period.value === 'all') return {};
    if (period.value === 'custom') {
      return { since: since.value ? `${since.value}:00Z` : null, until: until.value ? `${until.value}:00Z` : null };
    }
    return { since: new Date(Date.now() - Number(period.value) * 1000).toISOString() };
  }

  async function analytics() {
    try {
      const a = await api('api/analytics', { query: { ...range(), stream_id: stream.value } });
      if (stopped) return;
      totals.replaceChildren(
        fact('Sessions', fmt.integer(a.count), 'count'),
        fact('Ingest time', `${fmt.duration(a.total_ingest_seconds)} (${a.total_ingest_seconds} s)`, 'total_ingest_seconds'),
        fact('Bytes received', `${fmt.bytes(a.total_bytes)} (${fmt.integer(a.total_bytes)} B)`, 'total_bytes'),
        fact('Viewer time', `${fmt.duration(a.total_viewer_seconds)} (${a.total_viewer_seconds} s)`, 'total_viewer_seconds'),
        fact('From', fmt.time(a.since), 'since'),
        fact('Until', a.until ? fmt.time(a.until) : 'now', 'until'));
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Analytics: ${error.message}`, 'error');
    }
  }

  async function loadStreams() {
    try {
      const data = await api('api/streams', { query: { limit: 1000 } });
      if (!stopped) stream.append(...data.items.map((s) => h('option', { value: s.id }, s.name)));
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Streams: ${error.message}`, 'error');
    }
  }

  loadStatus();
  loadStreams();
  analytics();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
