"""Reads for the admin dashboard: counts per status and split, label distribution, throughput, model
versions as the page and its status JSON show them, pretraining. One function per figure."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db.models import Avg, Count, Q
from django.utils import timezone

from ml.keys import NO_KEY_LABELS

from ..models import Annotation, ModelVersion, PretrainingRun, Track

METRIC_RELATIONS = ("correct", "fifth", "relative", "parallel", "other")


def models_all() -> list[ModelVersion]:
    return list(ModelVersion.objects.order_by("-id"))


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
        # 95 % bootstrap interval of `weighted` over the held-out tracks (ml.metrics.bootstrap_interval).
        "weighted_ci95": metrics.get("weighted_ci95"),
        "relations": {relation: metrics.get(relation) for relation in METRIC_RELATIONS},
        "ece": metrics.get("ece"),
        "n": metrics.get("n"),
        # Why training did (or did not) make it the active version (services.model_versions).
        "activation_reason": (metrics.get("activation") or {}).get("reason"),
        "activated": (metrics.get("activation") or {}).get("activate"),
        # The time budget left out candidates or seeds of the fixed recipe (ml.training.train_key_model).
        "cut_by_budget": bool((metrics.get("validation") or {}).get("cut_by_budget")),
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "trained_at": version.trained_at.isoformat() if version.trained_at else None,
    }


def model_version_confusion(version: ModelVersion | None) -> list[list[int]] | None:
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


def pretraining_status() -> dict | None:
    """The latest pretraining run as the dashboard shows it."""
    run = PretrainingRun.objects.first()
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "progress": run.progress,
        "steps_done": run.steps_done,
        "steps_total": run.steps_total,
        "resumed_from": run.resumed_from,
        "n_tracks": run.n_tracks,
        "n_labelled": run.n_labelled,
        "loss": (run.losses or {}).get("total"),
        "checkpoint_sha256": run.checkpoint_sha256[:12],
        "error": run.error,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "held_out": _held_out_display(run.held_out),
    }


def _held_out_display(held_out: dict | None) -> dict | None:
    """A run's held-out comparison (worker.pretraining.held_out_comparison) as the page prints it."""
    if held_out and held_out.get("error"):
        return {"error": held_out["error"]}
    if not held_out or not held_out.get("n"):
        return None
    shown = {"n": held_out["n"], "after": f"{held_out['after']['weighted']:.3f}", "before": None}
    if held_out.get("before") is not None:
        low, high = held_out["gain"]["ci95"]
        shown.update(
            before=f"{held_out['before']['weighted']:.3f}",
            gain=f"{held_out['gain']['mean']:+.3f}",
            low=f"{low:+.3f}",
            high=f"{high:+.3f}",
        )
    return shown
