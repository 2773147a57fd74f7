"""Reads for the annotator home page, the review pages and the admin dashboard. Pure reads, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, User
from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from ml.active import STRATEGIES
from ml.keys import ALL_KEYS, NO_KEY_LABELS, Key

from .models import Annotation, ModelVersion, Prediction, Skip, Track
from .queue import SKIP_MEMORY
from .selectors import model_version_active

METRIC_RELATIONS = ("correct", "fifth", "relative", "parallel", "other")


def keys_table() -> list[dict]:
    """The 24 keys as the pages' scripts need them (names in every notation, relative, parallel)."""
    return [
        {
            "index": key.index,
            "name": key.mir_eval,
            "short": key.id3,
            "tonic": key.tonic,
            "mode": key.mode_name,
            "camelot": key.camelot,
            "open_key": key.open_key,
            "relative": key.relative.index,
            "parallel": key.parallel.index,
        }
        for key in ALL_KEYS
    ]


def circle_of_fifths() -> list[dict]:
    """Twelve positions clockwise from C at the top: the major key outside, its relative minor inside."""
    positions = []
    for step in range(12):
        major = Key.from_index((7 * step) % 12)
        positions.append({"major": major.index, "minor": major.relative.index})
    return positions


def label_choices() -> list[tuple[str, str]]:
    """(value, text) pairs for a select: the 24 keys, then the no-key labels."""
    labels = dict(Annotation.Label.choices)
    return [(str(key.index), f"{key.mir_eval} ({key.camelot})") for key in ALL_KEYS] + [
        (label, labels[label]) for label in NO_KEY_LABELS
    ]


# --- the annotator's progress -------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatorProgress:
    labeled_today: int
    labeled_total: int
    queue_size: int
    agreement: float | None  # share of this person's key labels that match the model's top key they saw
    agreement_n: int


def tracks_waiting_for(*, user: AbstractBaseUser) -> QuerySet[Track]:
    """Tracks the queue could still serve `user`: analysed, unlabeled, undisputed, not held by someone
    else, not labeled or recently skipped by them (the same conditions as annotations.queue)."""
    now = timezone.now()
    return (
        Track.objects.filter(status=Track.Status.READY, consensus_label="", needs_review=False)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_user=user))
        .exclude(id__in=Annotation.objects.filter(annotator=user).values("track_id"))
        .exclude(
            id__in=Skip.objects.filter(annotator=user, created_at__gte=now - SKIP_MEMORY).values("track_id")
        )
    )


def annotator_progress(*, user: AbstractBaseUser, with_agreement: bool = True) -> AnnotatorProgress:
    mine = Annotation.objects.filter(annotator=user, source=Annotation.Source.ANNOTATOR)
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    agreement, agreement_n = None, 0
    if with_agreement:
        # The prediction the person saw: the track's newest one made before they labeled it.
        predicted = Prediction.objects.filter(
            track=OuterRef("track"), created_at__lte=OuterRef("created_at")
        ).order_by("-created_at", "-id")
        compared = (
            mine.filter(label=Annotation.Label.KEY)
            .annotate(predicted_key=Subquery(predicted.values("key_index")[:1]))
            .exclude(predicted_key=None)
            .values_list("key_index", "predicted_key")
        )
        pairs = list(compared)
        agreement_n = len(pairs)
        if pairs:
            agreement = sum(label == predicted for label, predicted in pairs) / agreement_n
    return AnnotatorProgress(
        labeled_today=mine.filter(created_at__gte=start_of_day).count(),
        labeled_total=mine.count(),
        queue_size=tracks_waiting_for(user=user).count(),
        agreement=agreement,
        agreement_n=agreement_n,
    )


# --- review ---------------------------------------------------------------------------------------------


def tracks_for_review() -> QuerySet[Track]:
    return Track.objects.filter(needs_review=True).annotate(n_annotations=Count("annotations")).order_by("id")


def track_prediction_latest(track: Track) -> Prediction | None:
    """The active model's prediction for the track, else the newest one from any version."""
    active = model_version_active()
    predictions = Prediction.objects.filter(track=track).select_related("model_version")
    if active is not None:
        prediction = predictions.filter(model_version=active).first()
        if prediction is not None:
            return prediction
    return predictions.order_by("-created_at").first()


# --- the admin dashboard -------------------------------------------------------------------------------


