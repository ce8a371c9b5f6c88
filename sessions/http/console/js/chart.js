// The ingest-rate graph: the last five minutes of the selected session's rate and of the
// whole server's, in Mb/s, from the samples the Live now page takes each second (the API
// keeps no history of rates: the graph starts when the page is opened).

import uPlot from '../vendor/uplot/uPlot.esm.js';

export const WINDOW_SECONDS = 300;
const HEIGHT = 180;

/** Tick labels in UTC, as every time in the console: 18:29 (18:29:30 between minutes). */
function clockLabels(_u, splits, _axis, _space, increment) {
  const digits = increment < 60 ? 8 : 5;
  return splits.map((t) => new Date(t * 1000).toISOString().slice(11, 11 + digits));
}

export class RateGraph {
  constructor(container) {
    this.container = container;
    this.samples = new Map(); // session id -> [[epoch s, bytes/s], ...]
    this.total = [];
    this.selected = null;
    this.now = Date.now() / 1000;
    this.plot = new uPlot(this.options(), [[], [], []], container);
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
  }

  options() {
    return {
      width: Math.max(200, this.container.clientWidth),
      height: HEIGHT,
      scales: {
        x: { time: true, range: () => [this.now - WINDOW_SECONDS, this.now] },
        y: { range: (_u, _min, max) => [0, Math.max(1, (max || 0) * 1.15)] },
      },
      axes: [{ space: 70, values: clockLabels, label: 'UTC', labelSize: 20 }, { label: 'Mb/s', size: 50 }],
      series: [
        {},
        { label: 'selected stream', stroke: '#2a7ab0', width: 2, fill: 'rgba(42,122,176,0.12)' },
        { label: 'all streams', stroke: '#c0392b', width: 1, dash: [4, 4] },
      ],
      legend: { live: false },
    };
  }

  fit() {
    const width = Math.max(200, this.container.clientWidth);
    if (width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
  }

  /** One poll's sessions at *now* (epoch seconds). */
  add(now, sessions) {
    const cutoff = now - WINDOW_SECONDS;
    let total = 0;
    for (const session of sessions) {
      const series = this.samples.get(session.id) || [];
      series.push([now, session.ingest_rate]);
      this.samples.set(session.id, series.filter(([t]) => t >= cutoff));
      total += session.ingest_rate;
    }
    for (const id of this.samples.keys()) {
      if (!sessions.some((s) => s.id === id)) this.samples.delete(id);
    }
    this.total.push([now, total]);
    this.total = this.total.filter(([t]) => t >= cutoff);
    this.draw(now);
  }

  select(sessionId) {
    this.selected = sessionId;
  }

  draw(now) {
    const times = this.total.map(([t]) => t);
    const mine = new Map((this.samples.get(this.selected) || []).map(([t, rate]) => [t, rate]));
    const toMbps = (rate) => (rate === undefined ? null : (rate * 8) / 1e6);
    const data = [times, times.map((t) => toMbps(mine.get(t))), this.total.map(([, r]) => toMbps(r))];
    this.now = now;
    this.plot.setData(data);
    this.container.dataset.samples = String(times.length);
  }

  destroy() {
    this.resize.disconnect();
    this.plot.destroy();
  }
}
