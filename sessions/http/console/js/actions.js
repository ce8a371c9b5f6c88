// What an operator does to a session or a stream, asked first where it cannot be undone
// and reported in the status line, the same from every page.

import { api } from './api.js';
import { confirmDialog, notify } from './dom.js';

const path = (kind, id, verb = '') => `api/${kind}/${encodeURIComponent(id)}${verb ? `/${verb}` : ''}`;

/** Asks *ask* (a confirmDialog's options) when given, runs *call*, says *done* or why it
 *  failed. The call's answer (true for none), or null when cancelled or failed. */
export async function act({ ask, call, done, failed }) {
  if (ask && !(await confirmDialog({ danger: true, ...ask }))) return null;
  try {
    const answer = await call();
    if (done) notify(done);
    return answer ?? true;
  } catch (error) {
    notify(`${failed}: ${error.message}`, 'error');
    return null;
  }
}

/** Ends a live session as "kicked"; *before* runs once the operator confirmed. */
export function kickSession(session, before = () => {}) {
  return act({
    ask: {
      title: `Kick ${session.name}?`,
      message: 'The encoder is disconnected and the session ends as "kicked". An encoder that '
        + 'reconnects starts a new session; disable the stream to keep it out.',
      action: 'Kick',
    },
    call: () => {
      before();
      return api(path('sessions', session.id, 'kick'), { method: 'POST' });
    },
    done: `Kicked ${session.name}`,
    failed: `Could not kick ${session.name}`,
  });
}

/** Disables a stream (*stream*: its id and name): it refuses publishers, and its live
 *  session ends as "key_disabled". */
export function disableStream(stream, before = () => {}) {
  return act({
    ask: {
      title: `Disable ${stream.name}?`,
      message: 'It refuses publishers until it is enabled again (Streams page), and a live '
        + 'session ends now ("key_disabled").',
      action: 'Disable',
    },
    call: () => {
      before();
      return api(path('streams', stream.id, 'disable'), { method: 'POST' });
    },
    done: `Disabled ${stream.name}`,
    failed: `Could not disable ${stream.name}`,
  });
}

export function enableStream(stream) {
  return act({
    call: () => api(path('streams', stream.id, 'enable'), { method: 'POST' }),
    done: `Enabled ${stream.name}`,
    failed: `Could not enable ${stream.name}`,
  });
}

export function setRecording(stream, record) {
  return act({
    call: () => api(path('streams', stream.id), { method: 'PATCH', body: { record } }),
    done: `Recording ${record ? 'on' : 'off'} for ${stream.name}, from its next session`,
    failed: `Could not change ${stream.name}`,
  });
}

/** A new key (the answer carries it), the old one refused from now on. */
export function rotateKey(stream, live) {
  return act({
    ask: {
      title: `New key for ${stream.name}?`,
      message: 'The current key stops working at once.'
        + (live ? ' The live publisher goes on until it reconnects, which then needs the new key.' : ''),
      action: 'Rotate key',
    },
    call: () => api(path('streams', stream.id, 'rotate-key'), { method: 'POST' }),
    failed: `Could not rotate the key of ${stream.name}`,
  });
}

export function deleteStream(stream, live) {
  return act({
    ask: {
      title: `Delete ${stream.name}?`,
      message: `Its key stops working${live ? ' and its live session ends' : ''}. Its past `
        + 'sessions stay in the ledger. This cannot be undone.',
      action: 'Delete stream',
    },
    call: () => api(path('streams', stream.id), { method: 'DELETE' }),
    done: `Deleted ${stream.name}`,
    failed: `Could not delete ${stream.name}`,
  });
}
