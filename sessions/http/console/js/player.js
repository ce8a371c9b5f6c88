// The HLS player: hls.js where the browser has Media Source Extensions (Chromium,
// Firefox), the browser's own HLS where it has that instead (Safari on iOS).

import Hls from '../vendor/hls.js/hls.light.min.mjs';

export class Player {
  /** *video*: the element; *status*: an element for the player's state in words. */
  constructor(video, status) {
    this.video = video;
    this.status = status;
    this.hls = null;
    this.errors = [];
    this.video.dataset.errors = '0';
  }

  load(source, { live = true } = {}) {
    this.destroy();
    this.errors = [];
    this.video.dataset.errors = '0';
    this.video.muted = true; // browsers autoplay only muted video
    const href = String(source);
    if (Hls.isSupported()) {
      const hls = new Hls({ liveDurationInfinity: live, backBufferLength: 30 });
      hls.on(Hls.Events.ERROR, (_event, data) => this.error(hls, data));
      hls.on(Hls.Events.MANIFEST_PARSED, () => this.play());
      hls.loadSource(href);
      hls.attachMedia(this.video);
      this.hls = hls;
      this.say('loading');
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = href;
      this.play();
    } else {
      this.say('this browser cannot play HLS');
    }
  }

  play() {
    this.say('playing');
    this.video.play().catch(() => this.say('press play to start'));
  }

  error(hls, data) {
    this.errors.push(data);
    this.video.dataset.errors = String(this.errors.length);
    this.video.dataset.lastError = `${data.type}: ${data.details}`;
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      this.say(`recovering from ${data.details}`);
      hls.recoverMediaError();
    } else {
      this.say(`stopped: ${data.details}`);
      this.destroy();
    }
  }

  say(text) {
    if (this.status) this.status.textContent = `Player: ${text}`;
  }

  destroy() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.video.getAttribute('src')) {
      this.video.removeAttribute('src');
      this.video.load();
    }
  }
}
