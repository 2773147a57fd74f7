"""Reads the API needs beyond annotations.selectors: tracks with the active model's prediction attached,
the best known key of a track, model learning curves. No torch, no writes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import FloatField, IntegerField, OuterRef, QuerySet, Subquery, Value

from ml.keys import Key

from ..models import Annotation, ModelVersion, Prediction, Track
from ..selectors import model_version_active

# ?notation= values → attribute of ml.keys.Key ("openkey" is the spelling clients use for Open Key).
NOTATIONS = {
    "mir_eval": "mir_eval",
    "camelot": "camelot",
    "openkey": "open_key",
    "open_key": "open_key",
    "jams": "jams",
    "id3": "id3",
}


def key_text(key: Key | None, notation: str = "mir_eval") -> str | None:
    return key.to(NOTATIONS[notation]) if key is not None else None


def tracks_with_active_prediction(*, active: ModelVersion | None = None) -> QuerySet[Track]:
    """Tracks annotated with `active_key_index` and `active_confidence` from the active model (None when
    it has not predicted the track), so lists and filters stay one query."""
    active = active if active is not None else model_version_active()
    tracks = Track.objects.order_by("id")
    if active is None:
        return tracks.annotate(
            active_key_index=Value(None, output_field=IntegerField()),
            active_confidence=Value(None, output_field=FloatField()),
        )
    predictions = Prediction.objects.filter(track=OuterRef("pk"), model_version=active)
    return tracks.annotate(
        active_key_index=Subquery(predictions.values("key_index")[:1]),
        active_confidence=Subquery(predictions.values("confidence")[:1]),
    )


@dataclass(frozen=True)
class BestKey:
    """What KeyWeb knows about a track's key: the human consensus if any, else the active model's guess."""

    source: str | None  # "human", "model", or None when nothing is known yet
    label: str | None  # "key" or a no-key label (ambiguous, no_key, modulating)
    key: Key | None
    confidence: float | None
    top: list[tuple[Key, float]]
    tuning_cents: float | None
    model_version: ModelVersion | None


def track_best_key(*, track: Track, top_k: int = 3) -> BestKey:
    active = model_version_active()
    prediction = (
        Prediction.objects.filter(track=track, model_version=active).first() if active is not None else None
    )
    top = prediction.top(top_k) if prediction is not None else []
    if track.consensus_label:
        return BestKey(
            source="human",
            label=track.consensus_label,
            key=track.consensus,
            confidence=1.0,
            top=top,
            tuning_cents=_human_tuning(track) if track.tuning_cents is None else track.tuning_cents,
            model_version=active if prediction is not None else None,
        )
    if prediction is not None:
        return BestKey(
            source="model",
            label=Annotation.Label.KEY,
            key=prediction.key,
            confidence=prediction.confidence,
            top=top,
            tuning_cents=track.tuning_cents,
            model_version=active,
        )
    return BestKey(
        source=None,
        label=None,
        key=None,
        confidence=None,
        top=[],
        tuning_cents=track.tuning_cents,
        model_version=None,
    )


def _human_tuning(track: Track) -> float | None:
    values = [
        a.tuning_cents
        for a in track.annotations.exclude(tuning_cents=None).only("tuning_cents").order_by("id")
    ]
    return sum(values) / len(values) if values else None


def model_learning_curve() -> list[dict]:
    """Held-out weighted score against the number of training labels, one point per version trained here
    (the shipped default head, trained on synthetic audio, is not a point on this curve)."""
    versions = ModelVersion.objects.filter(status=ModelVersion.Status.READY, is_default=False).order_by(
        "created_at", "id"
    )
    return [
        {
            "version": version.pk,
            "name": version.name,
            "n_training_labels": version.n_training_labels,
            "weighted": version.metrics.get("weighted") if isinstance(version.metrics, dict) else None,
            "trained_at": version.trained_at,
        }
        for version in versions
    ]
