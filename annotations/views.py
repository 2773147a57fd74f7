"""Pages and the label page's JSON endpoints. Thin: read through selectors, write through services; never
import torch (ml.keys, ml.active and ml.audio are torch-free)."""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from kombu.exceptions import OperationalError as BrokerUnavailable

from ml.audio import AudioDecodeError
from ml.keys import NO_KEY_LABELS, Key, KeyParseError

from . import dashboard as stats
from .models import Annotation, ModelVersion, Track
from .queue import (
    QueueError,
    annotation_submit,
    annotation_undo,
    queue_next,
    queue_skip,
    queue_strategy_set,
    review_decide,
)
from .selectors import model_version_active, queue_strategy_current, tracks_for_listing
from .services import LabelValue, track_import
from .versions import (
    TrainingQueueUnavailable,
    labels_since_last_training,
    model_training_request,
    model_version_activate,
)
from .visuals import (
    track_visuals_build,
    track_visuals_build_in_background,
    track_visuals_building,
    track_visuals_failure,
    track_visuals_stored,
)

# Tracks up to this long get their visuals computed inside the request (~0.2 s for 90 s of audio);
# longer ones in a background thread while the page polls.
VISUALS_IN_REQUEST_MAX_S = 360.0
BROKER_DOWN = (
    "the task queue (Redis) cannot be reached, so the worker was not told; "
    "check that Redis and the Celery worker are running, then try again"
)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


# --- access -----------------------------------------------------------------------------------------------


def _json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _can_label(user) -> bool:
    return user.has_perm("annotations.add_annotation")


def _can_review(user) -> bool:
    # Only the reviewer and admin roles carry this permission (setup_keyweb); superusers have all.
    return user.has_perm("annotations.change_annotation")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.endswith(".json") or "application/json" in request.headers.get("Accept", "")


def _only(*methods: str) -> Callable:
    """Like require_http_methods, but the 405 says which methods the address takes (in JSON for the
    JSON endpoints)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                message = f"{request.method} is not supported at this address; use {' or '.join(methods)}"
                if _wants_json(request):
                    response = _json_error(message, status=405)
                else:
                    response = HttpResponse(
                        f"{message}.", status=405, content_type="text/plain; charset=utf-8"
                    )
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _json_login_required(view: Callable) -> Callable:
    """For addresses the pages call with fetch(): a 401 in JSON instead of a redirect to the login page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return _json_error("log in first: your session has ended", status=401)
        return view(request, *args, **kwargs)

    return wrapped


def _label_json_endpoint(view: Callable) -> Callable:
    """Session-authenticated JSON endpoint for people who label: 401/403 answered in JSON, not redirects."""

    @wraps(view)
    @_json_login_required
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not _can_label(request.user):
            return _json_error("your account may not label tracks; ask an admin for the annotator role", 403)
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return wrapped


def _staff_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wants_json = _wants_json(request)
        if not request.user.is_authenticated:
            if wants_json:
                return _json_error("log in first: your session has ended", status=401)
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            if wants_json:
                return _json_error("the dashboard is for staff accounts only", status=403)
            raise PermissionDenied("The dashboard is for staff accounts only.")
        return view(request, *args, **kwargs)

    return wrapped


def _reviewer_required(view: Callable) -> Callable:
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not _can_review(request.user):
            raise PermissionDenied("Only reviewers and admins can review disputed tracks.")
        return view(request, *args, **kwargs)

    return wrapped


# --- home -------------------------------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    counts = {status: Track.objects.filter(status=status).count() for status, _ in Track.Status.choices}
    context = {
        "total": sum(counts.values()),
        "counts": counts,
        "labeled": Track.objects.exclude(consensus_label="").count(),
        "active_model": model_version_active(),
        "progress": stats.annotator_progress(user=request.user) if _can_label(request.user) else None,
        "can_label": _can_label(request.user),
        "can_review": _can_review(request.user),
        "review_count": Track.objects.filter(needs_review=True).count(),
    }
    return render(request, "annotations/home.html", context)


