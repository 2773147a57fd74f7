"""Annotations (scoped by role), the labeling queue and reviewer decisions. The label and review pages
use these endpoints too (session + CSRF), so there is one set of labeling rules."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from ...models import Annotation, Track
from ...permissions import IsAnnotator, IsReviewer
from ...selectors import (
    annotation_latest_own,
    annotations_visible_to,
    tracks_skipped_recently,
    tracks_with_active_prediction,
)
from ...services.queue import (
    QueueError,
    annotation_submit,
    annotation_undo,
    queue_next,
    queue_skip,
    queue_skip_put_back,
    review_decide,
)
from ..errors import Conflict, field_error
from ..filters import AnnotationFilter
from ..serializers.labels import (
    AnnotationCreateSerializer,
    AnnotationSerializer,
    ProgressSerializer,
    QueueSkipSerializer,
    QueueSubmitSerializer,
    QueueTrackSerializer,
    ReviewDecisionSerializer,
    SkippedTrackSerializer,
    SkipResultSerializer,
    UndoResultSerializer,
    progress_data,
)
from ..serializers.tracks import TrackDetailSerializer, TrackSerializer


def _track_or_400(track_id: int) -> Track:
    track = Track.objects.filter(pk=track_id).first()
    if track is None:
        raise field_error("track", f"there is no track with id {track_id}")
    return track


def _with_next(request, body: dict) -> dict:
    """`body` plus the next leased track, for clients that asked for it with "next": true."""
    track = queue_next(user=request.user)
    return {**body, "next": QueueTrackSerializer(track, context={"request": request}).data if track else None}


def _submit(request, *, serializer=AnnotationCreateSerializer) -> Response:
    data = serializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    try:
        annotation = annotation_submit(
            user=request.user,
            track=_track_or_400(values["track"]),
            label=values["key"],
            tuning_cents=values.get("tuning_cents"),
            time_spent_s=values.get("time_spent_s"),
            notes=values.get("notes", ""),
        )
    except QueueError as error:
        raise Conflict(str(error)) from error
    body = AnnotationSerializer(annotation).data
    if values.get("next"):
        body = _with_next(request, body)
    return Response(body, status=status.HTTP_201_CREATED)


class AnnotationListApi(ListAPIView):
    """GET: annotations — annotators see their own, reviewers and admins everyone's. POST: label a track
    (any role; one label per person per track, 409 if you already labeled it)."""

    permission_classes = [IsAnnotator]
    serializer_class = AnnotationSerializer
    filterset_class = AnnotationFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return Annotation.objects.none()
        return annotations_visible_to(user=self.request.user)

    @extend_schema(request=AnnotationCreateSerializer, responses={201: AnnotationSerializer})
    def post(self, request):
        return _submit(request)


class AnnotationDetailApi(RetrieveAPIView):
    """One annotation, if you may see it (404 otherwise)."""

    permission_classes = [IsAnnotator]
    serializer_class = AnnotationSerializer
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return Annotation.objects.none()
        return annotations_visible_to(user=self.request.user)


class QueueNextApi(APIView):
    """Lease the next track to label (any role). 204 when the queue is empty for you."""

    permission_classes = [IsAnnotator]

    @extend_schema(
        request=None,
        responses={200: QueueTrackSerializer, 204: OpenApiResponse(description="Nothing left to label")},
    )
    def post(self, request):
        track = queue_next(user=request.user)
        if track is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(QueueTrackSerializer(track, context={"request": request}).data)


class QueueProgressApi(APIView):
    """Your labeling counts and how many tracks the queue could still serve you (any role)."""

    permission_classes = [IsAnnotator]

    @extend_schema(responses={200: ProgressSerializer})
    def get(self, request):
        return Response(progress_data(request.user))


class QueueSubmitApi(APIView):
    """Submit your label for a track (any role); releases your lease. Same body as POST /annotations, plus
    "next": true to get the next leased track in the same answer."""

    permission_classes = [IsAnnotator]

    @extend_schema(request=QueueSubmitSerializer, responses={201: AnnotationSerializer})
    def post(self, request):
        return _submit(request, serializer=QueueSubmitSerializer)


class QueueSkipApi(APIView):
    """Pass on a track (any role): it is not served to you again for a day."""

    permission_classes = [IsAnnotator]

    @extend_schema(request=QueueSkipSerializer, responses={200: SkipResultSerializer})
    def post(self, request):
        data = QueueSkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = _track_or_400(data.validated_data["track"])
        queue_skip(user=request.user, track=track)
        body = {"skipped": track.pk}
        return Response(_with_next(request, body) if data.validated_data["next"] else body)


class QueueSkippedApi(APIView):
    """The tracks you skipped in the last day (newest first, at most 100); put one back with DELETE
    /queue/skipped/<track id>."""

    permission_classes = [IsAnnotator]

    @extend_schema(responses={200: SkippedTrackSerializer(many=True)})
    def get(self, request):
        skips = tracks_skipped_recently(user=request.user)[:100]
        return Response(SkippedTrackSerializer(skips, many=True, context={"request": request}).data)


class QueueSkippedPutBackApi(APIView):
    """Put a skipped track back: the queue may serve it to you again (204; 404 if you did not skip it)."""

    permission_classes = [IsAnnotator]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, track_id: int):
        track = get_object_or_404(Track, pk=track_id)
        if not queue_skip_put_back(user=request.user, track=track):
            raise NotFound(f"you have not skipped track {track_id}")
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueueUndoApi(APIView):
    """Withdraw your most recent label (within an hour) and get its track back (any role)."""

    permission_classes = [IsAnnotator]

    @extend_schema(request=None, responses={200: UndoResultSerializer})
    def post(self, request):
        latest = annotation_latest_own(request.user)
        track = annotation_undo(user=request.user)
        if track is None or latest is None:
            raise Conflict("you have no label from the last hour to undo")
        return Response(
            {
                "track": QueueTrackSerializer(track, context={"request": request}).data,
                "undone": AnnotationSerializer(latest).data,
            }
        )


class ReviewListApi(ListAPIView):
    """Tracks whose annotators disagree (reviewer, admin); their annotations are at
    /annotations?track=<id> and in the track's detail."""

    permission_classes = [IsReviewer]
    serializer_class = TrackSerializer
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Track.objects.none()
        return tracks_with_active_prediction().filter(needs_review=True)


class ReviewDecideApi(APIView):
    """Decide a track's label; the decision becomes its consensus (reviewer, admin)."""

    permission_classes = [IsReviewer]

    @extend_schema(request=ReviewDecisionSerializer, responses={200: TrackDetailSerializer})
    def post(self, request, pk: int):
        track = get_object_or_404(Track, pk=pk)
        data = ReviewDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review_decide(
            reviewer=request.user,
            track=track,
            label=data.validated_data["key"],
            notes=data.validated_data["notes"],
        )
        track = tracks_with_active_prediction().get(pk=pk)
        context = {"request": request, "visible_annotations": annotations_visible_to(user=request.user)}
        return Response(TrackDetailSerializer(track, context=context).data)
