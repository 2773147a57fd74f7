"""A Krumhansl–Schmuckler baseline: librosa's chroma_cqt averaged over the track, correlated with the
24 rotated Krumhansl–Kessler probe-tone profiles; runs in bench/.peers/librosa."""

from __future__ import annotations

import sys
from collections.abc import Callable

import librosa
import numpy as np
from peer_protocol import run

SAMPLE_RATE = 22_050
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def key_from_chroma(chroma: np.ndarray) -> str:
    """The key whose rotated profile correlates best (Pearson) with the mean chroma vector."""
    mean_chroma = chroma.mean(axis=1)
    best_score, best_key = -np.inf, ""
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            score = np.corrcoef(mean_chroma, np.roll(profile, tonic))[0, 1]
            if score > best_score:
                best_score, best_key = score, f"{PITCH_NAMES[tonic]} {mode}"
    return best_key


def make_estimator() -> Callable[[str], str]:
    def estimate(path: str) -> str:
        audio, rate = librosa.load(path, sr=SAMPLE_RATE, mono=True)
        return key_from_chroma(librosa.feature.chroma_cqt(y=audio, sr=rate))

    return estimate


if __name__ == "__main__":
    sys.exit(run(peer="librosa", version=librosa.__version__, make_estimator=make_estimator))
