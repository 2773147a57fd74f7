"""Stored predictions of a track, and prediction jobs for uploaded files."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.keys import Key

from ...models import Annotation, Prediction, PredictionJob
from ...selectors import BestKey
from .keys import BestKeySerializer, KeyProbabilitySerializer, best_key_data


class PredictionSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="model_version.name", read_only=True)
    is_active = serializers.BooleanField(source="model_version.is_active", read_only=True)
    key = serializers.SerializerMethodField()
    camelot = serializers.SerializerMethodField()
    top = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "model_version",
            "model_name",
            "is_active",
            "key",
            "camelot",
            "confidence",
            "entropy",
            "margin",
            "top",
            "created_at",
        ]
        read_only_fields = fields

    def get_key(self, prediction: Prediction) -> str:
        return prediction.key.mir_eval

    def get_camelot(self, prediction: Prediction) -> str:
        return prediction.key.camelot

    @extend_schema_field(KeyProbabilitySerializer(many=True))
    def get_top(self, prediction: Prediction) -> list[dict]:
        return [{"key": key.mir_eval, "probability": p} for key, p in prediction.top(3)]


class PredictionJobCreateSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="An audio file (wav, flac, ogg, mp3, aiff)")
    keep_file = serializers.BooleanField(
        required=False, default=False, help_text="Keep the file on the server after prediction"
    )


class PredictionJobSerializer(serializers.ModelSerializer):
    file_name = serializers.CharField(source="original_filename", read_only=True)
    result = serializers.SerializerMethodField(help_text="The key, once status is done")
    url = serializers.SerializerMethodField()

    class Meta:
        model = PredictionJob
        fields = [
            "id",
            "status",
            "file_name",
            "keep_file",
            "error",
            "created_at",
            "finished_at",
            "result",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, job: PredictionJob) -> str:
        return reverse("api:prediction-detail", args=[job.pk])

    @extend_schema_field(BestKeySerializer(allow_null=True))
    def get_result(self, job: PredictionJob) -> dict | None:
        if job.status != PredictionJob.Status.DONE or job.key_index is None:
            return None
        notation = self.context.get("notation", "mir_eval")
        top_k = self.context.get("top", 3)
        ranked = sorted(range(24), key=lambda i: -job.probabilities[i])[:top_k]
        best = BestKey(
            source="model",
            label=Annotation.Label.KEY,
            key=job.key,
            confidence=job.confidence,
            top=[(Key.from_index(i), float(job.probabilities[i])) for i in ranked],
            tuning_cents=job.tuning_cents,
            model_version=job.model_version,
        )
        return best_key_data(best, notation)
