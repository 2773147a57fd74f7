"""Model versions: summaries with held-out metrics, details with confusion and learning curve, training."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.keys import ALL_KEYS

from ...models import ModelVersion, PretrainingRun

SUMMARY_METRICS = (
    "weighted",
    "weighted_ci95",
    "correct",
    "fifth",
    "relative",
    "parallel",
    "other",
    "n",
    "ece",
)


class MetricsSummarySerializer(serializers.Serializer):
    weighted = serializers.FloatField(allow_null=True, required=False)
    weighted_ci95 = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        required=False,
        help_text="95 % bootstrap interval of `weighted` over the same held-out tracks [low, high]: where the "
        "score could land on another draw of as many tracks (absent for versions trained before it was reported)",
    )
    correct = serializers.FloatField(allow_null=True, required=False)
    fifth = serializers.FloatField(allow_null=True, required=False)
    relative = serializers.FloatField(allow_null=True, required=False)
    parallel = serializers.FloatField(allow_null=True, required=False)
    other = serializers.FloatField(allow_null=True, required=False)
    n = serializers.IntegerField(allow_null=True, required=False)
    ece = serializers.FloatField(allow_null=True, required=False)


class ComparisonSerializer(serializers.Serializer):
    """Two versions scored on the SAME held-out tracks (recorded when this one was trained)."""

    with_version = serializers.CharField(help_text="The version that was active then")
    n = serializers.IntegerField(help_text="Held-out tracks both were scored on")
    weighted = serializers.FloatField(allow_null=True, help_text="This version's weighted score on them")
    other_weighted = serializers.FloatField(allow_null=True, help_text="The other version's, on the same")


class ModelVersionSerializer(serializers.ModelSerializer):
    metrics = serializers.SerializerMethodField(help_text="Held-out (test split) metrics")
    measured_on = serializers.SerializerMethodField(
        help_text="'held_out': this library's test split; 'synthetic': the shipped model's own benchmark, "
        "not comparable with held-out scores; null: not measured"
    )
    comparison = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "backbone",
            "status",
            "progress",
            "error",
            "is_active",
            "is_default",
            "in_progress",
            "n_training_labels",
            "n_test_labels",
            "metrics",
            "measured_on",
            "comparison",
            "created_at",
            "trained_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["held_out", "synthetic"], allow_null=True))
    def get_measured_on(self, version: ModelVersion) -> str | None:
        metrics = version.metrics if isinstance(version.metrics, dict) else {}
        if metrics.get("weighted") is None:
            return None
        return "synthetic" if version.is_default else "held_out"

    @extend_schema_field(ComparisonSerializer(allow_null=True))
    def get_comparison(self, version: ModelVersion) -> dict | None:
        metrics = version.metrics if isinstance(version.metrics, dict) else {}
        activation = metrics.get("activation") if isinstance(metrics.get("activation"), dict) else {}
        other = activation.get("compared_with")
        if not other or metrics.get("active_weighted_same_test") is None:
            return None
        return {
            "with_version": other,
            "n": activation.get("n", metrics.get("n", 0)),
            "weighted": metrics.get("weighted"),
            "other_weighted": metrics["active_weighted_same_test"],
        }

    @extend_schema_field(MetricsSummarySerializer)
    def get_metrics(self, version: ModelVersion) -> dict:
        metrics = version.metrics if isinstance(version.metrics, dict) else {}
        return {name: metrics[name] for name in SUMMARY_METRICS if name in metrics}


class ConfusionSerializer(serializers.Serializer):
    labels = serializers.ListField(child=serializers.CharField(), help_text="Key names, in index order")
    matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Rows: reference key; columns: predicted key",
    )


class LearningCurvePointSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    name = serializers.CharField()
    n_training_labels = serializers.IntegerField()
    weighted = serializers.FloatField(allow_null=True)
    trained_at = serializers.DateTimeField(allow_null=True)


class ModelVersionDetailSerializer(ModelVersionSerializer):
    confusion = serializers.SerializerMethodField()
    learning_curve = serializers.SerializerMethodField()
    hyperparameters = serializers.JSONField(read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "hyperparameters", "confusion", "learning_curve"]
        read_only_fields = fields

    @extend_schema_field(ConfusionSerializer(allow_null=True))
    def get_confusion(self, version: ModelVersion) -> dict | None:
        matrix = (version.metrics or {}).get("confusion") if isinstance(version.metrics, dict) else None
        if not matrix:
            return None
        return {"labels": [key.mir_eval for key in ALL_KEYS], "matrix": matrix}

    @extend_schema_field(LearningCurvePointSerializer(many=True))
    def get_learning_curve(self, version: ModelVersion) -> list[dict]:
        return LearningCurvePointSerializer(self.context["learning_curve"], many=True).data


class TrainingRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class TrainingRequestResultSerializer(serializers.Serializer):
    created = serializers.BooleanField(help_text="false: a training was already queued or running")
    version = ModelVersionSerializer()


class TrainingStatusSerializer(serializers.Serializer):
    in_progress = serializers.BooleanField()
    version = ModelVersionSerializer(allow_null=True, help_text="The running training, else the newest")
    labels_since_last_training = serializers.IntegerField()
    retrain_min_new_labels = serializers.IntegerField()


class PretrainingRunSerializer(serializers.ModelSerializer):
    held_out = serializers.JSONField(
        help_text="The network alone (its own key channels, no head) on the held-out key-labelled tracks with "
        "the weights pretraining started from (`before`, null when it started from random weights) and with "
        "its checkpoint (`after`): mir_eval `weighted`, its `weighted_ci95`, the outcome fractions, `ece`, and "
        "`gain`, the paired mean difference with its 95 % interval `ci95`. {} until the run finishes, "
        '{"n": 0} without labelled held-out tracks, `error` if measuring failed. A diagnostic of what '
        "pretraining changed, not a forecast of the next model's score."
    )

    class Meta:
        model = PretrainingRun
        fields = [
            "id",
            "backbone",
            "status",
            "progress",
            "steps_done",
            "steps_total",
            "resumed_from",
            "attempts",
            "n_tracks",
            "n_labelled",
            "losses",
            "checkpoint_sha256",
            "held_out",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class PretrainingRequestSerializer(serializers.Serializer):
    steps = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        help_text="Optimiser steps (default KEYWEB_PRETRAINING_STEPS; at most 100,000, ~6 h on 2 CPU cores)",
    )


class PretrainingRequestResultSerializer(serializers.Serializer):
    created = serializers.BooleanField(help_text="false: a pretraining was already queued or running")
    run = PretrainingRunSerializer()


class PretrainingStatusSerializer(serializers.Serializer):
    in_progress = serializers.BooleanField()
    run = PretrainingRunSerializer(allow_null=True, help_text="The running pretraining, else the newest")
