"""The library: health check, home page with the annotator's progress, the track list, browser upload."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ml.keys import Key

from .. import selectors
from ..models import Track
from ..permissions import user_roles
from ..selectors import model_version_active, names_hidden_for
from ..services.tracks import track_import
from .access import admin_required, annotator_required, login_required, user_can_label, user_can_review
from .track_search import TrackSearchForm, tracks_for_form


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def home(request: HttpRequest) -> HttpResponse:
    counts = {status: Track.objects.filter(status=status).count() for status, _ in Track.Status.choices}
    can_label = user_can_label(request.user)
    context = {
        "total": sum(counts.values()),
        "counts": counts,
        "labeled": Track.objects.exclude(consensus_label="").count(),
        "active_model": model_version_active(),
        "progress": selectors.annotator_progress(user=request.user) if can_label else None,
        "can_label": can_label,
        "can_review": user_can_review(request.user),
        "review_count": Track.objects.filter(needs_review=True).count(),
        "has_role": bool(user_roles(request.user)),
        "admins": selectors.admin_usernames(),
    }
    return render(request, "annotations/home.html", context)


@annotator_required
def track_list(request: HttpRequest) -> HttpResponse:
    form = TrackSearchForm(request.GET)
    if not form.is_valid():
        context = {"form": form, "page": None, "filtered": True}
        return render(request, "annotations/track_list.html", context, status=400)
    names_hidden = names_hidden_for(request.user)
    tracks = tracks_for_form(form, names_hidden=names_hidden)
    page = Paginator(tracks, 50).get_page(request.GET.get("page"))
    predicted = [
        Key.from_index(t.active_key_index) if t.active_key_index is not None else None
        for t in page.object_list
    ]
    filtered = any(value not in ("", None) for value in form.cleaned_data.values())
    context = {
        "form": form,
        "page": page,
        "rows": list(zip(page.object_list, predicted, strict=True)),
        "filtered": filtered,
        "names_hidden": names_hidden,
    }
    return render(request, "annotations/track_list.html", context)


@admin_required
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
