// Building the page from data: every text goes in through textContent, never as HTML
// (stream names, encoders and error messages come from publishers and operators).

/** An element: h('a', {href: '#/live', class: 'x', onclick: f}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A modal confirmation; resolves true when the operator confirms. Escape cancels. */
export function confirmDialog({ title, message, action, danger = false }) {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        h('p', {}, message),
        h('div', { class: 'actions' },
          h('button', { value: 'cancel', class: 'quiet', autofocus: true }, 'Cancel'),
          h('button', { value: 'confirm', class: danger ? 'danger' : null }, action))));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

let noticeTimer = 0;

/** A short message in the status line (errors stay longer). */
export function notify(message, kind = 'info') {
  const notice = document.getElementById('notice');
  notice.textContent = message;
  notice.className = `notice ${kind}`;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(clearNotice, kind === 'error' ? 10000 : 5000);
}

export function clearNotice() {
  const notice = document.getElementById('notice');
  notice.textContent = '';
  notice.className = 'notice';
}

/** Copies *text*; falls back to selecting *input* and execCommand where the Clipboard
 *  API is missing (a console served over plain http to another machine). */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/** A read-only value with a Copy button. */
export function copyField(label, value, id) {
  const input = h('input', { id, type: 'text', readonly: true, value, spellcheck: 'false' });
  const button = h('button', {
    type: 'button',
    class: 'quiet',
    'aria-label': `Copy ${label}`,
    onclick: async () => {
      const copied = await copyText(value, input);
      notify(copied ? `${label} copied` : `Select the ${label} and copy it`, copied ? 'info' : 'error');
    },
  }, 'Copy');
  return h('div', { class: 'copy-field' }, h('label', { for: id }, label), h('div', { class: 'row' }, input, button));
}

/** Previous/next buttons for an offset-paged list. */
export function pager({ offset, limit, total, shown }, go) {
  const first = total === 0 ? 0 : offset + 1;
  const last = offset + shown;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', class: 'quiet', disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, '← Newer'),
    h('span', { dataset: { total: String(total) } }, `${first}–${last} of ${total}`),
    h('button', { type: 'button', class: 'quiet', disabled: last >= total, onclick: () => go(offset + limit) }, 'Older →'));
}
