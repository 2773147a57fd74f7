"""Helpers for API tests: token clients, track rows, labels, predictions, error-body checks."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import User
from knox.models import AuthToken
from rest_framework.test import APIClient

from annotations.models import Annotation, ModelVersion, Prediction, Track
from ml.keys import Key
from tests.factories import make_track

__all__ = ["make_track"]  # API tests build tracks with the shared factory


def token_client(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, key = AuthToken.objects.create(user=user)  # hashed, as the API issues them
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def label_track(track: Track, key: str | None, *, label: str = "key") -> Track:
    """Give a track a consensus through the real import service."""
    from annotations.services.labels import LabelValue, annotation_import

    value = LabelValue.parse(key) if key else LabelValue(label=label)
    annotation_import(track=track, label=value)
    track.refresh_from_db()
    return track


def probabilities_for(key: str, confidence: float) -> list[float]:
    index = Key.parse(key).index
    rest = (1.0 - confidence) / 23
    return [confidence if i == index else rest for i in range(24)]


def predict(track: Track, version: ModelVersion, key: str, confidence: float) -> Prediction:
    return Prediction.objects.create(
        track=track,
        model_version=version,
        probabilities=probabilities_for(key, confidence),
        key_index=Key.parse(key).index,
        confidence=confidence,
        entropy=1.0,
        margin=0.5,
        priority=1.0,
    )


def annotate(track: Track, user: User, key: str) -> Annotation:
    from annotations.services.labels import LabelValue
    from annotations.services.queue import annotation_submit

    return annotation_submit(user=user, track=track, label=LabelValue.parse(key))


def error_fields(response) -> list[str | None]:
    body = response.json()
    assert set(body) == {"status", "code", "detail", "errors"}, body
    assert body["status"] == response.status_code
    return [item["field"] for item in body["errors"]]


def synthetic(tmp_path: Path, name: str, key: str, seed: int, seconds: float = 3.0) -> Path:
    from tests.factories import write_synthetic

    return write_synthetic(tmp_path / name, key=key, seed=seed, seconds=seconds)