@login_required
def track_list(request: HttpRequest) -> HttpResponse:
    active = model_version_active()
    page = Paginator(tracks_for_listing(), 50).get_page(request.GET.get("page"))
    predictions = {}
    if active is not None:
        predictions = {p.track_id: p for p in active.predictions.filter(track__in=list(page.object_list))}
    rows = [(track, predictions.get(track.pk)) for track in page.object_list]
    return render(request, "annotations/track_list.html", {"page": page, "rows": rows})


# --- the label page and its JSON endpoints ------------------------------------------------------------------


def _track_payload(track: Track) -> dict:
    prediction = stats.track_prediction_latest(track)
    predicted = None
    if prediction is not None:
        predicted = {
            "model": prediction.model_version.name,
            "is_active_model": prediction.model_version.is_active,
            "top": [{"index": key.index, "probability": round(p, 4)} for key, p in prediction.top(3)],
            "probabilities": prediction.probabilities,
        }
    return {
        "id": track.pk,
        "title": track.title or track.original_filename,
        "artist": track.artist,
        "filename": track.original_filename,
        "duration_s": track.duration_s,
        "tuning_cents": track.tuning_cents,
        "split": track.split,
        "audio_url": reverse("annotations:track_audio", args=[track.pk]),
        "visuals_url": reverse("annotations:track_visuals", args=[track.pk]),
        "prediction": predicted,
    }


def _progress_payload(user) -> dict:
    progress = stats.annotator_progress(user=user, with_agreement=False)
    return {
        "labeled_today": progress.labeled_today,
        "labeled_total": progress.labeled_total,
        "queue_size": progress.queue_size,
    }


def _next_payload(user) -> dict:
    track = queue_next(user=user)
    return {"track": _track_payload(track) if track else None, "progress": _progress_payload(user)}


class _BadInput(ValueError):
    """Input from the label page that we answer with a 400 and this message."""


def _json_body(request: HttpRequest) -> dict:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _BadInput("the request body is not valid JSON") from error
    if not isinstance(body, dict):
        raise _BadInput("the request body must be a JSON object")
    return body


def _track_from(body: dict) -> Track:
    track_id = body.get("track")
    if isinstance(track_id, bool) or not isinstance(track_id, int):
        raise _BadInput("'track' must be the id (a whole number) of the track you are labeling")
    track = Track.objects.filter(pk=track_id).first()
    if track is None:
        raise _BadInput(f"there is no track {track_id}; it may have been deleted — reload the page")
    return track


def _optional_number(body: dict, name: str, description: str) -> float | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as error:
            raise _BadInput(f"{description} must be a number, not {body[name]!r}") from error
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadInput(f"{description} must be a number")
    return float(value)


def _label_from(body: dict) -> LabelValue:
    """{"label": "key", "key": 0–23 or a key in any notation} or {"label": "ambiguous"|"no_key"|...}."""
    label = body.get("label", "key")
    if label in NO_KEY_LABELS:
        return LabelValue(label=label)
    if label != Annotation.Label.KEY:
        raise _BadInput(f"'label' must be 'key' or one of {', '.join(NO_KEY_LABELS)}, not {label!r}")
    key = body.get("key")
    if isinstance(key, int) and not isinstance(key, bool):
        if not 0 <= key < 24:
            raise _BadInput(f"'key' must be a key index from 0 to 23, not {key}")
        return LabelValue(label=Annotation.Label.KEY, key=Key.from_index(key))
    if isinstance(key, str) and key.strip():
        try:
            parsed = LabelValue.parse(key)
        except KeyParseError as error:
            raise _BadInput(str(error)) from error
        return parsed
    raise _BadInput("pick a key (or a no-key label) before submitting")


@_only("GET")
@login_required
def label_page(request: HttpRequest) -> HttpResponse:
    if not _can_label(request.user):
        raise PermissionDenied("Your account may not label tracks; ask an admin for the annotator role.")
    context = {
        "initial": _next_payload(request.user),
        "keys": stats.keys_table(),
        "circle": stats.circle_of_fifths(),
    }
    return render(request, "annotations/label.html", context)


