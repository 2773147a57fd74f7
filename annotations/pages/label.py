"""The label page (its script talks to /api/v1/queue/*) and the waveform/chromagram JSON it draws."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from ml.audio import AudioDecodeError

from ..models import Track
from ..selectors import track_visuals_building, track_visuals_failure, track_visuals_stored
from ..services.visuals import track_visuals_build, track_visuals_build_in_background
from .access import annotator_required, json_error, only
from .keys import circle_of_fifths, keys_table

# Tracks up to this long get their visuals computed inside the request (~0.2 s for 90 s of audio);
# longer ones by a worker task while the page polls.
VISUALS_IN_REQUEST_MAX_S = 360.0


def _label_api_urls() -> dict:
    return {
        "next": reverse("api:queue-next"),
        "submit": reverse("api:queue-submit"),
        "skip": reverse("api:queue-skip"),
        "undo": reverse("api:queue-undo"),
        "progress": reverse("api:queue-progress"),
        "skipped": reverse("api:queue-skipped"),
    }


@only("GET")
@annotator_required
def label_page(request: HttpRequest) -> HttpResponse:
    context = {"keys": keys_table(), "circle": circle_of_fifths(), "api": _label_api_urls()}
    return render(request, "annotations/label.html", context)


@only("GET")
@annotator_required
def track_visuals(request: HttpRequest, pk: int) -> JsonResponse:
    """The waveform and chromagram JSON: stored (the worker draws them at analysis), computed now for
    short tracks, or 202 while a worker task draws a long one."""
    track = Track.objects.filter(pk=pk).first()
    if track is None:
        return json_error(f"there is no track {pk}", status=404)
    visuals = track_visuals_stored(track)
    if visuals is not None:
        return JsonResponse(visuals)
    failure = track_visuals_failure(track)
    if failure and not track_visuals_building(track):
        return json_error(f"the waveform of this track could not be drawn: {failure}", status=422)
    if not (Path(settings.MEDIA_ROOT) / track.audio.name).is_file():
        return json_error("the audio file of this track is missing on the server; re-import it", status=404)
    if track.duration_s <= VISUALS_IN_REQUEST_MAX_S:
        try:
            return JsonResponse(track_visuals_build(track=track))
        except AudioDecodeError as error:
            return json_error(f"the waveform of this track could not be drawn: {error}", status=422)
    track_visuals_build_in_background(track)
    return JsonResponse(
        {"status": "computing", "message": "drawing the waveform of this long track", "retry_after_s": 1},
        status=202,
    )
