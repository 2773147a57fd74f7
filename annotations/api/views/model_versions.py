"""Model versions: metrics, confusion and learning curve (any role); activation, training and backbone
pretraining (admin)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from ...models import ModelVersion, PretrainingRun
from ...permissions import IsAdmin, IsAnnotator
from ...selectors import labels_since_last_training, model_learning_curve
from ...services.model_versions import model_training_request, model_version_activate
from ...services.pretraining import PretrainingRefused, pretraining_request
from ..errors import Conflict, field_error
from ..serializers.model_versions import (
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    PretrainingRequestResultSerializer,
    PretrainingRequestSerializer,
    PretrainingRunSerializer,
    PretrainingStatusSerializer,
    TrainingRequestResultSerializer,
    TrainingRequestSerializer,
    TrainingStatusSerializer,
)


class ModelVersionListApi(ListAPIView):
    """Every model version with its held-out metrics, newest first (any role)."""

    permission_classes = [IsAnnotator]
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.order_by("-id")
    filter_backends = []


class ModelVersionDetailApi(APIView):
    """One version with its confusion matrix and the learning curve of all versions (any role)."""

    permission_classes = [IsAnnotator]

    @extend_schema(responses={200: ModelVersionDetailSerializer})
    def get(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        context = {"request": request, "learning_curve": model_learning_curve()}
        return Response(ModelVersionDetailSerializer(version, context=context).data)


class ModelVersionActivateApi(APIView):
    """Make this version the one that predicts; every unlabeled track is re-predicted (admin)."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            model_version_activate(version=version)
        except ValueError as error:
            raise Conflict(str(error)) from error
        return Response(ModelVersionSerializer(ModelVersion.objects.get(pk=pk)).data)


class TrainingApi(APIView):
    """GET: the running (or latest) training and how many new labels arrived (any role).
    POST: request a training (admin); while one is queued or running, that one is returned."""

    def get_permissions(self):
        return [IsAdmin()] if self.request.method == "POST" else [IsAnnotator()]

    @extend_schema(responses={200: TrainingStatusSerializer})
    def get(self, request):
        running = ModelVersion.objects.filter(in_progress=True).first()
        latest = running or ModelVersion.objects.filter(is_default=False).order_by("-id").first()
        return Response(
            {
                "in_progress": running is not None,
                "version": ModelVersionSerializer(latest).data if latest else None,
                "labels_since_last_training": labels_since_last_training(),
                "retrain_min_new_labels": settings.KEYWEB["RETRAIN_MIN_NEW_LABELS"],
            }
        )

    @extend_schema(
        request=TrainingRequestSerializer,
        responses={
            202: OpenApiResponse(TrainingRequestResultSerializer, description="Training queued"),
            200: OpenApiResponse(TrainingRequestResultSerializer, description="One was already running"),
        },
    )
    def post(self, request):
        data = TrainingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version, created = model_training_request(user=request.user, reason=data.validated_data["reason"])
        return Response(
            {"created": created, "version": ModelVersionSerializer(version).data},
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


class PretrainingApi(APIView):
    """GET: the running (or latest) backbone pretraining, with what it measured on held-out tracks (any role).
    POST: request one (admin); while one is queued or running, that one is returned."""

    def get_permissions(self):
        return [IsAdmin()] if self.request.method == "POST" else [IsAnnotator()]

    @extend_schema(responses={200: PretrainingStatusSerializer})
    def get(self, request):
        running = PretrainingRun.objects.filter(in_progress=True).first()
        latest = running or PretrainingRun.objects.order_by("-id").first()
        return Response(
            {
                "in_progress": running is not None,
                "run": PretrainingRunSerializer(latest).data if latest else None,
            }
        )

    @extend_schema(
        request=PretrainingRequestSerializer,
        responses={
            202: OpenApiResponse(PretrainingRequestResultSerializer, description="Pretraining queued"),
            200: OpenApiResponse(PretrainingRequestResultSerializer, description="One was already running"),
        },
    )
    def post(self, request):
        data = PretrainingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run, created = pretraining_request(user=request.user, steps=data.validated_data.get("steps"))
        except PretrainingRefused as error:
            raise field_error("steps", str(error)) from error
        return Response(
            {"created": created, "run": PretrainingRunSerializer(run).data},
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )
