// The console's one way to the API: the admin token, kept in sessionStorage (this tab
// only, gone when it closes), sent as the bearer header, never in a URL. Paths are
// relative to the page, so a console behind a reverse proxy's path prefix still works.

const TOKEN_KEY = 'rtmp-ingest.admin-token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let onRefused = () => {};

/** *handler* runs when the API refuses the stored token (changed on the server). */
export function whenRefused(handler) {
  onRefused = handler;
}

/** A path of this server (relative to the page) as a URL: 'api/streams', 'hls/...'. */
export function url(path, query) {
  const target = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== '') target.searchParams.set(name, value);
  }
  return target;
}

async function request(path, { method = 'GET', body, query, token = storedToken() } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    // A token with characters a header cannot carry fails here too.
    throw new ApiError(0, 'unreachable', `cannot reach the server (${error.message})`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || 'error', error.message || response.statusText);
  }
  return data;
}

/** The API's answer to *path* with the stored token; a 401 signs the operator out. */
export async function api(path, options) {
  try {
    return await request(path, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) onRefused(error);
    throw error;
  }
}

/** Checks *token* against the server; stores it if it is the admin token. Throws an
 *  ApiError (status 401 for a wrong token) otherwise. */
export async function signIn(token) {
  await request('api/status', { token });
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** What this server's API offers beyond the basics, read from its OpenAPI document:
 *  the session statuses it knows ("reconnecting" comes with reconnect windows). */
export async function capabilities() {
  const document_ = await api('openapi.json');
  const operation = document_.paths?.['/api/sessions']?.get;
  const parameter = (operation?.parameters || []).find((p) => p.name === 'status');
  const statuses = [...new Set(enums(parameter?.schema))];
  return { sessionStatuses: statuses.length ? statuses : ['live', 'ended'] };
}

function enums(schema) {
  if (!schema || typeof schema !== 'object') return [];
  const found = Array.isArray(schema.enum) ? schema.enum.filter((v) => typeof v === 'string') : [];
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    for (const part of schema[key] || []) found.push(...enums(part));
  }
  return found;
}

/** The sessions that are not over: live, and reconnecting where the server has them. */
export async function openSessions(caps) {
  const statuses = caps.sessionStatuses.filter((s) => s !== 'ended');
  const pages = await Promise.all(
    statuses.map((status) => api('api/sessions', { query: { status, limit: 1000 } })));
  const seen = new Map();
  for (const page of pages) for (const session of page.items) seen.set(session.id, session);
  return [...seen.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** Where this server plays a stream, a session, a recording: relative to the page (the
 *  console plays from the server it came from, whatever [http] public_url says). */
export const media = {
  sessionPlaylist: (s) => url(`hls/${encodeURIComponent(s.playback_id)}/${encodeURIComponent(s.id)}/index.m3u8`),
  vod: (s) => url(`recordings/${encodeURIComponent(s.playback_id)}/${encodeURIComponent(s.id)}/vod.m3u8`),
  mp4: (s) => url(`recordings/${encodeURIComponent(s.playback_id)}/${encodeURIComponent(s.id)}/recording.mp4`),
};