def tracks_by_status_and_split() -> dict:
    """Counts per (status, split), with a cell per split in Track.Split order, ready for a table."""
    counts = {
        (row["status"], row["split"]): row["n"]
        for row in Track.objects.values("status", "split").annotate(n=Count("id")).order_by()
    }
    labeled = dict(
        Track.objects.exclude(consensus_label="").values_list("split").annotate(n=Count("id")).order_by()
    )
    splits = [value for value, _ in Track.Split.choices]
    rows = []
    for status, label in Track.Status.choices:
        cells = [counts.get((status, split), 0) for split in splits]
        rows.append({"status": status, "label": label, "cells": cells, "total": sum(cells)})
    totals = [sum(row["cells"][i] for row in rows) for i in range(len(splits))]
    return {
        "rows": rows,
        "splits": [label for _, label in Track.Split.choices],
        "totals": totals,
        "total": sum(totals),
        "labeled": [labeled.get(split, 0) for split in splits],
        "labeled_total": sum(labeled.values()),
        "needs_review": Track.objects.filter(needs_review=True).count(),
    }


def label_distribution() -> dict:
    """Consensus labels: a count per key index (0–23) and per no-key label."""
    per_key = dict(
        Track.objects.filter(consensus_label=Annotation.Label.KEY)
        .values_list("consensus_key")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_label = dict(
        Track.objects.filter(consensus_label__in=NO_KEY_LABELS)
        .values_list("consensus_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "keys": [per_key.get(index, 0) for index in range(24)],
        "no_key": {label: per_label.get(label, 0) for label in NO_KEY_LABELS},
    }


def annotator_throughput() -> list[dict]:
    """Per person who labeled: labels today, in the last 7 days, in total, and mean seconds per track."""
    now = timezone.now()
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    by_annotator = Annotation.objects.filter(source=Annotation.Source.ANNOTATOR)
    rows = (
        User.objects.filter(id__in=by_annotator.values("annotator_id"))
        .annotate(
            total=Count("annotations", filter=Q(annotations__source=Annotation.Source.ANNOTATOR)),
            today=Count(
                "annotations",
                filter=Q(
                    annotations__source=Annotation.Source.ANNOTATOR,
                    annotations__created_at__gte=start_of_day,
                ),
            ),
            week=Count(
                "annotations",
                filter=Q(
                    annotations__source=Annotation.Source.ANNOTATOR,
                    annotations__created_at__gte=now - timedelta(days=7),
                ),
            ),
            seconds_per_track=Avg(
                "annotations__time_spent_s", filter=Q(annotations__source=Annotation.Source.ANNOTATOR)
            ),
        )
        .order_by("-total", "username")
    )
    return [
        {
            "username": user.username,
            "today": user.today,
            "week": user.week,
            "total": user.total,
            "seconds_per_track": user.seconds_per_track,
        }
        for user in rows
    ]


def model_version_summary(version: ModelVersion) -> dict:
    """A version as the dashboard shows it (no confusion matrix: that is loaded for one version)."""
    metrics = version.metrics or {}
    return {
        "id": version.pk,
        "name": version.name,
        "backbone": version.backbone,
        "status": version.status,
        "status_label": version.get_status_display(),
        "progress": version.progress,
        "error": version.error,
        "is_active": version.is_active,
        "is_default": version.is_default,
        "n_training_labels": version.n_training_labels,
        "n_test_labels": version.n_test_labels,
        "weighted": metrics.get("weighted"),
        "relations": {relation: metrics.get(relation) for relation in METRIC_RELATIONS},
        "ece": metrics.get("ece"),
        "n": metrics.get("n"),
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "trained_at": version.trained_at.isoformat() if version.trained_at else None,
    }


def model_versions_for_dashboard() -> list[ModelVersion]:
    return list(ModelVersion.objects.order_by("-id"))


def learning_curve(versions: list[ModelVersion]) -> list[dict]:
    """Weighted score against training labels for every trained version, oldest first."""
    points = [
        {"name": v.name, "n_training_labels": v.n_training_labels, "weighted": v.metrics.get("weighted")}
        for v in sorted(versions, key=lambda v: v.pk)
        if v.status == ModelVersion.Status.READY
        and not v.is_default
        and v.metrics.get("weighted") is not None
    ]
    return points


def confusion_for(version: ModelVersion | None) -> list[list[int]] | None:
    confusion = (version.metrics or {}).get("confusion") if version is not None else None
    if not isinstance(confusion, list) or len(confusion) != 24:
        return None
    return confusion


def training_status() -> dict:
    """The small JSON the dashboard polls: the running training, else the newest trained version."""
    version = (
        ModelVersion.objects.filter(in_progress=True).first()
        or ModelVersion.objects.filter(is_default=False).order_by("-id").first()
    )
    if version is None:
        return {"version": None, "status": "none", "progress": 0.0, "error": ""}
    return {
        "version": model_version_summary(version),
        "status": version.status,
        "progress": version.progress,
        "error": version.error,
    }


def queue_strategies() -> tuple[str, ...]:
    return STRATEGIES


def labeled_tracks_for_export() -> QuerySet[Track]:
    return Track.objects.exclude(consensus_label="").order_by("id")
