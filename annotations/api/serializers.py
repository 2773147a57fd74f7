"""API shapes. Input serializers validate and name the field at fault; output serializers only read."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.keys import ALL_KEYS, Key, KeyParseError

from ..models import Annotation, ModelVersion, Prediction, PredictionJob, Track
from ..permissions import ROLES, user_role
from ..services import LabelValue
from .selectors import NOTATIONS, BestKey, key_text

User = get_user_model()


# --- fields ----------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "maxLength": 40, "example": "Db major"})
class LabelField(serializers.Field):
    """A key in any notation ('C major', '8B', '1d', 'C:major', 'Cm'), or ambiguous / no_key / modulating."""

    default_error_messages = {
        "invalid": "must be text: a key such as 'C major' or '8B', or ambiguous / no_key / modulating",
        "max_length": "is too long to be a key (40 characters at most)",
    }

    def to_internal_value(self, data) -> LabelValue:
        if not isinstance(data, str) or not data.strip():
            self.fail("invalid")
        if len(data) > 40:
            self.fail("max_length")
        text = data
        try:
            return LabelValue.parse(text)
        except KeyParseError as error:
            raise serializers.ValidationError(str(error)) from error

    def to_representation(self, value: LabelValue) -> str:
        return value.key.mir_eval if value.key else value.label


class NotationField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        kwargs.setdefault("default", "mir_eval")
        kwargs.setdefault("help_text", "Notation of the keys in the answer")
        super().__init__(choices=["mir_eval", "camelot", "openkey", "jams", "id3"], **kwargs)


# --- keys ------------------------------------------------------------------------------------------


class KeyQuerySerializer(serializers.Serializer):
    notation = NotationField(required=False)
    top = serializers.IntegerField(
        required=False, default=3, min_value=1, max_value=24, help_text="How many keys in `top`"
    )


class KeyProbabilitySerializer(serializers.Serializer):
    key = serializers.CharField()
    probability = serializers.FloatField()


class BestKeySerializer(serializers.Serializer):
    """The best known key of a track or an uploaded file."""

    source = serializers.ChoiceField(
        choices=["human", "model"], allow_null=True, help_text="null: nothing known yet"
    )
    label = serializers.CharField(allow_null=True, help_text="'key', or ambiguous / no_key / modulating")
    key = serializers.CharField(
        allow_null=True, help_text="In the requested notation; null for no-key labels"
    )
    notation = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True, help_text="1.0 for a human label")
    top = KeyProbabilitySerializer(many=True, help_text="The model's most probable keys, best first")
    tuning_cents = serializers.FloatField(allow_null=True, help_text="Offset from A440, when known")
    model_version = serializers.IntegerField(allow_null=True)


def best_key_data(best: BestKey, notation: str) -> dict:
    return {
        "source": best.source,
        "label": best.label,
        "key": key_text(best.key, notation),
        "notation": notation,
        "confidence": best.confidence,
        "top": [{"key": key.to(NOTATIONS[notation]), "probability": p} for key, p in best.top],
        "tuning_cents": best.tuning_cents,
        "model_version": best.model_version.pk if best.model_version is not None else None,
    }


# --- tracks ----------------------------------------------------------------------------------------


class ConsensusSerializer(serializers.Serializer):
    label = serializers.CharField()
    key = serializers.CharField(allow_null=True)
    camelot = serializers.CharField(allow_null=True)


class PredictedKeySerializer(serializers.Serializer):
    key = serializers.CharField()
    camelot = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)


class TrackSerializer(serializers.ModelSerializer):
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


# --- annotations, queue, review ----------------------------------------------------------------------


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


class ReviewDecisionSerializer(serializers.Serializer):
    key = LabelField(help_text="The decided key in any notation, or a no-key label")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class QueueTrackSerializer(serializers.ModelSerializer):
    """What an annotator gets to label: no prediction, so the model does not anchor the listener."""

    audio_url = serializers.SerializerMethodField()

    class Meta:
        model = Track
        fields = ["id", "title", "artist", "duration_s", "split", "audio_url", "lease_expires_at"]
        read_only_fields = fields

    def get_audio_url(self, track: Track) -> str:
        from django.urls import reverse

        return reverse("annotations:track_audio", args=[track.pk])


class SkipResultSerializer(serializers.Serializer):
    skipped = serializers.IntegerField(help_text="The track id")


class UndoResultSerializer(serializers.Serializer):
    track = QueueTrackSerializer()


# --- models ----------------------------------------------------------------------------------------

SUMMARY_METRICS = ("weighted", "correct", "fifth", "relative", "parallel", "other", "n", "ece")


class MetricsSummarySerializer(serializers.Serializer):
    weighted = serializers.FloatField(allow_null=True, required=False)
    correct = serializers.FloatField(allow_null=True, required=False)
    fifth = serializers.FloatField(allow_null=True, required=False)
    relative = serializers.FloatField(allow_null=True, required=False)
    parallel = serializers.FloatField(allow_null=True, required=False)
    other = serializers.FloatField(allow_null=True, required=False)
    n = serializers.IntegerField(allow_null=True, required=False)
    ece = serializers.FloatField(allow_null=True, required=False)


class ModelVersionSerializer(serializers.ModelSerializer):
    metrics = serializers.SerializerMethodField(help_text="Held-out (test split) metrics")

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
            "created_at",
            "trained_at",
        ]
        read_only_fields = fields

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


# --- prediction jobs -------------------------------------------------------------------------------


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
        from django.urls import reverse

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


# --- users and tokens ------------------------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    has_token = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "role", "is_active", "has_token", "date_joined", "last_login"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ROLES, allow_null=True))
    def get_role(self, user) -> str | None:
        return user_role(user)

    def get_has_token(self, user) -> bool:
        return hasattr(user, "auth_token")


class UserCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(min_length=8, max_length=128, write_only=True)
    role = serializers.ChoiceField(choices=ROLES)

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError(f"the username {value!r} is taken")
        return value


class UserUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES, required=False)
    is_active = serializers.BooleanField(required=False)


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`")
    user = UserSerializer()


# --- exports and imports ---------------------------------------------------------------------------


class ExportQuerySerializer(serializers.Serializer):
    consensus_only = serializers.BooleanField(
        required=False, default=True, help_text="Only tracks with a consensus label (default true)"
    )
    split = serializers.ChoiceField(choices=Track.Split.values, required=False)
    since = serializers.DateTimeField(required=False, help_text="Labeled at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="Labeled before (ISO 8601)")
    annotations = serializers.BooleanField(
        required=False, default=False, help_text="Add every annotation with its annotator"
    )
    audio = serializers.BooleanField(
        required=False, default=False, help_text="Add the audio files (jams and giantsteps zips only)"
    )
    write_tags = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Write the consensus key into the exported audio copies (ID3 TKEY / INITIALKEY)",
    )

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["must be after since"]})
        if attrs.get("write_tags") and not attrs.get("audio"):
            raise serializers.ValidationError({"write_tags": ["needs audio=true: tags go into audio copies"]})
        return attrs


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="A KeyWeb CSV or JSONL export, a path,key CSV, a .jams file, or a JAMS / GiantSteps zip"
    )
    format = serializers.ChoiceField(
        choices=["auto", "csv", "jsonl", "jams", "giantsteps"], required=False, default="auto"
    )
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Report, change nothing")


class ImportProblemSerializer(serializers.Serializer):
    where = serializers.CharField(help_text="Line number or file inside the archive")
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    format = serializers.CharField()
    dry_run = serializers.BooleanField()
    records = serializers.IntegerField()
    imported = serializers.IntegerField(help_text="Labels added (or that would be, in a dry run)")
    unchanged = serializers.IntegerField(help_text="The track already had this label")
    conflicts = serializers.IntegerField(help_text="The track already had a different imported label; kept")
    unmatched = serializers.IntegerField(help_text="No track with this content hash or file name")
    invalid = serializers.IntegerField(help_text="Unreadable rows or keys")
    empty = serializers.IntegerField(help_text="Rows without a label")
    problems = ImportProblemSerializer(many=True, help_text="The first 500 problems")


def max_upload_mb() -> float:
    return settings.KEYWEB["MAX_UPLOAD_BYTES"] / 1e6
