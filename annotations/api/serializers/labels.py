"""Annotations, the labeling queue and reviewer decisions. The queue's track carries what the label page
needs: audio and visuals addresses, the annotator's progress, and the model's suggestions under one rule
(`track_suggestions`, stated in docs/ui.md)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...models import Annotation, Prediction, Track
from ...selectors import annotator_progress, track_prediction_latest
from ..blind import BlindNamesMixin, names_hidden_in, track_blind_name
from .keys import LabelField

SUGGESTIONS_SHOWN = 3
HELD_OUT_REASON = (
    "Held-out track: its label measures the model, so the model's suggestions are not shown. Decide by ear."
)


@dataclass(frozen=True)
class Suggestions:
    prediction: Prediction | None
    blind: str | None  # why suggestions are withheld, in one line for the page; None when they are not


def track_suggestions(track: Track) -> Suggestions:
    """The suggestion rule, the same for the label page and REST clients: pool tracks come with the model's
    top three (shown, never preselected); held-out (test split) tracks come with none, because their
    labels are what the model is measured against."""
    if track.split == Track.Split.TEST:
        return Suggestions(prediction=None, blind=HELD_OUT_REASON)
    return Suggestions(prediction=track_prediction_latest(track), blind=None)


class AnnotationSerializer(serializers.ModelSerializer):
    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    key = serializers.SerializerMethodField()
    camelot = serializers.SerializerMethodField()

    class Meta:
        model = Annotation
        fields = [
            "id",
            "track",
            "annotator",
            "label",
            "key",
            "camelot",
            "tuning_cents",
            "time_spent_s",
            "notes",
            "source",
            "created_at",
        ]
        read_only_fields = fields

    def get_key(self, annotation: Annotation) -> str | None:
        return annotation.key.mir_eval if annotation.key else None

    def get_camelot(self, annotation: Annotation) -> str | None:
        return annotation.key.camelot if annotation.key else None


class AnnotationCreateSerializer(serializers.Serializer):
    track = serializers.IntegerField(min_value=1)
    key = LabelField(
        help_text="A key in any notation ('Db major', '3B', '8d', 'Db:major', 'Dbm'), "
        "or ambiguous / no_key / modulating",
    )
    tuning_cents = serializers.FloatField(required=False, allow_null=True, min_value=-50, max_value=50)
    time_spent_s = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=86400)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class TrackRefSerializer(serializers.Serializer):
    track = serializers.IntegerField(min_value=1)


NEXT_HELP = "Answer with the next leased track too (as `next`, null when none is left): one round trip"


class QueueSubmitSerializer(AnnotationCreateSerializer):
    next = serializers.BooleanField(required=False, default=False, help_text=NEXT_HELP)


class QueueSkipSerializer(TrackRefSerializer):
    next = serializers.BooleanField(required=False, default=False, help_text=NEXT_HELP)


class ReviewDecisionSerializer(serializers.Serializer):
    key = LabelField(help_text="The decided key in any notation, or a no-key label")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class SuggestionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Key index 0–23 (C major … B major, then C minor … B minor)")
    key = serializers.CharField()
    camelot = serializers.CharField()
    probability = serializers.FloatField()


class SuggestionModelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    is_active = serializers.BooleanField()


class ProgressSerializer(serializers.Serializer):
    labeled_today = serializers.IntegerField()
    labeled_total = serializers.IntegerField()
    queue_size = serializers.IntegerField(help_text="Tracks the queue could still serve you")


def progress_data(user) -> dict:
    progress = annotator_progress(user=user, with_agreement=False)
    return {
        "labeled_today": progress.labeled_today,
        "labeled_total": progress.labeled_total,
        "queue_size": progress.queue_size,
    }


class QueueTrackSerializer(BlindNamesMixin, serializers.ModelSerializer):
    """A track to label. `suggestions`: the model's top three for pool tracks, best first, to show but not
    to preselect; empty for held-out tracks, with the reason in `blind`. No other prediction field, so
    nothing else anchors the listener."""

    filename = serializers.CharField(source="original_filename", read_only=True)
    audio_url = serializers.SerializerMethodField()
    visuals_url = serializers.SerializerMethodField()
    suggestions = serializers.SerializerMethodField()
    suggestion_model = serializers.SerializerMethodField()
    probabilities = serializers.SerializerMethodField()
    blind = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Track
        fields = [
            "id",
            "title",
            "artist",
            "filename",
            "duration_s",
            "tuning_cents",
            "split",
            "audio_url",
            "visuals_url",
            "lease_expires_at",
            "suggestions",
            "suggestion_model",
            "probabilities",
            "blind",
            "progress",
        ]
        read_only_fields = fields

    def _suggestions(self, track: Track) -> Suggestions:
        cached = getattr(self, "_suggestions_cache", {})
        if track.pk not in cached:
            cached[track.pk] = track_suggestions(track)
            self._suggestions_cache = cached
        return cached[track.pk]

    def get_audio_url(self, track: Track) -> str:
        return reverse("annotations:track_audio", args=[track.pk])

    def get_visuals_url(self, track: Track) -> str:
        return reverse("annotations:track_visuals", args=[track.pk])

    @extend_schema_field(SuggestionSerializer(many=True))
    def get_suggestions(self, track: Track) -> list[dict]:
        prediction = self._suggestions(track).prediction
        if prediction is None:
            return []
        return [
            {"index": key.index, "key": key.mir_eval, "camelot": key.camelot, "probability": round(p, 4)}
            for key, p in prediction.top(SUGGESTIONS_SHOWN)
        ]

    @extend_schema_field(SuggestionModelSerializer(allow_null=True))
    def get_suggestion_model(self, track: Track) -> dict | None:
        prediction = self._suggestions(track).prediction
        if prediction is None:
            return None
        version = prediction.model_version
        return {"id": version.pk, "name": version.name, "is_active": version.is_active}

    @extend_schema_field(
        serializers.ListField(
            child=serializers.FloatField(), allow_null=True, help_text="All 24, in key-index order"
        )
    )
    def get_probabilities(self, track: Track) -> list[float] | None:
        prediction = self._suggestions(track).prediction
        return [round(p, 4) for p in prediction.probabilities] if prediction is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Why there are no suggestions"))
    def get_blind(self, track: Track) -> str | None:
        return self._suggestions(track).blind

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, track: Track) -> dict | None:
        request = self.context.get("request")
        if request is None:
            return None
        return progress_data(request.user)


class SkippedTrackSerializer(serializers.Serializer):
    track = serializers.IntegerField(source="track_id")
    title = serializers.SerializerMethodField()
    skipped_at = serializers.DateTimeField(source="created_at")

    def get_title(self, skip) -> str:
        track = skip.track
        if names_hidden_in(self.context):
            return track_blind_name(track)
        return track.title or track.original_filename


class SkipResultSerializer(serializers.Serializer):
    skipped = serializers.IntegerField(help_text="The track id")


class UndoResultSerializer(serializers.Serializer):
    track = QueueTrackSerializer()
    undone = AnnotationSerializer(help_text="The withdrawn label, to correct and submit again")
