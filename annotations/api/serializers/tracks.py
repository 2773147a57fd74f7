"""Tracks: list rows, the detail with predictions and visible annotations, uploads."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.keys import Key

from ...models import Track
from ..blind import BlindNamesMixin
from .labels import AnnotationSerializer
from .predictions import PredictionSerializer


class ConsensusSerializer(serializers.Serializer):
    label = serializers.CharField()
    key = serializers.CharField(allow_null=True)
    camelot = serializers.CharField(allow_null=True)


class PredictedKeySerializer(serializers.Serializer):
    key = serializers.CharField()
    camelot = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)


class TrackSerializer(BlindNamesMixin, serializers.ModelSerializer):
    consensus = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField(help_text="The active model's prediction")
    labeled = serializers.SerializerMethodField()

    class Meta:
        model = Track
        fields = [
            "id",
            "title",
            "artist",
            "original_filename",
            "content_hash",
            "duration_s",
            "status",
            "error",
            "split",
            "labeled",
            "consensus",
            "needs_review",
            "annotation_count",
            "prediction",
            "created_at",
        ]
        read_only_fields = fields

    def get_labeled(self, track: Track) -> bool:
        return bool(track.consensus_label)

    @extend_schema_field(ConsensusSerializer(allow_null=True))
    def get_consensus(self, track: Track) -> dict | None:
        if not track.consensus_label:
            return None
        key = track.consensus
        return {
            "label": track.consensus_label,
            "key": key.mir_eval if key else None,
            "camelot": key.camelot if key else None,
        }

    @extend_schema_field(PredictedKeySerializer(allow_null=True))
    def get_prediction(self, track: Track) -> dict | None:
        index = getattr(track, "active_key_index", None)
        if index is None:
            return None
        key = Key.from_index(index)
        return {"key": key.mir_eval, "camelot": key.camelot, "confidence": track.active_confidence}


class TrackDetailSerializer(TrackSerializer):
    predictions = PredictionSerializer(many=True, read_only=True)
    annotations = serializers.SerializerMethodField(help_text="Annotators see only their own")

    class Meta(TrackSerializer.Meta):
        fields = [
            *TrackSerializer.Meta.fields,
            "audio_format",
            "size_bytes",
            "sample_rate",
            "channels",
            "tuning_cents",
            "predictions",
            "annotations",
        ]
        read_only_fields = fields

    @extend_schema_field(AnnotationSerializer(many=True))
    def get_annotations(self, track: Track) -> list[dict]:
        visible = self.context["visible_annotations"].filter(track=track)
        return AnnotationSerializer(visible, many=True).data


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False, help_text="One or more files"
    )


class UploadResultSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="The file name as uploaded")
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    track = serializers.IntegerField(allow_null=True)
    created = serializers.BooleanField(help_text="false: the same audio was already in the library")


class UploadReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = UploadResultSerializer(many=True)
