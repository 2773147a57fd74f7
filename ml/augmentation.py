"""Transposition augmentation: every labelled track seen in all the keys it can be moved to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from einops import rearrange

from ml.keys import Key


@dataclass
class TrainingExample:
    """One labelled track. `shifted[k]` holds the embeddings of the audio pitch-shifted by k semitones."""

    window_embeddings: np.ndarray
    key: Key
    shifted: dict[int, np.ndarray] | None = None


# --- augmentation ------------------------------------------------------------------------------------


def roll_pitch_classes(window_embeddings: np.ndarray, semitones: int) -> np.ndarray:
    """Transpose cyclic embeddings laid out as (channels, 12) pitch classes, C first, flattened row-major."""
    if window_embeddings.shape[-1] % 12:
        raise ValueError(
            f"cyclic embeddings need a multiple of 12 features, got {window_embeddings.shape[-1]}"
        )
    by_pitch_class = rearrange(window_embeddings, "window (channel pitch) -> window channel pitch", pitch=12)
    rolled = np.roll(by_pitch_class, semitones, axis=-1)
    return rearrange(rolled, "window channel pitch -> window (channel pitch)")


def transposed_views(example: TrainingExample, *, cyclic: bool) -> list[tuple[np.ndarray, Key]]:
    """The track in every key we can make from it: all 12 for cyclic embeddings, else the stored shifts.

    For cyclic backbones this also balances the classes: every track counts once in each key of its mode.
    """
    if cyclic:
        return [
            (roll_pitch_classes(example.window_embeddings, k), example.key.transpose(k)) for k in range(-6, 6)
        ]
    views = [(example.window_embeddings, example.key)]
    for semitones, embeddings in sorted((example.shifted or {}).items()):
        if semitones % 12:
            views.append((embeddings, example.key.transpose(semitones)))
    return views


@dataclass
class Views:
    """All training views' windows stacked, with where each view starts, how many windows it has, its label."""

    windows: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    @classmethod
    def build(cls, examples: Sequence[TrainingExample], *, cyclic: bool) -> Views:
        windows, lengths, labels = [], [], []
        for example in examples:
            for embeddings, key in transposed_views(example, cyclic=cyclic):
                if len(embeddings) == 0:
                    raise ValueError(f"a training track in {key} has no windows")
                windows.append(np.asarray(embeddings, dtype=np.float32))
                lengths.append(len(embeddings))
                labels.append(key.index)
        lengths_array = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths_array)[:-1]])
        return cls(np.concatenate(windows), starts, lengths_array, np.asarray(labels, dtype=np.int64))

    def sample_windows(self, views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random window of each view: every track counts the same however long it is."""
        return self.starts[views] + (rng.random(len(views)) * self.lengths[views]).astype(np.int64)
