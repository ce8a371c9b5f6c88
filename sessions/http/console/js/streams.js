// Streams: create (the OBS Server and Stream Key shown once, with copy buttons), rotate a
// key, enable/disable, record on/off, delete with a confirmation.

import { deleteStream, disableStream, enableStream, rotateKey, setRecording } from './actions.js';
import { api } from './api.js';
import { copyField, h, notify, pager } from './dom.js';
import * as fmt from './format.js';

const LIMIT = 50;

export function mount(root, { params, navigate }) {
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  let stopped = false;

  const name = h('input', { id: 'stream-name', type: 'text', required: true, maxlength: '200', autocomplete: 'off' });
  const record = h('input', { id: 'stream-record', type: 'checkbox' });
  const form = h('form', { id: 'create-stream', class: 'inline-form', onsubmit: create },
    h('div', { class: 'field' }, h('label', { for: 'stream-name' }, 'Name'), name),
    h('div', { class: 'field check' }, record, h('label', { for: 'stream-record' }, 'Record every session')),
    h('button', { type: 'submit' }, 'Create stream'));
  const keyPanel = h('div', { id: 'key-panel' });
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap' },
    h('table', { id: 'streams-table' },
      h('caption', { class: 'visually-hidden' }, 'Streams'),
      h('thead', {}, h('tr', {},
        ['Name', 'Status', 'Recording', 'Publishing', 'Playback ID', 'Created', 'Last media', 'Actions']
          .map((label) => h('th', { scope: 'col' }, label)))),
      body));
  const paging = h('div');
  root.append(h('section', { class: 'page', id: 'streams-page' },
    h('h1', {}, 'Streams'),
    h('section', { class: 'panel', 'aria-labelledby': 'create-title' },
      h('h2', { id: 'create-title' }, 'New stream'), form),
    keyPanel, table, paging));

  async function create(event) {
    event.preventDefault();
    try {
      const stream = await api('api/streams', {
        method: 'POST', body: { name: name.value, record: record.checked },
      });
      form.reset();
      showKey(stream, `Stream “${stream.name}” created`);
      load();
    } catch (error) {
      notify(`Could not create the stream: ${error.message}`, 'error');
    }
  }

  /** The key, once: it is never shown again (the server keeps only its hash). */
  function showKey(stream, heading) {
    const title = h('h2', { id: 'key-title', tabindex: '-1' }, heading);
    keyPanel.replaceChildren(h('section', { class: 'panel key', 'aria-labelledby': 'key-title' },
      title,
      h('p', {}, 'In OBS: Settings › Stream › Service: Custom, then paste these two. ',
        h('strong', {}, 'The stream key is shown only this once'),
        ': copy it now (rotate the key to get a new one).'),
      copyField('Server', stream.ingest_url, 'obs-server'),
      copyField('Stream Key', stream.stream_key, 'obs-key'),
      h('button', { type: 'button', class: 'quiet', onclick: () => keyPanel.replaceChildren() }, 'Done')));
    title.focus();
  }

  function row(stream) {
    const live = stream.status !== 'idle';
    const act = (label, handler, extra = {}) => h('button', { type: 'button', class: 'quiet', onclick: handler, ...extra }, label);
    return h('tr', { dataset: { streamId: stream.id, streamName: stream.name } },
      h('th', { scope: 'row' }, stream.name),
      h('td', {}, h('span', { class: `badge ${stream.status}` }, stream.status)),
      h('td', { dataset: { field: 'record' } }, stream.record ? 'on' : 'off'),
      h('td', { dataset: { field: 'disabled' } }, stream.disabled ? 'disabled' : 'enabled'),
      h('td', {}, h('code', {}, stream.playback_id)),
      h('td', {}, fmt.time(stream.created_at)),
      h('td', {}, fmt.time(stream.last_seen)),
      h('td', { class: 'actions' },
        h('a', { href: `#/sessions?stream_id=${encodeURIComponent(stream.id)}` }, 'Sessions'),
        act(stream.record ? 'Recording: on' : 'Recording: off', () => toggleRecord(stream),
          { class: 'quiet record', 'aria-pressed': String(stream.record) }),
        stream.disabled
          ? act('Enable', () => setDisabled(stream, false), { class: 'quiet enable' })
          : act('Disable', () => setDisabled(stream, true), { class: 'quiet disable' }),
        act('Rotate key', () => rotate(stream, live), { class: 'quiet rotate' }),
        act('Delete', () => remove(stream, live), { class: 'quiet danger delete' })));
  }

  async function toggleRecord(stream) {
    await setRecording(stream, !stream.record);
    load();
  }

  async function setDisabled(stream, disabled) {
    await (disabled ? disableStream(stream) : enableStream(stream));
    load();
  }

  async function rotate(stream, live) {
    const rotated = await rotateKey(stream, live);
    if (rotated) showKey(rotated, `New key for “${rotated.name}”`);
    load();
  }

  async function remove(stream, live) {
    await deleteStream(stream, live);
    load();
  }

  async function load() {
    try {
      const data = await api('api/streams', { query: { offset, limit: LIMIT } });
      if (stopped) return;
      body.replaceChildren(...data.items.map(row));
      if (data.items.length === 0) {
        body.append(h('tr', {}, h('td', { colspan: '8', class: 'empty' }, 'No streams yet: create one above.')));
      }
      paging.replaceChildren(pager({ offset, limit: LIMIT, total: data.total, shown: data.items.length },
        (next) => navigate('streams', { offset: next || null })));
    } catch (error) {
      if (!stopped && error.status !== 401) notify(`Streams: ${error.message}`, 'error');
    }
  }

  load();
  return () => {
    stopped = true;
  };
}
