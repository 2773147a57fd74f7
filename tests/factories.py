"""Test data made by the project itself: short synthetic tracks with known keys."""

from __future__ import annotations

from pathlib import Path

import soundfile

from ml.keys import Key
from ml.synth import random_spec, render


def write_synthetic(
    path: Path,
    *,
    key: str,
    seed: int,
    seconds: float = 6.0,
    sample_rate: int = 22050,
    difficulty: float = 0.0,
) -> Path:
    audio = render(
        random_spec(seed=seed, key=Key.parse(key), duration_range=(seconds, seconds), difficulty=difficulty),
        sample_rate=sample_rate,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, sample_rate)
    return path
