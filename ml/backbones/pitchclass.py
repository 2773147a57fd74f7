"""The pitch-class backbone: tuned bass/treble chroma statistics per window, no learned weights.

Every embedding is a (N_CHANNELS, 12) array flattened channel-major, pitch class 0 = C. Transposing
the audio by k semitones rolls every channel by k, so augmentation is an exact `np.roll`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ml.audio import WINDOW_ELECTRONIC, resample, window_starts
from ml.backbones.base import SAMPLE_RATE, Backbone
from ml.keys import ALL_KEYS, Mode

# All bands share one frame clock: a frame every 128 ms, centred on t * FRAME_SECONDS.
FRAME_SECONDS = 0.128
FRAME_HOP = int(FRAME_SECONDS * SAMPLE_RATE)
# Bump whenever the features change: embedding caches are keyed by the backbone's public attributes.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class _Band:
    """One octave group analysed at its own sample rate, so low notes get long windows (CQT-like)."""

    sample_rate: int
    n_fft: int
    lowest_midi: int
    highest_midi: int

    @property
    def hop(self) -> int:
        return round(FRAME_SECONDS * self.sample_rate)


# Each band resolves a semitone into at least 4 FFT bins at its lowest note.
_BANDS = (
    _Band(sample_rate=2_000, n_fft=4096, lowest_midi=24, highest_midi=47),  # C1–B2, 2 s window
    _Band(sample_rate=4_000, n_fft=2048, lowest_midi=48, highest_midi=71),  # C3–B4, 0.5 s window
    _Band(sample_rate=16_000, n_fft=2048, lowest_midi=72, highest_midi=107),  # C5–B7, 0.13 s window
)
_LOWEST_MIDI = _BANDS[0].lowest_midi
_N_SEMITONES = _BANDS[-1].highest_midi - _LOWEST_MIDI + 1
_FRAMES_PER_CHUNK = 256  # bounds memory on long tracks


def _register_weights() -> tuple[np.ndarray, np.ndarray]:
    """Soft bass and treble weights over MIDI pitch; soft edges keep transposition nearly exact."""
    midi = np.arange(_LOWEST_MIDI, _LOWEST_MIDI + _N_SEMITONES, dtype=np.float64)
    bass = np.interp(midi, [24, 28, 45, 57], [0.0, 1.0, 1.0, 0.0])
    treble = np.interp(midi, [45, 57, 93, 107], [0.0, 1.0, 1.0, 0.0])
    return bass, treble


_BASS_WEIGHTS, _TREBLE_WEIGHTS = _register_weights()

# Embedding layout: channel name -> row of the (N_CHANNELS, 12) array.
CHANNELS = (
    "treble_mean",  # mean log-compressed treble chroma
    "bass_mean",  # mean log-compressed bass chroma
    "treble_std",  # its standard deviation over frames
    "bass_std",
    "treble_top3",  # share of (energy-weighted) frames in which the pitch class is among the 3 strongest
    "bass_top1",  # share of frames in which it is the strongest bass pitch class
    *(f"treble_interval_{d}" for d in range(1, 7)),  # treble[p] * treble[p + d], normalised
    *(f"bass_treble_interval_{d}" for d in range(12)),  # bass[p] * treble[p + d], normalised
)
N_CHANNELS = len(CHANNELS)
EMBEDDING_DIM = N_CHANNELS * 12


# --- spectral front end --------------------------------------------------------------------------------


def _band_power_chunks(audio: np.ndarray, band: _Band, n_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame, power spectra of shape (frames, bins)) for the band, chunk by chunk."""
    signal = resample(audio, from_rate=SAMPLE_RATE, to_rate=band.sample_rate)
    needed = band.n_fft + band.hop * (n_frames - 1)
    padded = np.zeros(needed, dtype=np.float32)
    usable = min(signal.size, needed - band.n_fft // 2)
    padded[band.n_fft // 2 : band.n_fft // 2 + usable] = signal[:usable]
    window = np.hanning(band.n_fft + 1)[:-1].astype(np.float32)
    # Normalised so a sinusoid has the same power in every band whatever its FFT size.
    scale = np.float32(2.0 / window.sum())
    frames = np.lib.stride_tricks.sliding_window_view(padded, band.n_fft)[:: band.hop]
    for first in range(0, n_frames, _FRAMES_PER_CHUNK):
        chunk = frames[first : first + _FRAMES_PER_CHUNK] * window
        spectrum = np.fft.rfft(chunk, axis=1) * scale
        yield first, spectrum.real**2 + spectrum.imag**2


def _semitone_kernel(band: _Band, tuning_cents: float) -> np.ndarray:
    """(bins, semitones) weights: raised-cosine bumps one semitone wide, centred on the tuned pitches."""
    frequencies = np.arange(1, band.n_fft // 2 + 1) * band.sample_rate / band.n_fft
    pitch = 69 + 12 * np.log2(frequencies / 440.0) - tuning_cents / 100
    pitch = np.concatenate([[-np.inf], pitch])  # the DC bin has no pitch
    midi = np.arange(band.lowest_midi, band.highest_midi + 1)
    distance = pitch[:, None] - midi[None, :]
    inside = np.abs(distance) < 1
    kernel = np.where(inside, np.cos(np.pi * np.where(inside, distance, 0.0) / 2) ** 2, 0.0)
    return kernel.astype(np.float32)


def _n_frames(n_samples: int) -> int:
    return 1 + n_samples // FRAME_HOP


def estimate_tuning_cents(audio: np.ndarray) -> float:
    """Global tuning offset from A440 equal temperament, in cents within [-50, 50).

    Spectral peaks between 100 Hz and 3 kHz are located to a fraction of a bin (parabolic
    interpolation on the log magnitude); their deviations from the nearest equal-tempered pitch are
    averaged on the circle (so -49 and +49 cents agree), weighted by peak amplitude.
    """
    audio = _as_mono(audio)
    n_frames = _n_frames(audio.size)
    resultant = 0j
    for band, low_hz, high_hz in ((_BANDS[1], 100.0, 1000.0), (_BANDS[2], 1000.0, 3000.0)):
        bin_hz = band.sample_rate / band.n_fft
        low_bin, high_bin = int(low_hz / bin_hz), int(high_hz / bin_hz)
        for _, power in _band_power_chunks(audio, band, n_frames):
            log_power = np.log(power[:, low_bin - 1 : high_bin + 2] + 1e-12)
            left, centre, right = log_power[:, :-2], log_power[:, 1:-1], log_power[:, 2:]
            # Only clear peaks within 40 dB of the frame's strongest one count.
            floor = centre.max(axis=1, keepdims=True) - np.log(1e4)
            is_peak = (centre > left) & (centre >= right) & (centre > floor)
            frame_index, bin_offset = np.nonzero(is_peak)
            if frame_index.size == 0:
                continue
            curvature = left - 2 * centre + right
            with np.errstate(divide="ignore", invalid="ignore"):
                offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
            fine_bin = low_bin + bin_offset + offset[frame_index, bin_offset]
            cents = 1200 * np.log2(np.maximum(fine_bin, 1e-6) * bin_hz / 440.0)
            amplitude = np.exp(0.5 * centre[frame_index, bin_offset])
            resultant += np.sum(amplitude * np.exp(2j * np.pi * cents / 100))
    if resultant == 0:
        return 0.0
    cents = float(np.angle(resultant) * 100 / (2 * np.pi))
    return cents if cents < 50 else cents - 100


def semitone_spectrogram(audio: np.ndarray, *, tuning_cents: float) -> np.ndarray:
    """Power per tuned semitone, shape (frames, 84) for MIDI 24 (C1) to 107 (B7)."""
    audio = _as_mono(audio)
    n_frames = _n_frames(audio.size)
    energy = np.zeros((n_frames, _N_SEMITONES), dtype=np.float32)
    for band in _BANDS:
        kernel = _semitone_kernel(band, tuning_cents)
        columns = slice(band.lowest_midi - _LOWEST_MIDI, band.highest_midi - _LOWEST_MIDI + 1)
        for first, power in _band_power_chunks(audio, band, n_frames):
            energy[first : first + len(power), columns] = power @ kernel
    return energy


def _fold(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(frames, semitones) -> (frames, 12) weighted sum over octaves; column 0 is pitch class C."""
    weighted = values * weights.astype(np.float32)
    chroma = np.zeros((values.shape[0], 12), dtype=np.float32)
    for offset in range(_N_SEMITONES):
        chroma[:, (_LOWEST_MIDI + offset) % 12] += weighted[:, offset]
    return chroma


def frame_chroma(audio: np.ndarray, *, tuning_cents: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log-compressed, tuning-compensated (bass, treble) chroma per 128 ms frame, each (frames, 12)."""
    audio = _as_mono(audio)
    if tuning_cents is None:
        tuning_cents = estimate_tuning_cents(audio)
    energy = semitone_spectrogram(audio, tuning_cents=tuning_cents)
    # Relative to the track's loud frames, so gain does not matter and quiet passages stay quiet.
    loudest = energy.max(axis=1)
    reference = float(np.percentile(loudest, 95)) if loudest.size else 0.0
    if reference <= 0:
        return np.zeros((len(energy), 12), np.float32), np.zeros((len(energy), 12), np.float32)
    compressed = np.log1p(1000.0 * energy / reference)
    # Drop what every pitch within an octave shares (drums, noise): keep what stands out above it.
    tonal = np.maximum(compressed - _octave_floor(compressed), 0.0)
    return _fold(tonal, _BASS_WEIGHTS), _fold(tonal, _TREBLE_WEIGHTS)


def _octave_floor(values: np.ndarray) -> np.ndarray:
    """Per frame and semitone, the median over the surrounding octave (±6 semitones, edges clamped)."""
    padded = np.pad(values, ((0, 0), (6, 6)), mode="edge")
    neighbourhood = np.lib.stride_tricks.sliding_window_view(padded, 13, axis=1)
    return np.median(neighbourhood, axis=2).astype(np.float32)


# --- window statistics ---------------------------------------------------------------------------------


def _roll_product(first: np.ndarray, second: np.ndarray, interval: int) -> np.ndarray:
    """Per pitch class p, the frame-summed first[:, p] * second[:, p + interval]."""
    return (first * np.roll(second, -interval, axis=1)).sum(axis=0)


def _window_statistics(bass: np.ndarray, treble: np.ndarray) -> np.ndarray:
    """(N_CHANNELS, 12) statistics of the frames of one window."""
    eps = np.float32(1e-6)
    treble_norm = np.linalg.norm(treble, axis=1)
    bass_norm = np.linalg.norm(bass, axis=1)
    channels = [treble.mean(axis=0), bass.mean(axis=0), treble.std(axis=0), bass.std(axis=0)]
    # Prominence shares: each frame votes for its strongest pitch classes, weighted by its level.
    top3 = np.argsort(treble, axis=1)[:, -3:]
    votes = np.zeros_like(treble)
    np.put_along_axis(votes, top3, 1.0, axis=1)
    channels.append((votes * treble_norm[:, None]).sum(axis=0) / (treble_norm.sum() + eps))
    votes = np.zeros_like(bass)
    np.put_along_axis(votes, bass.argmax(axis=1)[:, None], 1.0, axis=1)
    channels.append((votes * bass_norm[:, None]).sum(axis=0) / (bass_norm.sum() + eps))
    # Interval co-occurrence, scale-free: energy-weighted averages of normalised products.
    treble_energy = float((treble_norm**2).sum()) + eps
    channels += [_roll_product(treble, treble, d) / treble_energy for d in range(1, 7)]
    cross_energy = float((bass_norm * treble_norm).sum()) + eps
    channels += [_roll_product(bass, treble, d) / cross_energy for d in range(12)]
    return np.stack(channels).astype(np.float32)


def _as_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("cannot embed empty audio")
    return audio


# --- the backbone --------------------------------------------------------------------------------------


class PitchClassBackbone(Backbone):
    """Window embeddings of tuned bass/treble chroma statistics; fast on one CPU core, no weights."""

    name = "pitch_class"
    embedding_dim = EMBEDDING_DIM
    cyclic_transposition = True

    def __init__(self, *, window_samples: int = WINDOW_ELECTRONIC, hop_samples: int | None = None) -> None:
        # Statistics over time need a few frames in every window.
        if window_samples < 4 * FRAME_HOP:
            raise ValueError(f"window_samples must be at least {4 * FRAME_HOP} (0.5 s), got {window_samples}")
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self.feature_version = FEATURE_VERSION

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        """(n_windows, EMBEDDING_DIM) float32; windows follow `ml.audio.window_starts`."""
        audio = _as_mono(audio)
        # Frames are computed once for the whole track and shared by overlapping windows.
        bass, treble = frame_chroma(audio)
        starts = window_starts(audio.size, window_samples=self.window_samples, hop_samples=self.hop_samples)
        frame_centres = np.arange(len(treble)) * FRAME_HOP
        rows = []
        for start in starts:
            inside = (frame_centres >= start) & (frame_centres < start + self.window_samples)
            rows.append(_window_statistics(bass[inside], treble[inside]).reshape(-1))
        return np.stack(rows)

    def transpose_embeddings(self, embeddings: np.ndarray, semitones: int) -> np.ndarray:
        return transpose_embeddings(embeddings, semitones)

    def estimate_tuning_cents(self, audio: np.ndarray) -> float:
        return estimate_tuning_cents(audio)


def transpose_embeddings(embeddings: np.ndarray, semitones: int) -> np.ndarray:
    """Embeddings of the same audio `semitones` higher: every (N_CHANNELS, 12) block rolled by k."""
    embeddings = np.asarray(embeddings)
    blocks = embeddings.reshape(*embeddings.shape[:-1], N_CHANNELS, 12)
    return np.roll(blocks, int(semitones), axis=-1).reshape(embeddings.shape)


# --- training-free key estimate ------------------------------------------------------------------------

# Temperley's (Kostka–Payne) key profiles, tonic first.
_MAJOR_PROFILE = np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0])
_MINOR_PROFILE = np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0])
# Chroma also holds the notes' overtones (the 3rd and 6th partials land a fifth up, the 5th a major
# third up), which pulls plain profile matching towards the dominant; the templates include them.
_PARTIAL_DECAY = 0.6
_PARTIAL_OFFSETS = [round(12 * np.log2(partial)) % 12 for partial in range(1, 7)]


def _with_overtones(profile: np.ndarray) -> np.ndarray:
    return sum(_PARTIAL_DECAY**n * np.roll(profile, offset) for n, offset in enumerate(_PARTIAL_OFFSETS))


def _key_templates() -> np.ndarray:
    """(24, 12) centred, unit-norm profiles in `Key.index` order."""
    major, minor = _with_overtones(_MAJOR_PROFILE), _with_overtones(_MINOR_PROFILE)
    templates = np.stack([np.roll(major if key.mode == Mode.MAJOR else minor, key.tonic) for key in ALL_KEYS])
    templates -= templates.mean(axis=1, keepdims=True)
    return templates / np.linalg.norm(templates, axis=1, keepdims=True)


_KEY_TEMPLATES = _key_templates()


def template_key_probabilities(embeddings: np.ndarray, *, sharpness: float = 20.0) -> np.ndarray:
    """(24,) key probabilities from profile correlation with the mean chroma; no training needed.

    Accepts one embedding or (n_windows, EMBEDDING_DIM); windows are averaged first. `sharpness`
    turns correlations (−1..1) into a softmax; it only sets how confident the output looks.
    """
    blocks = np.asarray(embeddings, dtype=np.float64).reshape(-1, N_CHANNELS, 12).mean(axis=0)
    treble = blocks[CHANNELS.index("treble_mean")]
    bass = blocks[CHANNELS.index("bass_mean")]
    profile = treble / (np.linalg.norm(treble) + 1e-9) + 0.5 * bass / (np.linalg.norm(bass) + 1e-9)
    centred = profile - profile.mean()
    norm = np.linalg.norm(centred)
    if norm == 0:
        return np.full(24, 1 / 24)
    correlation = _KEY_TEMPLATES @ (centred / norm)
    logits = sharpness * correlation
    probabilities = np.exp(logits - logits.max())
    return probabilities / probabilities.sum()
