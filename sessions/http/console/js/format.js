// Numbers, sizes, rates and times as the console shows them. Times are UTC, as in the
// command line's output.

const grouped = new Intl.NumberFormat('en-US');

export function integer(n) {
  return n === null || n === undefined ? '—' : grouped.format(n);
}

function scaled(value, units, step) {
  let i = 0;
  while (Math.abs(value) >= step && i < units.length - 1) {
    value /= step;
    i += 1;
  }
  const digits = i === 0 ? 0 : Math.abs(value) < 10 ? 2 : Math.abs(value) < 100 ? 1 : 0;
  return `${value.toFixed(digits)} ${units[i]}`;
}

/** 1234567 -> "1.23 MB". */
export function bytes(n) {
  return n === null || n === undefined ? '—' : scaled(n, ['B', 'kB', 'MB', 'GB', 'TB'], 1000);
}

/** Bytes per second (the API's unit) as bits per second: 312500 -> "2.50 Mb/s". */
export function bitrate(bytesPerSecond) {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return '—';
  return scaled(bytesPerSecond * 8, ['b/s', 'kb/s', 'Mb/s', 'Gb/s'], 1000);
}

/** Bits per second (a track's bitrate). */
export function bits(bitsPerSecond) {
  return bitsPerSecond ? scaled(bitsPerSecond, ['b/s', 'kb/s', 'Mb/s', 'Gb/s'], 1000) : '—';
}

/** Seconds as "42.0 s", "3:07" or "1:02:03". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** "2026-11-21T19:24:10.123Z" -> "2026-11-21 19:24:10 UTC". */
export function time(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

/** "1280×720 30 fps H264 (High)" for the first video track. */
export function videoSummary(tracks) {
  const video = (tracks || []).find((t) => t.kind === 'video');
  if (!video) return 'no video';
  const parts = [];
  if (video.width && video.height) parts.push(`${video.width}×${video.height}`);
  if (video.fps) parts.push(`${Math.round(video.fps * 100) / 100} fps`);
  parts.push(codec(video));
  return parts.join(' ');
}

/** "AAC 48 kHz 2 ch" for the first audio track. */
export function audioSummary(tracks) {
  const audio = (tracks || []).find((t) => t.kind === 'audio');
  if (!audio) return 'no audio';
  const parts = [codec(audio)];
  if (audio.sample_rate) parts.push(`${audio.sample_rate / 1000} kHz`);
  if (audio.channels) parts.push(`${audio.channels} ch`);
  return parts.join(' ');
}

function codec(track) {
  const name = (track.codec || '?').toUpperCase();
  return track.profile ? `${name} (${track.profile})` : name;
}

/** A session's health in words: "healthy", or its open issues' messages (an issue with
 * no ended_at is open; past issues are on the session page). */
export function health(session) {
  const open = (session.issues || []).filter((issue) => issue.ended_at === null || issue.ended_at === undefined);
  if (session.is_healthy) return 'healthy';
  if (open.length === 0) return 'unhealthy';
  return open.map((issue) => issue.message || issue.code).join('; ');
}

/** The value of a field for the session page: exact numbers, readable units beside. */
export function fieldText(name, value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') {
    if (name === 'ingest_rate') return `${integer(value)} B/s (${bitrate(value)})`;
    if (name.endsWith('bytes') || name === 'bytes_received') return `${integer(value)} B (${bytes(value)})`;
    if (name.endsWith('seconds') || name.endsWith('duration')) {
      return value >= 60 ? `${value} s (${duration(value)})` : `${value} s`;
    }
    return integer(value);
  }
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT.*Z$/.test(value)) return time(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
