"""Tracks: list with filters, upload, detail, delete, and the best known key of a track."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveDestroyAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ...models import Prediction, Track
from ...permissions import IsAdmin, IsAnnotator
from ...selectors import annotations_visible_to, track_best_key, tracks_with_active_prediction
from ...services.tracks import track_delete, track_import
from ..errors import PayloadTooLarge, error_body
from ..filters import TrackFilter
from ..serializers.keys import BestKeySerializer, KeyQuerySerializer, best_key_data
from ..serializers.tracks import (
    TrackDetailSerializer,
    TrackSerializer,
    UploadReportSerializer,
    UploadSerializer,
)


def refuse_oversized_upload(request) -> None:
    """The upload handler stops reading a file past KEYWEB_MAX_UPLOAD_MB and flags the request."""
    too_large = getattr(request, "upload_too_large", None)
    if too_large:
        limit_mb = settings.KEYWEB["MAX_UPLOAD_BYTES"] / 1e6
        raise PayloadTooLarge(
            f"{too_large} is over the {limit_mb:.0f} MB upload limit (KEYWEB_MAX_UPLOAD_MB); "
            "nothing from this upload was stored"
        )


class TrackListApi(ListAPIView):
    """GET: tracks, filtered and paginated (any role). POST: upload audio files (admin)."""

    serializer_class = TrackSerializer
    filterset_class = TrackFilter
    parser_classes = [MultiPartParser, FormParser]

    def get_permissions(self):
        return [IsAdmin()] if self.request.method == "POST" else [IsAnnotator()]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, maybe no database
            return Track.objects.none()
        return tracks_with_active_prediction()

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: OpenApiResponse(UploadReportSerializer, description="At least one new track"),
            200: OpenApiResponse(UploadReportSerializer, description="Every file was already in the library"),
        },
    )
    def post(self, request):
        files = request.FILES.getlist("files")  # parsing the body enforces the size limit
        refuse_oversized_upload(request)
        upload = UploadSerializer(data={"files": files})
        upload.is_valid(raise_exception=True)
        results = [_import_one(uploaded, request.user) for uploaded in files]
        report = {
            "created": sum(1 for r in results if r["created"]),
            "existing": sum(1 for r in results if r["ok"] and not r["created"]),
            "failed": sum(1 for r in results if not r["ok"]),
            "results": results,
        }
        if report["failed"] == len(results):
            errors = [
                {"field": f"files.{i}", "message": f"{r['source']}: {r['error']}"}
                for i, r in enumerate(results)
            ]
            return Response(
                error_body(400, "invalid", f"none of the {len(results)} files could be imported", errors),
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(report, status=status.HTTP_201_CREATED if report["created"] else status.HTTP_200_OK)


def _import_one(uploaded, user) -> dict:
    suffix = Path(uploaded.name or "").suffix.lower()[:8]
    with tempfile.TemporaryDirectory(prefix="keyweb-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with open(path, "wb") as handle:
            for chunk in uploaded.chunks():
                handle.write(chunk)
        outcome = track_import(path=path, user=user, original_name=uploaded.name or "upload")
    return {
        "source": uploaded.name or "(unnamed)",
        "ok": outcome.ok,
        "error": outcome.error,
        "track": outcome.track.pk if outcome.track else None,
        "created": outcome.created,
    }


class TrackDetailApi(RetrieveDestroyAPIView):
    """GET: a track with its predictions and the annotations you may see (any role). DELETE: admin."""

    serializer_class = TrackDetailSerializer
    filter_backends = []

    def get_permissions(self):
        return [IsAdmin()] if self.request.method == "DELETE" else [IsAnnotator()]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Track.objects.none()
        return tracks_with_active_prediction().prefetch_related(
            Prefetch(
                "predictions",
                queryset=Prediction.objects.select_related("model_version").order_by("-model_version_id"),
            )
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["visible_annotations"] = annotations_visible_to(user=self.request.user)
        return context

    def perform_destroy(self, track):
        track_delete(track=track)


class TrackKeyApi(APIView):
    """The best known key of a track: the human consensus if any, else the active model's prediction
    (any role). `?notation=mir_eval|camelot|openkey|jams|id3`, `?top=3`."""

    permission_classes = [IsAnnotator]

    @extend_schema(parameters=[KeyQuerySerializer], responses={200: BestKeySerializer})
    def get(self, request, pk: int):
        query = KeyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        track = get_object_or_404(Track, pk=pk)
        best = track_best_key(track=track, top_k=query.validated_data["top"])
        return Response(best_key_data(best, query.validated_data["notation"]))