@_only("GET")
@_label_json_endpoint
def label_next(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_next_payload(request.user))


@_only("POST")
@_label_json_endpoint
def label_submit(request: HttpRequest) -> JsonResponse:
    try:
        body = _json_body(request)
        track = _track_from(body)
        label = _label_from(body)
        tuning_cents = _optional_number(body, "tuning_cents", "the tuning offset (cents)")
        time_spent_s = _optional_number(body, "time_spent_s", "the time spent (seconds)")
        notes = body.get("notes") or ""
        if not isinstance(notes, str):
            raise _BadInput("'notes' must be text")
        if len(notes) > 5000:
            raise _BadInput(f"notes are limited to 5000 characters (yours have {len(notes)})")
        annotation = annotation_submit(
            user=request.user,
            track=track,
            label=label,
            tuning_cents=tuning_cents,
            time_spent_s=time_spent_s,
            notes=notes,
        )
    except (_BadInput, QueueError) as error:
        return _json_error(str(error))
    saved = {"track": track.pk, "title": str(track), "label": annotation.display}
    return JsonResponse({"saved": saved, **_next_payload(request.user)})


@_only("POST")
@_label_json_endpoint
def label_skip(request: HttpRequest) -> JsonResponse:
    try:
        track = _track_from(_json_body(request))
    except _BadInput as error:
        return _json_error(str(error))
    queue_skip(user=request.user, track=track)
    return JsonResponse({"skipped": {"track": track.pk, "title": str(track)}, **_next_payload(request.user)})


@_only("POST")
@_label_json_endpoint
def label_undo(request: HttpRequest) -> JsonResponse:
    latest = (
        Annotation.objects.filter(annotator=request.user, source=Annotation.Source.ANNOTATOR)
        .order_by("-created_at", "-id")
        .first()
    )
    track = annotation_undo(user=request.user)
    if track is None or latest is None:
        return _json_error("there is nothing to undo: only your labels from the last hour can be withdrawn")
    undone = {
        "track": track.pk,
        "title": str(track),
        "label": latest.label,
        "key": latest.key_index,
        "display": latest.display,
        "tuning_cents": latest.tuning_cents,
        "notes": latest.notes,
    }
    return JsonResponse(
        {"undone": undone, "track": _track_payload(track), "progress": _progress_payload(request.user)}
    )


@_only("GET")
@_json_login_required
def track_visuals(request: HttpRequest, pk: int) -> JsonResponse:
    """The waveform and chromagram JSON: stored (the worker draws them at analysis), computed now for
    short tracks, or 202 while a worker task draws a long one."""
    track = Track.objects.filter(pk=pk).first()
    if track is None:
        return _json_error(f"there is no track {pk}", status=404)
    visuals = track_visuals_stored(track)
    if visuals is not None:
        return JsonResponse(visuals)
    failure = track_visuals_failure(track)
    if failure and not track_visuals_building(track):
        return _json_error(f"the waveform of this track could not be drawn: {failure}", status=422)
    if not (Path(settings.MEDIA_ROOT) / track.audio.name).is_file():
        return _json_error("the audio file of this track is missing on the server; re-import it", status=404)
    if track.duration_s <= VISUALS_IN_REQUEST_MAX_S:
        try:
            return JsonResponse(track_visuals_build(track=track))
        except AudioDecodeError as error:
            return _json_error(f"the waveform of this track could not be drawn: {error}", status=422)
    track_visuals_build_in_background(track)
    return JsonResponse(
        {"status": "computing", "message": "drawing the waveform of this long track", "retry_after_s": 1},
        status=202,
    )


# --- review -----------------------------------------------------------------------------------------------


@_only("GET")
@_reviewer_required
def review_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(stats.tracks_for_review(), 50).get_page(request.GET.get("page"))
    return render(request, "annotations/review_list.html", {"page": page})


