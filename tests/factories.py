"""Test data, built one way: Track rows (with or without real audio) and short synthetic tracks with known keys."""

from __future__ import annotations

import itertools
from pathlib import Path

import soundfile

from annotations.models import Track
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


_numbers = itertools.count(1)


def track_fields(**fields) -> dict:
    """The fields of a Track row that needs no audio analysis (status ready); `fields` override them."""
    number = next(_numbers)
    defaults = {
        "audio": f"audio/none/{number}.wav",
        "original_filename": f"track-{number}.wav",
        "content_hash": f"{number:064x}",
        "size_bytes": 1000,
        "audio_format": "wav",
        "title": f"Title {number}",
        "artist": "Artist",
        "duration_s": 6.0,
        "sample_rate": 22050,
        "channels": 1,
        "status": Track.Status.READY,
    }
    defaults.update(fields)
    return defaults


def make_track(**fields) -> Track:
    """A saved Track row without audio analysis; pass audio=... for a real stored file."""
    return Track.objects.create(**track_fields(**fields))
