"""Builders for queue tests: tracks with hand-made predictions, no audio needed."""

from __future__ import annotations

import hashlib

import numpy as np

from annotations.models import ModelVersion, Prediction, Track
from annotations.selectors import queue_priority_from_scores
from ml.active import uncertainty_scores
from tests.factories import make_track


def active_version() -> ModelVersion:
    version, _ = ModelVersion.objects.get_or_create(
        name="hand-made", defaults={"backbone": "pitch_class", "status": "ready", "is_active": True}
    )
    return version


def track_with_prediction(name: str, probabilities, *, split: str = "pool") -> Track:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum()
    track = make_track(
        audio=f"audio/{name}.wav",
        original_filename=f"{name}.wav",
        content_hash=hashlib.sha256(name.encode()).hexdigest(),
        title=name,
        duration_s=30,
        split=split,
    )
    scores = {k: float(v[0]) for k, v in uncertainty_scores(probabilities).items()}
    best = int(probabilities.argmax())
    Prediction.objects.create(
        track=track,
        model_version=active_version(),
        probabilities=probabilities.tolist(),
        key_index=best,
        confidence=float(probabilities[best]),
        entropy=scores["entropy"],
        margin=1 - scores["margin"],
        priority=scores["entropy"],
    )
    Track.objects.filter(pk=track.pk).update(priority=queue_priority_from_scores(track, scores))
    track.refresh_from_db()
    return track


def peaked(index: int, peak: float, second: int | None = None, second_peak: float = 0.0) -> list[float]:
    """24 probabilities: `peak` on `index`, optionally `second_peak` on `second`, the rest spread evenly."""
    rest = (1 - peak - second_peak) / (24 - 1 - (second is not None))
    values = [rest] * 24
    values[index] = peak
    if second is not None:
        values[second] = second_peak
    return values
