"""Key fields and shapes shared by the resources: a label in any notation, notations, probabilities,
the best known key of a track or file."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.keys import KeyParseError

from ...selectors import NOTATIONS, BestKey, key_text
from ...services.labels import LabelValue


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