def _label_from_form(value: str) -> LabelValue:
    value = (value or "").strip()
    if not value:
        raise _BadInput("choose the key (or a no-key label) you decide on")
    if value.isdigit():
        index = int(value)
        if not 0 <= index < 24:
            raise _BadInput(f"key index must be from 0 to 23, not {index}")
        return LabelValue(label=Annotation.Label.KEY, key=Key.from_index(index))
    try:
        return LabelValue.parse(value)
    except KeyParseError as error:
        raise _BadInput(str(error)) from error


@_only("GET", "POST")
@_reviewer_required
def review_track(request: HttpRequest, pk: int) -> HttpResponse:
    track = get_object_or_404(Track, pk=pk)
    error = None
    if request.method == "POST":
        try:
            label = _label_from_form(request.POST.get("label", ""))
            notes = request.POST.get("notes", "")
            if len(notes) > 5000:
                raise _BadInput("notes are limited to 5000 characters")
        except _BadInput as problem:
            error = str(problem)
        else:
            decided = review_decide(reviewer=request.user, track=track, label=label, notes=notes)
            shown = decided.consensus.mir_eval if decided.consensus else decided.consensus_label
            messages.success(request, f"Decided {shown} for “{decided}”.")
            following = stats.tracks_for_review().filter(id__gt=track.pk).first()
            following = following or stats.tracks_for_review().exclude(pk=track.pk).first()
            if following is not None:
                return redirect("annotations:review_track", pk=following.pk)
            return redirect("annotations:review_list")
    annotations = list(track.annotations.select_related("annotator").order_by("id"))
    prediction = stats.track_prediction_latest(track)
    distinct_labels = []
    for annotation in annotations:
        value = str(annotation.key_index) if annotation.key_index is not None else annotation.label
        if value not in [v for v, _ in distinct_labels]:
            distinct_labels.append((value, annotation.display))
    context = {
        "track": track,
        "annotations": annotations,
        "prediction": prediction,
        "top": prediction.top(3) if prediction else [],
        "choices": stats.label_choices(),
        "distinct_labels": distinct_labels,
        "error": error,
        "selected": request.POST.get("label", "") if error else "",
        "remaining": stats.tracks_for_review().count(),
        "track_json": _track_payload(track),
        "keys": stats.keys_table(),
    }
    return render(request, "annotations/review_track.html", context, status=400 if error else 200)


# --- the admin dashboard ------------------------------------------------------------------------------------


API_EXPORTS = (
    ("csv", "CSV"),
    ("jsonl", "JSON lines"),
    ("jams", "JAMS (zip)"),
    ("giantsteps", "GiantSteps (zip)"),
)


def _api_export_links() -> list[tuple[str, str]]:
    """(text, url) of the REST API's dataset exports, when that part of KeyWeb is installed."""
    links = []
    for export_format, text in API_EXPORTS:
        try:
            links.append((text, reverse("api:export", args=[export_format])))
        except NoReverseMatch:
            return []
    return links


def _dashboard_context() -> dict:
    versions = stats.model_versions_for_dashboard()
    summaries = [stats.model_version_summary(v) for v in versions]
    confusions = {str(v.pk): stats.confusion_for(v) for v in versions if stats.confusion_for(v) is not None}
    active = next((v for v in versions if v.is_active), None)
    shown_confusion = str(active.pk) if active and str(active.pk) in confusions else None
    shown_confusion = shown_confusion or next(iter(confusions), None)
    return {
        "tracks": stats.tracks_by_status_and_split(),
        "distribution": stats.label_distribution(),
        "throughput": stats.annotator_throughput(),
        "strategies": stats.queue_strategies(),
        "strategy": queue_strategy_current(),
        "versions": summaries,
        "charts": {
            "keys": stats.keys_table(),
            "distribution": stats.label_distribution(),
            "learning_curve": stats.learning_curve(versions),
            "confusions": confusions,
            "confusion_shown": shown_confusion,
            "calibration": [
                {"name": s["name"], "ece": s["ece"]} for s in reversed(summaries) if s["ece"] is not None
            ],
        },
        "training": stats.training_status(),
        "labels_since_training": labels_since_last_training(),
        "retrain_threshold": settings.KEYWEB["RETRAIN_MIN_NEW_LABELS"],
        "api_exports": _api_export_links(),
    }


