"""The instruments: wavetable oscillators, envelopes, plucked strings, synth voices and drums."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ml.synth.score import Note
from ml.synth.spec import TrackSpec

# --- sound: oscillators, envelopes, instruments -----------------------------------------------------------
_TABLE_SIZE = 2048


def _wavetable(amplitudes: Sequence[float], freq: float, sample_rate: int) -> np.ndarray:
    """One period of a harmonic series, without the partials that would alias above Nyquist."""
    n_partials = min(len(amplitudes), int(sample_rate / 2 / freq), _TABLE_SIZE // 2 - 1)
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spectrum[1 : n_partials + 1] = -0.5j * _TABLE_SIZE * np.asarray(amplitudes[:n_partials], dtype=float)
    table = np.fft.irfft(spectrum, _TABLE_SIZE)
    return np.append(table, table[0])


def _oscillate(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    position = (cycles % 1.0) * _TABLE_SIZE
    index = position.astype(np.intp)
    fraction = position - index
    return table[index] + fraction * (table[index + 1] - table[index])


def _envelope(
    n_on: int, n_release: int, sample_rate: int, attack: float, decay: float, sustain: float
) -> np.ndarray:
    """Linear attack, exponential decay to `sustain`, then a release that falls to silence."""
    t = np.arange(n_on) / sample_rate
    held = np.where(t < attack, t / attack, sustain + (1 - sustain) * np.exp(-(t - attack) / decay))
    level = held[-1] if n_on else 0.0
    release = level * np.linspace(1.0, 0.0, n_release) ** 2
    return np.concatenate([held, release])


def _saw(n_partials: int, cutoff_harmonic: float = np.inf) -> np.ndarray:
    """A sawtooth's 1/k partials through a 2nd-order Butterworth low-pass at `cutoff_harmonic`."""
    k = np.arange(1, n_partials + 1)
    return 1 / k / np.sqrt(1 + (k / cutoff_harmonic) ** 4)


def _pluck_string(
    freq: float, n: int, sample_rate: int, rng: np.random.Generator, brightness: float
) -> np.ndarray:
    """Karplus–Strong at the nearest integer loop delay, resampled to the exact pitch."""
    delay = max(2, int(sample_rate / freq - 0.5))  # the 2-point average adds half a sample of loop delay
    natural = sample_rate / (delay + 0.5)
    ring_s = float(np.clip(1.5 * np.sqrt(220 / freq), 0.4, 3.0))
    gain = 10 ** (-3 / (ring_s * natural))
    n_internal = int(n * freq / natural) + 2
    # The string starts in the triangle shape of a finger pluck (partials falling as 1/k², so the
    # fundamental leads) roughened by a little noise; pure noise would spread a low note's energy over
    # hundreds of equally loud partials and blur its pitch class.
    position = np.linspace(0, 1, delay, endpoint=False)
    pluck_at = rng.uniform(0.15, 0.35)
    shape = np.where(position < pluck_at, position / pluck_at, (1 - position) / (1 - pluck_at))
    excitation = shape + 0.15 * brightness * rng.uniform(-1, 1, delay)
    line = np.zeros(n_internal + delay + 1)  # line[1 + i] is sample i; line[0] is the silence before it
    line[1 : 1 + min(delay, n_internal)] = (excitation - excitation.mean())[:n_internal]
    for start in range(delay, n_internal, delay):
        stop = min(start + delay, n_internal)
        line[1 + start : 1 + stop] = (
            gain * 0.5 * (line[1 + start - delay : 1 + stop - delay] + line[start - delay : stop - delay])
        )
    return np.interp(np.arange(n) * (freq / natural), np.arange(n_internal), line[1 : n_internal + 1])


_Synth = Callable[[float, int, float], np.ndarray]  # (frequency Hz, samples held, brightness 0–1) -> samples


