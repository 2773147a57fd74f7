/* The track player: <audio>, a waveform and a chromagram drawn from the server's visuals JSON, seek by
   click, loop a region by dragging (or with [ and ]), a position slider and a time readout. */
"use strict";

(function (kw) {
  const GUTTER = 34; // CSS px on the left of both canvases, for the pitch-class names
  const COLORS = {
    wave: "#9fb2cc",
    played: "#0b5cad",
    loop: "rgba(245, 160, 0, 0.28)",
    loopEdge: "#b36b00",
    playhead: "#c0182a",
    text: "#4a5160",
    grid: "#e3e6ec",
  };
  // Chromagram colour ramp: pale (no energy) → blue → deep navy (the frame's strongest pitch class).
  const RAMP = [
    [248, 249, 252],
    [96, 150, 220],
    [18, 33, 88],
  ];

  function rampColor(value) {
    const v = Math.max(0, Math.min(1, value)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(v));
    const t = v - i;
    return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * t));
  }

  class Player {
    constructor({ audio, playButton, seek, time, volume, waveform, chroma, note, loopInfo, onStateChange }) {
      this.audio = audio;
      this.playButton = playButton;
      this.seek = seek;
      this.time = time;
      this.volume = volume;
      this.waveform = waveform;
      this.chroma = chroma;
      this.note = note;
      this.loopInfo = loopInfo;
      this.onStateChange = onStateChange || (() => {});
      this.visuals = null;
      this.loop = null; // {start, end} in seconds
      this.duration = 0;
      this.trackId = null;
      this.loadToken = 0;
      this.frame = null;
      this.bindEvents();
      this.resize();
    }

    bindEvents() {
      this.playButton.addEventListener("click", () => this.togglePlay());
      this.audio.addEventListener("play", () => this.updateState());
      this.audio.addEventListener("pause", () => this.updateState());
      this.audio.addEventListener("ended", () => this.updateState());
      this.audio.addEventListener("loadedmetadata", () => {
        if (isFinite(this.audio.duration)) this.duration = this.audio.duration;
        this.seek.max = String(this.duration || 1);
        this.draw();
      });
      this.audio.addEventListener("timeupdate", () => {
        this.enforceLoop();
        this.drawPosition();
      });
      this.audio.addEventListener("error", () => {
        if (this.audio.getAttribute("src")) this.setNote("The audio could not be played: the file may be missing on the server.");
      });
      this.seek.addEventListener("input", () => this.seekTo(parseFloat(this.seek.value)));
      if (this.volume) {
        this.volume.addEventListener("input", () => (this.audio.volume = parseFloat(this.volume.value)));
        this.audio.volume = parseFloat(this.volume.value);
      }
      for (const canvas of [this.waveform, this.chroma]) {
        if (canvas) this.bindPointer(canvas);
      }
      window.addEventListener("resize", () => this.resize());
    }

    bindPointer(canvas) {
      let downAt = null;
      let dragged = false;
      const timeAt = (event) => {
        const box = canvas.getBoundingClientRect();
        const x = Math.max(0, event.clientX - box.left - GUTTER);
        return Math.min(this.duration, (x / Math.max(1, box.width - GUTTER)) * this.duration);
      };
      canvas.addEventListener("pointerdown", (event) => {
        if (!this.duration) return;
        downAt = { x: event.clientX, time: timeAt(event) };
        dragged = false;
        canvas.setPointerCapture(event.pointerId);
      });
      canvas.addEventListener("pointermove", (event) => {
        if (!downAt) return;
        if (Math.abs(event.clientX - downAt.x) > 4) dragged = true;
        if (dragged) {
          const here = timeAt(event);
          this.setLoop(Math.min(downAt.time, here), Math.max(downAt.time, here));
        }
      });
      canvas.addEventListener("pointerup", (event) => {
        if (!downAt) return;
        if (dragged) {
          this.seekTo(this.loop ? this.loop.start : downAt.time);
        } else {
          this.seekTo(timeAt(event));
        }
        downAt = null;
        this.play();
      });
    }

    /* Show a new track: audio source, then its visuals (which may take a moment for long tracks). */
    load(track, { autoplay = false } = {}) {
      this.loadToken += 1;
      const token = this.loadToken;
      this.trackId = track.id;
      this.loop = null;
      this.visuals = null;
      this.duration = track.duration_s || 0;
      this.seek.max = String(this.duration || 1);
      this.seek.value = "0";
      this.audio.src = track.audio_url;
      this.audio.currentTime = 0;
      this.setRate(this.rate || 1); // a new source resets the rate; keep the listener's choice
      this.updateLoopInfo();
      this.setNote("Drawing the waveform…");
      this.draw();
      if (autoplay) this.play();
      this.fetchVisuals(track.visuals_url, token, 0);
    }

    async fetchVisuals(url, token, attempt) {
      const response = await kw.requestJSON(url);
      if (token !== this.loadToken) return; // a newer track was loaded meanwhile
      if (response.status === 202 && attempt < 120) {
        this.setNote(response.body.message || "Drawing the waveform…");
        setTimeout(() => this.fetchVisuals(url, token, attempt + 1), 1000 * (response.body.retry_after_s || 1));
        return;
      }
      if (!response.ok) {
        this.setNote(response.body.error || "The waveform could not be drawn.");
        return;
      }
      this.visuals = response.body;
      if (!this.duration) this.duration = this.visuals.duration_s;
      this.setNote("");
      this.prerender();
      this.draw();
    }

    setNote(text) {
      if (this.note) this.note.textContent = text;
    }

    unload() {
      this.loadToken += 1;
      this.audio.pause();
      this.audio.removeAttribute("src");
      this.audio.load();
      this.visuals = null;
      this.trackId = null;
      this.draw();
    }

    // --- transport ---------------------------------------------------------------------------------
    play() {
      const started = this.audio.play();
      if (started && started.catch) {
        started.catch(() => this.setNote("Press Play (or Space) to start the audio."));
      }
    }

    /* Playback rate with the pitch kept, so a slower track is still in its key. */
    setRate(rate) {
      this.rate = rate;
      this.audio.preservesPitch = true;
      this.audio.mozPreservesPitch = true;
      this.audio.webkitPreservesPitch = true;
      this.audio.defaultPlaybackRate = rate;
      this.audio.playbackRate = rate;
    }

    togglePlay() {
      if (this.audio.paused) this.play();
      else this.audio.pause();
    }

    seekTo(seconds) {
      if (!isFinite(seconds)) return;
      const limit = this.duration || this.audio.duration || 0;
      this.audio.currentTime = Math.max(0, Math.min(limit, seconds));
      this.drawPosition();
    }

    seekBy(seconds) {
      this.seekTo(this.audio.currentTime + seconds);
    }

    toStart() {
      this.seekTo(this.loop ? this.loop.start : 0);
    }

    setLoop(start, end) {
      if (end - start < 0.2) return;
      this.loop = { start, end };
      this.updateLoopInfo();
      this.drawPosition();
    }

    loopStartHere() {
      const now = this.audio.currentTime;
      const end = this.loop && this.loop.end > now + 0.2 ? this.loop.end : Math.min(this.duration, now + 8);
      this.setLoop(now, end);
    }

    loopEndHere() {
      const now = this.audio.currentTime;
      const start = this.loop && this.loop.start < now - 0.2 ? this.loop.start : Math.max(0, now - 8);
      this.setLoop(start, now);
      this.seekTo(this.loop ? this.loop.start : start);
    }

    clearLoop() {
      this.loop = null;
      this.updateLoopInfo();
      this.drawPosition();
    }

    enforceLoop() {
      if (this.loop && this.audio.currentTime >= this.loop.end) this.audio.currentTime = this.loop.start;
    }

    updateLoopInfo() {
      if (!this.loopInfo) return;
      this.loopInfo.textContent = this.loop
        ? `Looping ${kw.formatTime(this.loop.start)}–${kw.formatTime(this.loop.end)}`
        : "No loop";
    }

    updateState() {
      const playing = !this.audio.paused && !this.audio.ended;
      this.playButton.querySelector(".text").textContent = playing ? "Pause" : "Play";
      this.playButton.querySelector(".icon").textContent = playing ? "❚❚" : "▶";
      this.playButton.setAttribute("aria-pressed", playing ? "true" : "false");
      if (playing) this.tick();
      this.onStateChange(playing);
    }

    tick() {
      if (this.frame) cancelAnimationFrame(this.frame);
      const step = () => {
        this.enforceLoop();
        this.drawPosition();
        if (!this.audio.paused) this.frame = requestAnimationFrame(step);
        else this.frame = null;
      };
      this.frame = requestAnimationFrame(step);
    }

    // --- drawing -----------------------------------------------------------------------------------
    resize() {
      const ratio = window.devicePixelRatio || 1;
      for (const canvas of [this.waveform, this.chroma]) {
        if (!canvas) continue;
        const box = canvas.getBoundingClientRect();
        canvas.width = Math.max(1, Math.round(box.width * ratio));
        canvas.height = Math.max(1, Math.round(box.height * ratio));
      }
      this.prerender();
      this.draw();
    }

    /* Draw the static pictures once per track/size; each frame then only composites and adds the
       playhead, so long tracks (thousands of chroma frames) stay smooth. */
    prerender() {
      this.layers = null;
      if (!this.visuals || !this.waveform) return;
      const make = (canvas) => {
        const layer = document.createElement("canvas");
        layer.width = canvas.width;
        layer.height = canvas.height;
        return layer;
      };
      const wave = make(this.waveform);
      const played = make(this.waveform);
      this.paintWave(wave, COLORS.wave);
      this.paintWave(played, COLORS.played);
      const chroma = this.chroma ? make(this.chroma) : null;
      if (chroma) this.paintChroma(chroma);
      this.layers = { wave, played, chroma };
    }

    paintWave(layer, color) {
      const context = layer.getContext("2d");
      const ratio = window.devicePixelRatio || 1;
      const left = GUTTER * ratio;
      const width = layer.width - left;
      const middle = layer.height / 2;
      const { min, max } = this.visuals.peaks;
      context.fillStyle = color;
      const n = max.length;
      const barWidth = Math.max(1, width / n);
      for (let i = 0; i < n; i += 1) {
        const x = left + (i / n) * width;
        const top = middle - max[i] * (middle - 2);
        const bottom = middle - min[i] * (middle - 2);
        context.fillRect(x, top, barWidth, Math.max(1, bottom - top));
      }
    }

    paintChroma(layer) {
      const context = layer.getContext("2d");
      const ratio = window.devicePixelRatio || 1;
      const left = GUTTER * ratio;
      const values = this.visuals.chroma.values;
      const names = this.visuals.chroma.pitch_classes;
      const frames = values.length;
      if (!frames) return;
      const image = context.createImageData(frames, 12);
      for (let f = 0; f < frames; f += 1) {
        for (let pc = 0; pc < 12; pc += 1) {
          const [r, g, b] = rampColor(values[f][pc]);
          const offset = ((11 - pc) * frames + f) * 4; // C at the bottom row
          image.data[offset] = r;
          image.data[offset + 1] = g;
          image.data[offset + 2] = b;
          image.data[offset + 3] = 255;
        }
      }
      const bitmap = document.createElement("canvas");
      bitmap.width = frames;
      bitmap.height = 12;
      bitmap.getContext("2d").putImageData(image, 0, 0);
      context.imageSmoothingEnabled = false;
      context.drawImage(bitmap, left, 0, layer.width - left, layer.height);
      context.fillStyle = COLORS.text;
      const row = layer.height / 12;
      // 12 px names, smaller only when the rows are too short to keep them apart.
      context.font = `600 ${Math.min(12 * ratio, row * 0.95)}px system-ui, sans-serif`;
      context.textBaseline = "middle";
      names.forEach((name, pc) => context.fillText(name, 4 * ratio, (11 - pc + 0.5) * row));
    }

    draw() {
      this.drawPosition();
    }

    drawPosition() {
      const now = this.audio.currentTime || 0;
      if (this.time) this.time.textContent = `${kw.formatTime(now)} / ${kw.formatTime(this.duration)}`;
      if (this.seek && document.activeElement !== this.seek) this.seek.value = String(now);
      for (const canvas of [this.waveform, this.chroma]) {
        if (canvas) this.drawCanvas(canvas, now);
      }
    }

    drawCanvas(canvas, now) {
      const context = canvas.getContext("2d");
      const ratio = window.devicePixelRatio || 1;
      const left = GUTTER * ratio;
      const width = canvas.width - left;
      context.clearRect(0, 0, canvas.width, canvas.height);
      const xOf = (seconds) => left + (this.duration ? (seconds / this.duration) * width : 0);
      const playheadX = xOf(now);
      if (this.layers) {
        if (canvas === this.waveform) {
          context.drawImage(this.layers.wave, 0, 0);
          context.save();
          context.beginPath();
          context.rect(0, 0, playheadX, canvas.height);
          context.clip();
          context.drawImage(this.layers.played, 0, 0);
          context.restore();
        } else if (this.layers.chroma) {
          context.drawImage(this.layers.chroma, 0, 0);
        }
      } else {
        context.fillStyle = COLORS.grid;
        context.fillRect(left, canvas.height / 2 - ratio, width, 2 * ratio);
      }
      if (this.loop) {
        context.fillStyle = COLORS.loop;
        const x0 = xOf(this.loop.start);
        const x1 = xOf(this.loop.end);
        context.fillRect(x0, 0, x1 - x0, canvas.height);
        context.fillStyle = COLORS.loopEdge;
        context.fillRect(x0, 0, ratio * 2, canvas.height);
        context.fillRect(x1 - ratio * 2, 0, ratio * 2, canvas.height);
      }
      context.fillStyle = COLORS.playhead;
      context.fillRect(playheadX - ratio, 0, 2 * ratio, canvas.height);
    }
  }

  // The label and review pages use the same element ids for the player (label.html, review_track.html).
  Player.fromPage = function fromPage(extra = {}) {
    const $ = (id) => document.getElementById(id);
    return new Player({
      audio: $("audio"),
      playButton: $("play"),
      seek: $("seek"),
      time: $("time"),
      volume: $("volume"),
      waveform: $("waveform"),
      chroma: $("chroma"),
      note: $("visuals-note"),
      loopInfo: $("loop-info"),
      ...extra,
    });
  };

  kw.Player = Player;
})(window.keyweb);
