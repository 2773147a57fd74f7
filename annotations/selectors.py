"""Reads: the active model, queue priorities, what pages and the API show. No torch, no writes."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from ml.active import stable_random_score

from .models import ModelVersion, QueueSettings, Track


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def queue_strategy_current() -> str:
    stored = QueueSettings.objects.filter(pk=1).values_list("strategy", flat=True).first()
    return stored or settings.KEYWEB["QUEUE_STRATEGY"]


def queue_priority_from_scores(track: Track, scores: dict[str, float], strategy: str | None = None) -> float:
    """The number the queue sorts by (higher first) for one track under a strategy.

    `scores` are the prediction's uncertainty scores (ml.active.uncertainty_scores). The diversity-aware
    strategy starts from entropy; its batch selection re-ranks the top of the queue in a worker task.
    """
    strategy = strategy or queue_strategy_current()
    if strategy == "random":
        return stable_random_score(track.content_hash)
    if strategy == "diverse":
        return float(scores["entropy"])
    return float(scores[strategy])


def tracks_for_listing() -> QuerySet[Track]:
    return Track.objects.order_by("-id")
