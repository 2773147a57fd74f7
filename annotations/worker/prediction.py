"""Prediction from stored embeddings: window-averaged probabilities from a model version's head, one
Prediction row per (track, version), and the queue priority under the current strategy."""

from __future__ import annotations

import logging

import numpy as np
from django.db import connection, transaction

from ml.active import uncertainty_scores
from ml.heads import predict_tracks

from .. import dispatch
from ..models import Embedding, ModelVersion, Prediction, Track
from ..selectors import model_version_active, queue_priority_from_scores, queue_strategy_current
from .backbones import FingerprintMismatch, head_for

logger = logging.getLogger(__name__)


def tracks_predict(*, track_ids: list[int], model_version_id: int | None = None) -> int:
    """Store a Prediction per track for the model version (default: the active one) and refresh the
    queue priority. Tracks lacking an embedding with the version's fingerprint are sent to analysis first."""
    version = (
        ModelVersion.objects.filter(pk=model_version_id).first()
        if model_version_id
        else model_version_active()
    )
    if version is None or version.status != ModelVersion.Status.READY:
        logger.info("no ready model version to predict with; %d tracks wait", len(track_ids))
        return 0
    try:
        loaded = head_for(version)
    except FingerprintMismatch as error:
        logger.warning("not predicting %d tracks: %s", len(track_ids), error)
        return 0
    embeddings = {
        e.track_id: e
        for e in Embedding.objects.filter(
            track_id__in=track_ids, fingerprint=version.backbone_fingerprint, semitones=0
        )
    }
    missing = [t for t in track_ids if t not in embeddings]
    if missing:
        Track.objects.filter(id__in=missing, status=Track.Status.READY).update(status=Track.Status.PENDING)
        dispatch.analysis_start(track_ids=missing)
    tracks = Track.objects.in_bulk(list(embeddings))
    ids = [i for i in embeddings if i in tracks]
    if not ids:
        return 0
    probabilities = predict_tracks(loaded.head, [np.load(embeddings[i].path) for i in ids])
    _predictions_store(version=version, tracks=[tracks[i] for i in ids], probabilities=probabilities)
    return len(ids)


PREDICTION_FIELDS = ["probabilities", "key_index", "confidence", "entropy", "margin", "priority"]


def _predictions_store(*, version: ModelVersion, tracks: list[Track], probabilities: np.ndarray) -> None:
    """Upsert the predictions and set queue priorities in a few set-based statements per chunk (a
    re-prediction pass over 1M tracks must not cost one round trip per track: docs/benchmarks.md)."""
    strategy = queue_strategy_current()
    scores = uncertainty_scores(probabilities)
    predictions, priorities = [], []
    for row, track in enumerate(tracks):
        track_scores = {name: float(values[row]) for name, values in scores.items()}
        best = int(np.argmax(probabilities[row]))
        priority = queue_priority_from_scores(track, track_scores, strategy)
        predictions.append(
            Prediction(
                track=track,
                model_version=version,
                probabilities=[round(float(p), 6) for p in probabilities[row]],
                key_index=best,
                confidence=float(probabilities[row][best]),
                entropy=track_scores["entropy"],
                margin=1.0 - track_scores["margin"],
                priority=priority,
            )
        )
        track.priority = priority
        priorities.append(track)
    with transaction.atomic():
        Prediction.objects.bulk_create(
            predictions,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["track", "model_version"],
            update_fields=PREDICTION_FIELDS,
        )
        if version.is_active:
            _priorities_update(priorities)


def _priorities_update(tracks: list[Track], chunk: int = 2000) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for start in range(0, len(tracks), chunk):
                part = tracks[start : start + chunk]
                cursor.execute(
                    f"UPDATE {Track._meta.db_table} AS t SET priority = v.priority "
                    "FROM unnest(%s::bigint[], %s::float8[]) AS v(id, priority) WHERE t.id = v.id",
                    [[t.pk for t in part], [t.priority for t in part]],
                )
    else:
        Track.objects.bulk_update(tracks, ["priority"], batch_size=500)