def make_synth(timbre: str, role: str, sample_rate: int, rng: np.random.Generator) -> _Synth:
    """The instrument for one part of a track; melodies get quicker attacks than comping."""
    sr = sample_rate
    quick = 0.3 if role == "melody" else 1.0

    def seconds(n: int, release_s: float) -> tuple[np.ndarray, int]:
        n_release = int(release_s * sr)
        return np.arange(n + n_release) / sr, n_release

    def organ(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.08)
        table = _wavetable([1.0, 0.7, 0.45, 0.35, 0, 0.2, 0, 0.12], freq, sr)
        wave = _oscillate(table, freq * t) * (1 + 0.08 * np.sin(2 * np.pi * 6.2 * t))
        return wave * _envelope(n, n_release, sr, 0.01, 0.15, 0.85)

    def strings(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.35)
        table = _wavetable(_saw(24, 6 + 6 * brightness), freq, sr)
        vibrato = 0.007 * np.minimum(t / 0.6, 1.0) * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5)
        wave = sum(_oscillate(table, freq * (t * detune + vibrato)) for detune in (0.997, 1.003))
        return wave * _envelope(n, n_release, sr, 0.25 * quick, 0.5, 0.8)

    def piano(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.15)
        k = np.arange(1, 31)
        dull = _wavetable(1 / k**2.5, freq, sr)
        bright = _wavetable((0.5 + brightness) / k**1.1, freq, sr)
        fade = np.exp(-t / 0.25)
        wave = _oscillate(dull, freq * t) + fade * _oscillate(bright - dull, freq * t)
        return wave * _envelope(
            n, n_release, sr, 0.004, float(np.clip(1.2 * np.sqrt(261 / freq), 0.3, 3)), 0.0
        )

    def fm(ratio: float, index: float, index_decay: float, decay: float, release_s: float) -> _Synth:
        def play(freq: float, n: int, brightness: float) -> np.ndarray:
            t, n_release = seconds(n, release_s)
            modulation = (index * brightness * np.exp(-t / index_decay) + 0.15) * np.sin(
                2 * np.pi * ratio * freq * t
            )
            wave = np.sin(2 * np.pi * freq * t + modulation)
            return wave * _envelope(n, n_release, sr, 0.003, decay, 0.0)

        return play

    def pluck(freq: float, n: int, brightness: float) -> np.ndarray:
        total = n + int(0.1 * sr)
        wave = _pluck_string(freq, total, sr, rng, 0.3 + 0.6 * brightness)
        return wave * _envelope(n, total - n, sr, 0.001, 1e9, 1.0)

    def pad(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.6)
        closed = _wavetable(_saw(40, 1.5), freq, sr)
        opened = _wavetable(_saw(40, 1.5 + 2500 / freq * brightness), freq, sr)
        sweep = 1 - np.exp(-t / 0.8)
        wave = sum(
            _oscillate(closed, freq * detune * t) + sweep * _oscillate(opened - closed, freq * detune * t)
            for detune in (0.995, 1.005)
        )
        return wave * _envelope(n, n_release, sr, 0.4 * quick, 1.0, 0.9)

    def round_bass(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.06)
        table = _wavetable([1.0, 0.5, 0.3, 0.12, 0.06], freq, sr)
        return _oscillate(table, freq * t) * _envelope(n, n_release, sr, 0.01, 0.25, 0.7)

    def synth_bass(freq: float, n: int, brightness: float) -> np.ndarray:
        t, n_release = seconds(n, 0.05)
        table = _wavetable(_saw(30, 3 + 3 * brightness), freq, sr)
        return _oscillate(table, freq * t) * _envelope(n, n_release, sr, 0.005, 0.2, 0.6)

    synths: dict[str, _Synth] = {
        "organ": organ,
        "strings": strings,
        "piano": piano,
        "epiano": fm(ratio=1.0, index=2.5, index_decay=0.4, decay=1.5, release_s=0.12),
        "bell": fm(ratio=3.5, index=1.0, index_decay=0.4, decay=2.0, release_s=0.5),
        "pluck": pluck,
        "pad": pad,
        "round_bass": round_bass,
        "synth_bass": synth_bass,
    }
    return synths[timbre]


def drum_kit(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Kick (sine sweep), snare (noise and a tone), closed and open hi-hat (high-passed noise)."""
    sr = sample_rate

    def span(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    t = span(0.35)
    low = rng.uniform(42, 55)
    kick = np.sin(2 * np.pi * np.cumsum(low + 100 * np.exp(-t / 0.035)) / sr) * np.exp(-t / 0.17)
    t = span(0.25)
    rattle = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.08)
    snare = 0.6 * rattle / 2 + np.sin(2 * np.pi * rng.uniform(170, 210) * t) * np.exp(-t / 0.05)
    hats = {}
    for name, length in (("hat", 0.06), ("open_hat", 0.25)):
        t = span(length)
        hiss = np.diff(rng.standard_normal(len(t) + 2), n=2) / 4
        hats[name] = 0.4 * hiss * np.exp(-t / (length / 4))
    return {"kick": kick, "snare": snare, **hats}


def place(bus: np.ndarray, wave: np.ndarray, start: int) -> None:
    skip = max(0, -start)  # a note nudged before the first sample loses its first samples
    start = max(start, 0)
    stop = min(len(bus), start + len(wave) - skip)
    if stop > start:
        bus[start:stop] += wave[skip : skip + stop - start]


def play_part(
    notes: Sequence[Note],
    synth: _Synth,
    spec: TrackSpec,
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    jitter_s: float,
) -> np.ndarray:
    samples_per_beat = 60 / spec.tempo_bpm * sample_rate
    bus = np.zeros(n_samples)
    # Progressions repeat, so most notes recur: keep each rendered waveform once per track.
    cache: dict[tuple[float, int, int], np.ndarray] = {}
    for note in notes:
        n_on = max(1, round(note.length * samples_per_beat))
        brightness = round(note.velocity * 4) / 4
        cache_key = (note.pitch, n_on, int(brightness * 4))
        if cache_key not in cache:
            freq = 440.0 * 2 ** ((note.pitch - 69 + spec.tuning_cents / 100) / 12)
            cache[cache_key] = synth(freq, n_on, brightness)
        jitter = int(rng.normal(0, jitter_s) * sample_rate) if jitter_s else 0
        place(bus, note.velocity * cache[cache_key], round(note.start * samples_per_beat) + jitter)
    return bus
