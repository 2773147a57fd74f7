"""The learned backbone's front end: a 7-octave constant-Q spectrogram, 36 bins per octave, log-compressed.

Each octave is computed at the lowest sample rate that holds it (C1–B2 at 2 kHz, C3–B4 at 4 kHz,
C5–B7 at 16 kHz; one 64 ms hop everywhere) by direct correlation with Hann-windowed complex
sinusoids, each `ceil(Q · rate / f)` samples long and L1-normalised, magnitudes scaled by the square
root of that length: the kernels and numbers of nnAudio's CQT1992v2 (librosa normalisation, reflected
edges), which the shipped network was trained on and `tests/ml/test_skey.py` compares against. Built
here because nnAudio pads every kernel of a transform to the longest one's power of two and imports
scipy.signal (a second per process); convolving each octave with kernels cut to its own support gives
the same bins for under half the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml.audio import resample
from ml.backbones.base import SAMPLE_RATE

BINS_PER_SEMITONE = 3
BINS_PER_OCTAVE = 12 * BINS_PER_SEMITONE
N_OCTAVES = 7
N_BINS = N_OCTAVES * BINS_PER_OCTAVE
FRAME_SECONDS = 0.064
LOWEST_MIDI = 24  # C1, 32.7 Hz
# Bump whenever the numbers change: embedding caches are keyed on it (through the fingerprint).
# 2: the opening profiles (`opening_profiles`) joined the embedding.
# 3: a held-note profile (backed out; caches keyed on 3 hold it). 4: each channel's spread over the
# window's frames joined its mean (ml.backbones.skey.window_statistics).
FEATURE_VERSION = 4
# The opening: the first OPENING_SECONDS after the music starts (the first frame whose energy reaches
# OPENING_ONSET of the loudest frame's), with the bass read from the lowest OPENING_BASS_OCTAVES (C1–B3).
OPENING_SECONDS = 2.0
OPENING_ONSET = 0.15
OPENING_BASS_OCTAVES = 3
N_OPENING_PROFILES = 2
# Frames per matrix product: bounds the unfolded copy to ~26 MB however long the track.
_FRAMES_PER_PRODUCT = 2048


@dataclass(frozen=True)
class _Band:
    sample_rate: int
    first_octave: int  # 0 = the octave starting at C1
    n_octaves: int

    @property
    def hop(self) -> int:
        return round(FRAME_SECONDS * self.sample_rate)


_BANDS = (_Band(2_000, 0, 2), _Band(4_000, 2, 2), _Band(16_000, 4, 3))


# Constant-Q factor: each kernel spans Q periods of its frequency.
_Q = 1.0 / (2 ** (1 / BINS_PER_OCTAVE) - 1)


def _midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _band_frequencies(band: _Band) -> np.ndarray:
    fmin = _midi_hz(LOWEST_MIDI + 12 * band.first_octave - 1 / BINS_PER_SEMITONE)
    return fmin * 2.0 ** (np.arange(band.n_octaves * BINS_PER_OCTAVE) / BINS_PER_OCTAVE)


def _band_width(band: _Band) -> int:
    """The power of two above the band's longest kernel: the window every kernel is centred in."""
    return int(2 ** np.ceil(np.log2(np.ceil(_Q * band.sample_rate / _band_frequencies(band)[0]))))


# Reflecting the edges needs more than half a window of signal in every band: shorter audio (up to
# ~1.1 s) is zero-padded to this many frames first.
MIN_FRAMES = max(_band_width(band) // 2 // band.hop + 1 for band in _BANDS)


class _OctaveKernels(nn.Module):
    """One octave's complex constant-Q kernels at one sample rate, cut to the support they share.

    Every kernel sits where nnAudio centres it in a window of `width` samples (the next power of two
    above the band's longest kernel), so frame t of the output covers the same samples as nnAudio's.
    """

    def __init__(self, *, sample_rate: int, frequencies: np.ndarray, width: int) -> None:
        super().__init__()
        lengths = np.ceil(_Q * sample_rate / frequencies).astype(np.int64)
        kernels = np.zeros((len(frequencies), width), dtype=np.complex128)
        for row, (frequency, length) in enumerate(zip(frequencies, lengths, strict=True)):
            start = int(np.ceil(width / 2 - length / 2)) - (length % 2)
            hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)  # periodic Hann
            phase = 2 * np.pi * frequency / sample_rate * np.arange((-length) // 2, length // 2)
            kernel = hann * np.exp(1j * phase)
            kernels[row, start : start + length] = kernel / np.abs(kernel).sum()
        used = np.flatnonzero(np.abs(kernels).sum(axis=0))
        self.offset, end = int(used[0]), int(used[-1]) + 1
        # (support, 2 × bins): real parts, then imaginary parts, as the right side of a matrix product.
        stacked = np.concatenate([kernels.real, kernels.imag])[:, self.offset : end].T
        self.register_buffer("kernels", torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32)))
        self.register_buffer("scale", torch.from_numpy(np.sqrt(lengths).astype(np.float32))[:, None])

    def forward(self, padded: torch.Tensor, *, hop: int, n_frames: int) -> torch.Tensor:
        # Frames as a strided view times the kernels: one GEMM. Same sums as conv1d, and no per-length
        # set-up (oneDNN builds a convolution for every new input length, ~30 % of the cost per track).
        frames = padded[:, self.offset :].unfold(-1, self.kernels.shape[0], hop)[:, :n_frames]
        products = [
            frames[:, start : start + _FRAMES_PER_PRODUCT] @ self.kernels
            for start in range(0, frames.shape[1], _FRAMES_PER_PRODUCT)
        ]
        real, imag = torch.cat(products, dim=1).transpose(1, 2).chunk(2, dim=1)
        return torch.sqrt(real.square() + imag.square()) * self.scale


