"""The one small interface every embedding backbone implements, so heads never mix across backbones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
# Where shipped weights live, and the variable that points the learned backbone at other weights.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SKEY_CHECKPOINT_ENV = "SKEY_CHECKPOINT"


class Backbone(ABC):
    """Turns mono 16 kHz audio into one embedding per analysis window.

    `name` is stored on every ModelVersion and in every head checkpoint; embeddings and heads are only
    ever combined when their backbone names match.
    """

    name: str
    embedding_dim: int
    # True when transposing the audio by k semitones is exactly a cyclic shift of the embedding
    # (the pitch-class backbone): augmentation is then free. False means augmentation needs the audio
    # pitch-shifted and embedded again (Myna-Vertical).
    cyclic_transposition: bool = False

    @abstractmethod
    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        """Embeddings of shape (n_windows, embedding_dim), float32, for mono float32 audio at 16 kHz.

        Audio shorter than one window still yields one row.
        """

    def window_embeddings_batch(self, tracks: list[np.ndarray]) -> list[np.ndarray]:
        """Several tracks at once; backbones that batch on a GPU override this."""
        return [self.window_embeddings(audio) for audio in tracks]

    def transpose_embeddings(self, embeddings: np.ndarray, semitones: int) -> np.ndarray:
        """Embeddings of the same audio transposed by `semitones`; only for cyclic backbones."""
        raise NotImplementedError(f"backbone {self.name!r} needs audio-domain pitch shifts for augmentation")
