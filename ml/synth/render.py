"""From score to audio: playing the parts, effects (reverb, degradation) and the final mix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.synth.instruments import drum_kit, make_synth, place, play_part
from ml.synth.score import Note, compose
from ml.synth.spec import TrackSpec

_PEAK = 10 ** (-1 / 20)  # -1 dBFS


# --- effects ----------------------------------------------------------------------------------------------
def _comb(signal: np.ndarray, delay: int, gain: float) -> np.ndarray:
    """y[n] = x[n] + gain·y[n-delay], a delay-length block at a time (each block needs only earlier ones)."""
    out = signal.copy()
    for start in range(delay, len(out), delay):
        stop = min(start + delay, len(out))
        out[start:stop] += gain * out[start - delay : stop - delay]
    return out


def _allpass(signal: np.ndarray, delay: int, gain: float) -> np.ndarray:
    out = -gain * signal
    out[delay:] += signal[:-delay]
    for start in range(delay, len(out), delay):
        stop = min(start + delay, len(out))
        out[start:stop] += gain * out[start - delay : stop - delay]
    return out


def _reverb(signal: np.ndarray, sample_rate: int, rt60_s: float) -> np.ndarray:
    """A Schroeder reverberator: four parallel combs, two allpasses in series."""
    wet = np.zeros_like(signal)
    for delay_s in (0.0297, 0.0371, 0.0411, 0.0437):
        wet += _comb(signal, int(delay_s * sample_rate), 10 ** (-3 * delay_s / rt60_s))
    for delay_s in (0.0126, 0.0077):
        wet = _allpass(wet, int(delay_s * sample_rate), 0.7)
    return np.convolve(wet, (0.25, 0.5, 0.25), mode="same") / 4


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal**2))) if signal.size else 0.0


def _normalised(signal: np.ndarray, level: float) -> np.ndarray:
    rms = _rms(signal)
    return signal * (level / rms) if rms > 0 else signal


def _degrade(mix: np.ndarray, spec: TrackSpec, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Echo, reverb, hiss and hum that grow with difficulty; difficulty 0 returns the mix untouched."""
    d = spec.difficulty
    if d <= 0:
        return mix
    if d >= 0.3 and rng.random() < 0.6:
        delay = int(rng.choice([0.5, 0.75]) * 60 / spec.tempo_bpm * sample_rate)
        echo = np.zeros_like(mix)
        for repeat in range(1, 4):
            if repeat * delay < len(mix):
                echo[repeat * delay :] += (0.3 + 0.2 * d) ** (repeat - 1) * mix[: len(mix) - repeat * delay]
        mix = mix + 0.3 * d * echo
    mix = mix + 0.5 * d * _reverb(mix, sample_rate, float(rng.uniform(0.8, 2.2)))
    level = _rms(mix)
    white = rng.standard_normal(len(mix))
    rumble = np.convolve(white, np.ones(24) / np.sqrt(24), mode="same")
    snr_db = 35 - 20 * d
    mix = mix + _normalised(white + 2 * rumble, level * 10 ** (-snr_db / 20))
    if d > 0.5 and rng.random() < 0.3:
        t = np.arange(len(mix)) / sample_rate
        mains = float(rng.choice([50.0, 60.0]))
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
        mix = mix + _normalised(hum, level * 10 ** (-30 / 20))
    return mix


def render(spec: TrackSpec, *, sample_rate: int = 22050) -> np.ndarray:
    """Mono float32 audio of exactly round(duration_s · sample_rate) samples, peak-normalised to -1 dBFS."""
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    score = compose(spec)
    rng = np.random.default_rng([spec.seed, 2])
    n_samples = round(spec.duration_s * sample_rate)
    bass_timbre = (
        "pluck" if spec.timbre == "pluck" else ("round_bass", "synth_bass", "pluck")[int(rng.integers(3))]
    )

    def play(notes: Sequence[Note], timbre: str, role: str, jitter_s: float) -> np.ndarray:
        synth = make_synth(timbre, role, sample_rate, rng)
        return play_part(notes, synth, spec, n_samples, sample_rate, rng, jitter_s)

    comping = play(score.comping, spec.timbre, "comping", 0.004)
    melody = play(score.melody, spec.timbre, "melody", 0.006)
    bass = play(score.bass, bass_timbre, "bass", 0.0)
    mix = _normalised(comping, 0.8) + _normalised(melody, 0.9) + _normalised(bass, 0.7)
    if score.drums:
        kit = drum_kit(sample_rate, rng)
        drums = np.zeros(n_samples)
        samples_per_beat = 60 / spec.tempo_bpm * sample_rate
        for beat, drum, velocity in score.drums:
            place(drums, velocity * kit[drum], round(beat * samples_per_beat))
        mix = mix + _normalised(drums, (0.5 + 0.9 * spec.difficulty) * _rms(mix))
    mix = _degrade(mix, spec, sample_rate, rng)
    fade_in, fade_out = min(n_samples, int(0.01 * sample_rate)), min(n_samples, int(0.3 * sample_rate))
    mix[:fade_in] *= np.linspace(0, 1, fade_in)
    mix[n_samples - fade_out :] *= np.linspace(1, 0, fade_out) ** 2
    peak = float(np.max(np.abs(mix)))
    return (mix * (_PEAK / peak) if peak > 0 else mix).astype(np.float32)
