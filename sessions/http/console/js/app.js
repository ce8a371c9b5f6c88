// The console's shell: sign-in, the pages (addressed by the part of the URL after '#',
// so no page needs a server route), and signing out when the server refuses the token.

import { ApiError, capabilities, forgetToken, signIn, storedToken, whenRefused } from './api.js';
import { clearNotice, notify } from './dom.js';
import * as live from './live.js';
import * as server from './server.js';
import * as session from './session.js';
import * as sessions from './sessions.js';
import * as streams from './streams.js';

const PAGES = {
  live: { mount: live.mount, title: 'Live now', nav: 'live' },
  streams: { mount: streams.mount, title: 'Streams', nav: 'streams' },
  sessions: { mount: sessions.mount, title: 'Sessions', nav: 'sessions' },
  session: { mount: session.mount, title: 'Session', nav: 'sessions' },
  server: { mount: server.mount, title: 'Server', nav: 'server' },
};

const bar = document.getElementById('bar');
const pageRoot = document.getElementById('page');
const signInSection = document.getElementById('sign-in');
const signInForm = document.getElementById('sign-in-form');
const tokenField = document.getElementById('token');
const signInError = document.getElementById('sign-in-error');

let caps = null;
let unmount = null;

/** '#/sessions?status=ended' -> {name: 'sessions', arg: '', params}; null for other hashes
 *  (the skip link's '#main'). */
function parseHash() {
  const hash = location.hash;
  if (!hash.startsWith('#/')) return null;
  const [path, query = ''] = hash.slice(2).split('?');
  const [name, ...rest] = path.split('/');
  return { name: name || 'live', arg: decodeURIComponent(rest.join('/')), params: new URLSearchParams(query) };
}

/** Goes to page *name* with query *params* (null and empty values left out). */
function navigate(name, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(key, value);
  }
  const text = query.toString();
  location.hash = `#/${name}${text ? `?${text}` : ''}`;
}

function route() {
  if (!caps) return;
  const target = parseHash();
  if (target === null) {
    if (!location.hash || location.hash === '#') navigate('live');
    return;
  }
  const page = PAGES[target.name];
  if (!page) {
    navigate('live');
    return;
  }
  if (unmount) unmount();
  pageRoot.replaceChildren();
  clearNotice();
  for (const link of bar.querySelectorAll('nav a')) {
    if (link.dataset.page === page.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${page.title} · rtmp-ingest`;
  unmount = page.mount(pageRoot, { ...target, navigate, caps });
}

function showSignIn(message = '') {
  if (unmount) unmount();
  unmount = null;
  caps = null;
  pageRoot.replaceChildren();
  bar.hidden = true;
  signInSection.hidden = false;
  signInError.textContent = message;
  tokenField.value = '';
  document.title = 'Sign in · rtmp-ingest';
  tokenField.focus();
}

async function start() {
  try {
    caps = await capabilities();
  } catch (error) {
    forgetToken();
    showSignIn(error instanceof ApiError && error.status === 401
      ? 'The server refused the token: sign in again.'
      : `Cannot load the console: ${error.message}`);
    return;
  }
  signInSection.hidden = true;
  bar.hidden = false;
  route();
}

signInForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = tokenField.value.trim();
  signInError.textContent = '';
  if (!token) return;
  const button = signInForm.querySelector('button');
  button.disabled = true;
  try {
    await signIn(token);
    tokenField.value = '';
    await start();
  } catch (error) {
    signInError.textContent = error instanceof ApiError && error.status === 401
      ? 'Wrong token: the server refused it.'
      : `Cannot sign in: ${error.message}`;
    tokenField.select();
  } finally {
    button.disabled = false;
  }
});

document.getElementById('sign-out').addEventListener('click', () => {
  forgetToken();
  showSignIn('Signed out.');
});

whenRefused(() => {
  forgetToken();
  showSignIn('The server refused the token (was it changed?): sign in again.');
});

window.addEventListener('hashchange', route);
window.addEventListener('error', (event) => notify(`Console error: ${event.message}`, 'error'));

if (storedToken()) start();
else showSignIn();
