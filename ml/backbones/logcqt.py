"""The learned backbone's front end: a 7-octave constant-Q spectrogram, 36 bins per octave, log-compressed.

nnAudio's CQT1992v2 pads every kernel to the longest one, so one transform over 7 octaves at 16 kHz
costs ~8 G multiply-adds per 40 s. Computing each octave group at its own sample rate (C1–B2 at
2 kHz, C3–B4 at 4 kHz, C5–B7 at 16 kHz; the same hop of 64 ms everywhere) gives the same bins for
an eighth of the work.
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
FEATURE_VERSION = 1


@dataclass(frozen=True)
class _Band:
    sample_rate: int
    first_octave: int  # 0 = the octave starting at C1
    n_octaves: int

    @property
    def hop(self) -> int:
        return round(FRAME_SECONDS * self.sample_rate)


_BANDS = (_Band(2_000, 0, 2), _Band(4_000, 2, 2), _Band(16_000, 4, 3))


def _midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


class LogCQT(nn.Module):
    """(batch, samples at 16 kHz) → (batch, N_BINS, frames) log-magnitude, bin 3p+1 centred on MIDI 24+p.

    The lowest bin sits a third of a semitone below C1, so each semitone's three bins are
    [flat, centre, sharp] and pooling them in threes keeps pitch class p at index p.
    """

    def __init__(self) -> None:
        super().__init__()
        from nnAudio.features import CQT1992v2

        self.bands = nn.ModuleList()
        for band in _BANDS:
            fmin = _midi_hz(LOWEST_MIDI + 12 * band.first_octave - 1 / BINS_PER_SEMITONE)
            self.bands.append(
                CQT1992v2(
                    sr=band.sample_rate,
                    hop_length=band.hop,
                    fmin=fmin,
                    n_bins=band.n_octaves * BINS_PER_OCTAVE,
                    bins_per_octave=BINS_PER_OCTAVE,
                    output_format="Magnitude",
                    verbose=False,
                )
            )

    def forward(self, signals: list[torch.Tensor]) -> torch.Tensor:
        """`signals[i]` is the batch resampled to band i's rate (see `band_signals`)."""
        n_frames = signals[0].shape[-1] // _BANDS[0].hop + 1
        parts = [cqt(signal)[..., :n_frames] for cqt, signal in zip(self.bands, signals, strict=True)]
        return torch.log1p(100.0 * torch.cat(parts, dim=1))


def band_signals(audio: np.ndarray) -> list[np.ndarray]:
    """Mono 16 kHz audio resampled for each band; padded to whole frames so every band has equal frames."""
    audio = np.asarray(audio, dtype=np.float32)
    hop = _BANDS[-1].hop
    n_frames = max(1, int(np.ceil(audio.size / hop)))
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    padded[: audio.size] = audio
    return [resample(padded, from_rate=SAMPLE_RATE, to_rate=band.sample_rate) for band in _BANDS]


_front_end: LogCQT | None = None


def log_cqt(audio: np.ndarray) -> np.ndarray:
    """(N_BINS, frames) float32 log-CQT of one mono 16 kHz track."""
    global _front_end
    if _front_end is None:
        _front_end = LogCQT().eval()
    with torch.inference_mode():
        signals = [torch.from_numpy(signal)[None] for signal in band_signals(audio)]
        return _front_end(signals)[0].numpy()