class _BandCQT(nn.Module):
    """The constant-Q bins of a band's octaves at the band's sample rate (batch, samples) → (batch, bins, frames)."""

    def __init__(self, band: _Band) -> None:
        super().__init__()
        frequencies = _band_frequencies(band)
        if frequencies.max() > band.sample_rate / 2:
            raise ValueError(
                f"the top bin {frequencies.max():.0f} Hz is above {band.sample_rate} Hz's Nyquist"
            )
        self.width = _band_width(band)
        self.hop = band.hop
        self.octaves = nn.ModuleList(
            _OctaveKernels(sample_rate=band.sample_rate, frequencies=octave, width=self.width)
            for octave in frequencies.reshape(band.n_octaves, BINS_PER_OCTAVE)
        )

    def forward(self, signal: torch.Tensor, n_frames: int) -> torch.Tensor:
        half = self.width // 2
        padded = torch.nn.functional.pad(signal[:, None], (half, half), mode="reflect")[:, 0]
        return torch.cat([octave(padded, hop=self.hop, n_frames=n_frames) for octave in self.octaves], dim=1)


class LogCQT(nn.Module):
    """(batch, samples at 16 kHz) → (batch, N_BINS, frames) log-magnitude, bin 3p+1 centred on MIDI 24+p.

    The lowest bin sits a third of a semitone below C1, so each semitone's three bins are
    [flat, centre, sharp] and pooling them in threes keeps pitch class p at index p.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bands = nn.ModuleList(_BandCQT(band) for band in _BANDS)

    def forward(self, signals: list[torch.Tensor]) -> torch.Tensor:
        """`signals[i]` is the batch resampled to band i's rate (see `band_signals`)."""
        n_frames = signals[0].shape[-1] // _BANDS[0].hop + 1
        parts = [cqt(signal, n_frames) for cqt, signal in zip(self.bands, signals, strict=True)]
        return torch.log1p(100.0 * torch.cat(parts, dim=1))


def band_signals(audio: np.ndarray) -> list[np.ndarray]:
    """Mono 16 kHz audio resampled for each band; zero-padded to whole frames (at least MIN_FRAMES) so
    every band has equal frames."""
    audio = np.asarray(audio, dtype=np.float32)
    hop = _BANDS[-1].hop
    n_frames = max(MIN_FRAMES, int(np.ceil(audio.size / hop)))
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    padded[: audio.size] = audio
    return [resample(padded, from_rate=SAMPLE_RATE, to_rate=band.sample_rate) for band in _BANDS]


def opening_profiles(log_cqt: torch.Tensor) -> torch.Tensor:
    """(N_OPENING_PROFILES × 12,) pitch-class profiles of the opening of one (N_BINS, frames) log-CQT:
    all octaves, then the bass octaves; each L2-normalised, index 0 = C.

    Where a piece starts says much about its key: tunes and chorales open on the tonic or its chord,
    classical movements in their home key. Window averages lose *where* a note falls, so the opening
    travels with every window's embedding. Each semitone is the strongest of its three bins, each pitch
    class the sum over octaves, so rolling the input by k semitones rolls the all-octave profile by
    exactly k; the bass profile moves with its notes, up to what crosses the top of its band.
    """
    energy = log_cqt.sum(dim=0)
    loud = torch.nonzero(energy >= OPENING_ONSET * energy.max()).flatten()
    start = int(loud[0]) if len(loud) else 0
    frames = max(1, round(OPENING_SECONDS / FRAME_SECONDS))
    opening = log_cqt[:, start : start + frames]
    semitones = opening.reshape(N_OCTAVES, 12, BINS_PER_SEMITONE, -1).amax(dim=2).mean(dim=-1)  # (7, 12)
    profiles = torch.stack([semitones.sum(dim=0), semitones[:OPENING_BASS_OCTAVES].sum(dim=0)])
    return (profiles / profiles.norm(dim=1, keepdim=True).clamp_min(1e-6)).flatten()


_front_end: LogCQT | None = None


def log_cqt(audio: np.ndarray) -> np.ndarray:
    """(N_BINS, frames) float32 log-CQT of one mono 16 kHz track."""
    global _front_end
    if _front_end is None:
        _front_end = LogCQT().eval()
    with torch.inference_mode():
        signals = [torch.from_numpy(signal)[None] for signal in band_signals(audio)]
        return _front_end(signals)[0].numpy()
