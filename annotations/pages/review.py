"""Review of disputed tracks: the list, and one track with its annotations, the model's view and the
decision controls (the page's script sends the decision to /api/v1/tracks/<id>/review)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from .. import selectors
from ..models import Track
from .access import only, reviewer_required
from .keys import annotation_value, keys_table, label_choices


@only("GET")
@reviewer_required
def review_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.tracks_for_review(), 50).get_page(request.GET.get("page"))
    return render(request, "annotations/review_list.html", {"page": page})


def _player_data(track: Track, prediction) -> dict:
    """What the shared player and the listening aids need (the same names as the queue API's track)."""
    return {
        "id": track.pk,
        "duration_s": track.duration_s,
        "tuning_cents": track.tuning_cents,
        "audio_url": reverse("annotations:track_audio", args=[track.pk]),
        "visuals_url": reverse("annotations:track_visuals", args=[track.pk]),
        "suggestions": [{"index": key.index, "probability": p} for key, p in prediction.top(3)]
        if prediction
        else [],
    }


@only("GET")
@reviewer_required
def review_track(request: HttpRequest, pk: int) -> HttpResponse:
    track = get_object_or_404(Track, pk=pk)
    annotations = list(track.annotations.select_related("annotator").order_by("id"))
    prediction = selectors.track_prediction_latest(track)
    distinct_labels = []
    for annotation in annotations:
        value = annotation_value(annotation)
        if value not in [v for v, _ in distinct_labels]:
            distinct_labels.append((value, annotation.display))
    context = {
        "track": track,
        "annotations": annotations,
        "prediction": prediction,
        "top": prediction.top(3) if prediction else [],
        "choices": label_choices(),
        "distinct_labels": distinct_labels,
        "remaining": selectors.tracks_for_review().count(),
        "track_json": _player_data(track, prediction),
        "keys": keys_table(),
        "api": {
            "decide": reverse("api:track-review", args=[track.pk]),
            "reviews": reverse("api:review-list"),
            "review_list": reverse("annotations:review_list"),
        },
    }
    return render(request, "annotations/review_track.html", context)
