"""The admin dashboard (staff): statistics and charts, training and activation, the queue strategy, and
the labels CSV. The POST actions answer JSON to the page's script and redirect a plain form."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from ml.active import STRATEGIES

from .. import dispatch, selectors
from ..models import ModelVersion
from ..selectors import dashboard as dashboard_reads
from ..selectors import labels_since_last_training, queue_strategy_current
from ..services.exports import csv_row_safe
from ..services.model_versions import (
    model_training_request,
    model_version_activate,
)
from ..services.pretraining import PretrainingRefused, pretraining_request
from ..services.queue import QueueError, queue_strategy_set
from .access import json_error, only, staff_required, wants_json
from .keys import keys_table

BROKER_DOWN = (
    "the task queue (Redis) cannot be reached, so the worker was not told; "
    "check that Redis and the Celery worker are running, then try again"
)
API_EXPORTS = (
    ("csv", "CSV"),
    ("jsonl", "JSON lines"),
    ("jams", "JAMS (zip)"),
    ("giantsteps", "GiantSteps (zip)"),
)
CSV_HEADER = [
    "track_id",
    "title",
    "artist",
    "original_filename",
    "content_hash",
    "split",
    "label",
    "key",
    "camelot",
    "open_key",
    "tuning_cents",
    "annotation_count",
    "labeled_at",
]


def api_export_links() -> list[tuple[str, str]]:
    """(text, url) of the REST API's dataset exports, when that part of KeyWeb is installed."""
    links = []
    for export_format, text in API_EXPORTS:
        try:
            links.append((text, reverse("api:export", args=[export_format])))
        except NoReverseMatch:
            return []
    return links


def _dashboard_context() -> dict:
    versions = dashboard_reads.models_all()
    summaries = [dashboard_reads.model_version_summary(v) for v in versions]
    confusions = {
        str(v.pk): dashboard_reads.model_version_confusion(v)
        for v in versions
        if dashboard_reads.model_version_confusion(v) is not None
    }
    active = next((v for v in versions if v.is_active), None)
    shown_confusion = str(active.pk) if active and str(active.pk) in confusions else None
    shown_confusion = shown_confusion or next(iter(confusions), None)
    return {
        "tracks": dashboard_reads.tracks_by_status_and_split(),
        "distribution": dashboard_reads.label_distribution(),
        "throughput": dashboard_reads.annotator_throughput(),
        "strategies": STRATEGIES,
        "strategy": queue_strategy_current(),
        "versions": summaries,
        "charts": {
            "keys": keys_table(),
            "distribution": dashboard_reads.label_distribution(),
            "learning_curve": selectors.model_learning_curve(),
            "confusions": confusions,
            "confusion_shown": shown_confusion,
            "calibration": [
                {"name": s["name"], "ece": s["ece"]} for s in reversed(summaries) if s["ece"] is not None
            ],
        },
        "training": dashboard_reads.training_status(),
        "pretraining": dashboard_reads.pretraining_status(),
        "labels_since_training": labels_since_last_training(),
        "retrain_threshold": settings.KEYWEB["RETRAIN_MIN_NEW_LABELS"],
        "api_exports": api_export_links(),
    }


@only("GET")
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "annotations/dashboard.html", _dashboard_context())


def _refused(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    if wants_json(request):
        return json_error(message, status=status)
    messages.error(request, message)
    return render(request, "annotations/dashboard.html", _dashboard_context(), status=status)


@only("POST")
@staff_required
def dashboard_training_request(request: HttpRequest) -> HttpResponse:
    try:
        version, created = model_training_request(
            user=request.user, reason=f"requested from the dashboard by {request.user.get_username()}"
        )
    except BrokerUnavailable:
        return _refused(request, f"Training could not be started: {BROKER_DOWN}.", status=503)
    message = (
        f"Training of {version.name} was queued."
        + (
            " The task queue is unreachable right now; the training starts by itself when it is back."
            if dispatch.is_pending(dispatch.TRAINING, version.pk)
            else ""
        )
        if created
        else f"{version.name} is already {version.get_status_display().lower()}; wait for it to finish."
    )
    if wants_json(request):
        return JsonResponse(
            {"created": created, "message": message, **dashboard_reads.training_status()},
            status=201 if created else 200,
        )
    messages.success(request, message)
    return redirect("annotations:dashboard")


@only("GET")
@staff_required
def dashboard_training_status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dashboard_reads.training_status())


@only("POST")
@staff_required
def dashboard_version_activate(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        model_version_activate(version=version)
    except ValueError as error:
        return _refused(request, f"{version.name} cannot be activated: {error}.")
    except BrokerUnavailable:
        return _refused(
            request, f"{version.name} is active, but re-predicting the queue failed: {BROKER_DOWN}.", 503
        )
    messages.success(request, f"{version.name} is now the active model; the queue is being re-predicted.")
    return redirect("annotations:dashboard")


@only("POST")
@staff_required
def dashboard_pretraining_request(request: HttpRequest) -> HttpResponse:
    try:
        run, created = pretraining_request(user=request.user)
    except PretrainingRefused as error:
        return _refused(request, f"Pretraining was not started: {error}.")
    if created:
        messages.success(request, f"Pretraining run #{run.pk} was queued on the gpu workers.")
    else:
        messages.info(request, f"Pretraining run #{run.pk} is already {run.get_status_display().lower()}.")
    return redirect("annotations:dashboard")


@only("POST")
@staff_required
def dashboard_strategy(request: HttpRequest) -> HttpResponse:
    try:
        strategy = queue_strategy_set(strategy=request.POST.get("strategy", ""))
    except QueueError as error:
        return _refused(request, f"The queue strategy was not changed: {error}.")
    messages.success(request, f"The queue now serves tracks by {strategy}.")
    return redirect("annotations:dashboard")


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _csv_row(track) -> list:
    key = track.consensus
    return [
        track.pk,
        track.title,
        track.artist,
        track.original_filename,
        track.content_hash,
        track.split,
        track.consensus_label,
        key.mir_eval if key else "",
        key.camelot if key else "",
        key.open_key if key else "",
        "" if track.tuning_cents is None else round(track.tuning_cents, 1),
        track.annotation_count,
        track.consensus_at.isoformat() if track.consensus_at else "",
    ]


@only("GET")
@staff_required
def export_labels_csv(request: HttpRequest) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_HEADER)
        for track in selectors.labeled_tracks_for_export().iterator(chunk_size=2000):
            yield writer.writerow(csv_row_safe(_csv_row(track)))

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="keyweb-labels-{stamp}.csv"'
    return response