@_only("GET")
@_staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "annotations/dashboard.html", _dashboard_context())


def _dashboard_refused(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    if _wants_json(request):
        return _json_error(message, status=status)
    messages.error(request, message)
    return render(request, "annotations/dashboard.html", _dashboard_context(), status=status)


@_only("POST")
@_staff_required
def dashboard_training_request(request: HttpRequest) -> HttpResponse:
    try:
        version, created = model_training_request(
            user=request.user, reason=f"requested from the dashboard by {request.user.get_username()}"
        )
    except (BrokerUnavailable, TrainingQueueUnavailable):
        return _dashboard_refused(request, f"Training could not be started: {BROKER_DOWN}.", status=503)
    message = (
        f"Training of {version.name} was queued."
        if created
        else f"{version.name} is already {version.get_status_display().lower()}; wait for it to finish."
    )
    if _wants_json(request):
        return JsonResponse(
            {"created": created, "message": message, **stats.training_status()},
            status=201 if created else 200,
        )
    messages.success(request, message)
    return redirect("annotations:dashboard")


@_only("GET")
@_staff_required
def dashboard_training_status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(stats.training_status())


@_only("POST")
@_staff_required
def dashboard_version_activate(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        model_version_activate(version=version)
    except ValueError as error:
        return _dashboard_refused(request, f"{version.name} cannot be activated: {error}.")
    except BrokerUnavailable:
        return _dashboard_refused(
            request, f"{version.name} is active, but re-predicting the queue failed: {BROKER_DOWN}.", 503
        )
    messages.success(request, f"{version.name} is now the active model; the queue is being re-predicted.")
    return redirect("annotations:dashboard")


@_only("POST")
@_staff_required
def dashboard_strategy(request: HttpRequest) -> HttpResponse:
    try:
        strategy = queue_strategy_set(strategy=request.POST.get("strategy", ""))
    except QueueError as error:
        return _dashboard_refused(request, f"The queue strategy was not changed: {error}.")
    messages.success(request, f"The queue now serves tracks by {strategy}.")
    return redirect("annotations:dashboard")


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@_only("GET")
@_staff_required
def export_labels_csv(request: HttpRequest) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    header = [
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

    def rows():
        yield writer.writerow(header)
        for track in stats.labeled_tracks_for_export().iterator(chunk_size=2000):
            key = track.consensus
            yield writer.writerow(
                [
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
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="keyweb-labels-{stamp}.csv"'
    return response


# --- upload -----------------------------------------------------------------------------------------------


@permission_required("annotations.add_track", raise_exception=True)
def upload(request: HttpRequest) -> HttpResponse:
    results = []
    status = 200
    if request.method == "POST":
        files = request.FILES.getlist("files")  # parses the body; the size limit is enforced here
        too_large = getattr(request, "upload_too_large", None)
        if too_large:
            limit_mb = settings.KEYWEB["MAX_UPLOAD_BYTES"] / 1e6
            results.append(
                {
                    "source": too_large,
                    "error": f"the file is over the {limit_mb:.0f} MB upload limit; "
                    "nothing from this upload was stored",
                }
            )
            status = 413
        elif not files:
            results.append({"source": "(no file)", "error": "choose one or more audio files to upload"})
            status = 400
        for uploaded in files:
            results.append(_import_uploaded(uploaded, request))
        if results and all(r.get("error") for r in results) and status == 200:
            status = 400
    context = {"results": results, "max_upload_mb": settings.KEYWEB["MAX_UPLOAD_BYTES"] / 1e6}
    return render(request, "annotations/upload.html", context, status=status)


def _import_uploaded(uploaded, request: HttpRequest) -> dict:
    suffix = Path(uploaded.name).suffix.lower()[:8]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        with open(path, "wb") as handle:
            for chunk in uploaded.chunks():
                handle.write(chunk)
        outcome = track_import(path=path, user=request.user, original_name=uploaded.name)
    return {
        "source": uploaded.name,
        "error": outcome.error,
        "track": outcome.track,
        "created": outcome.created,
    }
