/* Listening aids synthesized in the browser with the Web Audio API: a tonic drone, the tonic chord and a
   I–IV–V–I cadence in a candidate key, tuned to the track's estimated offset from A440.
   State for tests and screen readers: window.keyweb.referencePlaying, window.keyweb.oscillatorsStarted. */
"use strict";

(function (kw) {
  kw.referencePlaying = false;
  kw.oscillatorsStarted = 0;

  // Chord tones in semitones above the tonic; the dominant is major in minor keys (harmonic minor).
  const TRIAD = { major: [0, 4, 7], minor: [0, 3, 7] };
  const CADENCE = {
    major: [[0, 4, 7], [0, 5, 9], [-1, 2, 7], [0, 4, 7]],
    minor: [[0, 3, 7], [0, 5, 8], [-1, 2, 7], [0, 3, 7]],
  };
  const CADENCE_BASS = [-12, -7, -5, -12];

  class ListeningAids {
    constructor({ level, onChange }) {
      this.levelInput = level;
      this.onChange = onChange || (() => {});
      this.context = null;
      this.master = null;
      this.active = 0;
      this.drone = null; // {voices, key}
      this.cents = 0;
      this.levelInput.addEventListener("input", () => this.applyLevel());
    }

    ensureContext() {
      if (!this.context) {
        const AudioContextClass = window.AudioContext || window.webkitAudioContext;
        if (!AudioContextClass) throw new Error("this browser has no Web Audio API");
        this.context = new AudioContextClass();
        this.master = this.context.createGain();
        this.master.connect(this.context.destination);
        this.applyLevel();
      }
      if (this.context.state === "suspended") this.context.resume();
      return this.context;
    }

    applyLevel() {
      if (!this.master) return;
      const level = parseFloat(this.levelInput.value);
      this.master.gain.setTargetAtTime(level * 0.6, this.context.currentTime, 0.03);
    }

    changeLevel(delta) {
      const value = Math.max(0, Math.min(1, parseFloat(this.levelInput.value) + delta));
      this.levelInput.value = String(value);
      this.applyLevel();
      return value;
    }

    setTuning(cents) {
      this.cents = isFinite(cents) ? cents : 0;
      if (this.drone) this.startDrone(this.drone.key);
    }

    frequency(midi) {
      return 440 * Math.pow(2, (midi - 69) / 12 + this.cents / 1200);
    }

    /* One oscillator through its own envelope; returns a handle that can release it early. */
    voice(midi, { start, duration = null, gain = 0.2, type = "triangle", attack = 0.02, release = 0.25 }) {
      const context = this.context;
      const oscillator = context.createOscillator();
      const envelope = context.createGain();
      oscillator.type = type;
      oscillator.frequency.value = this.frequency(midi);
      envelope.gain.setValueAtTime(0, start);
      envelope.gain.linearRampToValueAtTime(gain, start + attack);
      oscillator.connect(envelope);
      envelope.connect(this.master);
      oscillator.start(start);
      kw.oscillatorsStarted += 1;
      this.active += 1;
      this.report();
      oscillator.addEventListener("ended", () => {
        this.active -= 1;
        envelope.disconnect();
        this.report();
      });
      const stop = (at) => {
        envelope.gain.cancelScheduledValues(at);
        envelope.gain.setValueAtTime(envelope.gain.value, at);
        envelope.gain.linearRampToValueAtTime(0, at + release);
        oscillator.stop(at + release + 0.02);
      };
      if (duration !== null) {
        envelope.gain.setValueAtTime(gain, start + Math.max(attack, duration - release));
        envelope.gain.linearRampToValueAtTime(0, start + duration);
        oscillator.stop(start + duration + 0.02);
      }
      return { stop };
    }

    report() {
      kw.referencePlaying = this.active > 0;
      this.onChange({ playing: kw.referencePlaying, drone: Boolean(this.drone) });
    }

    tonicMidi(key, octave) {
      return 12 * (octave + 1) + key.tonic;
    }

    startDrone(key) {
      this.stopDrone();
      const context = this.ensureContext();
      const now = context.currentTime + 0.01;
      const low = this.tonicMidi(key, 2);
      const options = { start: now, attack: 0.4, release: 0.4 };
      this.drone = {
        key,
        voices: [
          this.voice(low, { ...options, type: "sine", gain: 0.32 }),
          this.voice(low + 12, { ...options, type: "triangle", gain: 0.14 }),
          this.voice(low + 19, { ...options, type: "sine", gain: 0.06 }),
        ],
      };
      this.report();
    }

    stopDrone() {
      if (!this.drone) return;
      const at = this.context.currentTime;
      this.drone.voices.forEach((voice) => voice.stop(at));
      this.drone = null;
      this.report();
    }

    toggleDrone(key) {
      if (this.drone) {
        this.stopDrone();
        return false;
      }
      this.startDrone(key);
      return true;
    }

    /* Keep a sounding drone on the selected key when the selection changes. */
    follow(key) {
      if (this.drone && this.drone.key.index !== key.index) this.startDrone(key);
    }

    playChord(key, start = null, duration = 1.8) {
      const context = this.ensureContext();
      const at = start === null ? context.currentTime + 0.02 : start;
      const root = this.tonicMidi(key, key.tonic > 6 ? 3 : 4);
      const voices = TRIAD[key.mode].map((step) => this.voice(root + step, { start: at, duration, gain: 0.16 }));
      voices.push(this.voice(root - 12, { start: at, duration, gain: 0.2, type: "sine" }));
      return voices;
    }

    playCadence(key) {
      const context = this.ensureContext();
      const root = this.tonicMidi(key, key.tonic > 6 ? 3 : 4);
      const step = 0.75;
      const begin = context.currentTime + 0.02;
      CADENCE[key.mode].forEach((chord, i) => {
        const at = begin + i * step;
        const duration = i === 3 ? 1.6 : step;
        chord.forEach((interval) => this.voice(root + interval, { start: at, duration, gain: 0.15 }));
        this.voice(root + CADENCE_BASS[i], { start: at, duration, gain: 0.22, type: "sine" });
      });
    }

    stopAll() {
      this.stopDrone();
      if (this.context) {
        // Silence anything scheduled (chords, cadences) by fading the master out and back.
        const at = this.context.currentTime;
        this.master.gain.cancelScheduledValues(at);
        this.master.disconnect();
        this.master = this.context.createGain();
        this.master.connect(this.context.destination);
        this.applyLevel();
      }
    }
  }

  kw.ListeningAids = ListeningAids;
})(window.keyweb);
