"""The learned backbone: log-CQT → SKeyNet, one (2·(2 + E) + 2) × 12 pitch-class embedding per analysis window.

Windows are pooled from one pass of the network over the whole track (it is fully convolutional), so
overlapping windows cost nothing extra. The embedding's channels are the window's time mean of the
network's 2 + E octave-summed output channels (the first two are the 24 key logits, major then minor),
then their standard deviation over the window's frames, then the track's two opening profiles
(ml.backbones.logcqt.opening_profiles, the same in every window); each is a 12-vector indexed by pitch
class with C first: rolling it is what transposing the input spectrogram does to it (see
ml.backbones.skey_net).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ml.augmentation import roll_pitch_classes
from ml.backbones.base import ASSETS_DIR, SKEY_CHECKPOINT_ENV, Backbone
from ml.backbones.logcqt import (
    FEATURE_VERSION,
    FRAME_SECONDS,
    N_OPENING_PROFILES,
    LogCQT,
    band_signals,
    opening_profiles,
)
from ml.backbones.skey_net import N_PITCH_CLASSES, SKeyNet, load_model, weights_sha256
from ml.heads import N_KEYS, softmax

DEFAULT_CHECKPOINT = ASSETS_DIR / "skey_backbone.pt"
WINDOW_SECONDS = 10.0
HOP_SECONDS = 5.0


def default_checkpoint() -> Path:
    return Path(os.environ.get(SKEY_CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)


def window_statistics(frame_features: torch.Tensor) -> torch.Tensor:
    """(C, 84, frames) of one window → (2C, 12): each channel summed over octaves, then its mean over
    the frames (what SKeyNet.pool gives) and its standard deviation over them.

    The spread tells a pitch class that sounds throughout (a drone, a held tonic) from one that comes
    and goes with the same mean; adding it lifted devbench at 240 labels out of fold as well as on test
    (docs/benchmarks.md).
    """
    by_pitch_class = frame_features.unflatten(1, (-1, N_PITCH_CLASSES)).sum(dim=1)  # (C, 12, frames)
    return torch.cat([by_pitch_class.mean(dim=-1), by_pitch_class.std(dim=-1, correction=0)])


class SKeyBackbone(Backbone):
    name = "skey"
    cyclic_transposition = True

    def __init__(
        self,
        *,
        checkpoint_path: str | os.PathLike | None = None,
        model: SKeyNet | None = None,
        device: str | None = None,
        window_seconds: float = WINDOW_SECONDS,
        hop_seconds: float = HOP_SECONDS,
    ) -> None:
        self.checkpoint_path = str(checkpoint_path or default_checkpoint()) if model is None else None
        self._model = model if model is not None else load_model(self.checkpoint_path)
        self._model.eval()
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._model.to(self._device)
        self._front_end = LogCQT().to(self._device).eval()
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        # time mean and time standard deviation of every channel, then the opening profiles
        self.embedding_dim = 2 * self._model.config.embedding_dim + N_OPENING_PROFILES * N_PITCH_CLASSES
        self._weights_sha256 = weights_sha256(self._model)

    def fingerprint(self) -> str:
        """Name + feature version + the network's weights hash + windowing: what changes the numbers."""
        return (
            f"{self.name}:features{FEATURE_VERSION}:{self._weights_sha256}:"
            f"{self.window_seconds:g}/{self.hop_seconds:g}"
        )

    def log_cqt(self, audio: np.ndarray) -> torch.Tensor:
        signals = [torch.from_numpy(signal)[None].to(self._device) for signal in band_signals(audio)]
        with torch.inference_mode():
            return self._front_end(signals)

    def _windows(self, frame_features: torch.Tensor) -> np.ndarray:
        frames = frame_features.shape[-1]
        seconds_per_frame = FRAME_SECONDS * self._frames_per_output()
        window = max(1, round(self.window_seconds / seconds_per_frame))
        hop = max(1, round(self.hop_seconds / seconds_per_frame))
        starts = list(range(0, max(frames - window, 0) + 1, hop))
        if frames > window and frames - (starts[-1] + window) >= window // 4:
            starts.append(frames - window)
        with torch.inference_mode():
            pooled = torch.stack(
                [window_statistics(frame_features[:, :, start : start + window]) for start in starts]
            )
        return pooled.reshape(len(starts), -1).float().cpu().numpy()

    def _frames_per_output(self) -> int:
        config = self._model.config
        return config.input_time_pool * 2**config.time_pools

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        spectrogram = self.log_cqt(np.asarray(audio, dtype=np.float32))
        with torch.inference_mode():
            windows = self._windows(self._model(spectrogram)[0])  # network output: (channels, 84, frames)
            opening = opening_profiles(spectrogram[0]).float().cpu().numpy()
        return np.concatenate([windows, np.broadcast_to(opening, (len(windows), opening.size))], axis=1)

    def transpose_embeddings(self, embeddings: np.ndarray, semitones: int) -> np.ndarray:
        return roll_pitch_classes(embeddings, semitones)


def network_key_probabilities(tracks: list[np.ndarray]) -> np.ndarray:
    """What the network alone says about each track's key, with no head and no labels: (n_tracks, 24).

    The first 24 values of every window embedding are the window's mean key logits (major C…B, then
    minor C…B: ml.keys index order), so each window's softmax is the network's own estimate, averaged over
    the track's windows as heads' predictions are. Uncalibrated: no temperature was fitted to anything.
    """
    if any(len(windows) == 0 for windows in tracks):
        raise ValueError("a track has no windows")
    probabilities = np.zeros((len(tracks), N_KEYS), dtype=np.float32)
    for row, windows in enumerate(tracks):
        probabilities[row] = softmax(np.asarray(windows)[:, :N_KEYS]).mean(axis=0)
    return probabilities


__all__ = ["N_PITCH_CLASSES", "SKeyBackbone", "default_checkpoint", "network_key_probabilities"]
