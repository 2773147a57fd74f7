"""Annotator agreement: exact and mir_eval-weighted shares with the number of tracks behind them."""

from __future__ import annotations

from rest_framework import serializers


class AgreementSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Tracks compared")
    exact = serializers.FloatField(allow_null=True, help_text="Share with the same label (0–1)")
    weighted = serializers.FloatField(
        allow_null=True, help_text="Mean mir_eval weighted score (1 same, .5 fifth, .3 relative, .2 parallel)"
    )


class PairAgreementSerializer(AgreementSerializer):
    with_ = serializers.CharField(source="with", help_text="The other annotator")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["with"] = data.pop("with_")
        return data


class AnnotatorAgreementSerializer(serializers.Serializer):
    username = serializers.CharField()
    labels = serializers.IntegerField(help_text="Labels this annotator gave")
    with_consensus = AgreementSerializer(
        help_text="On tracks whose consensus rests on more than this annotator's own label"
    )
    with_others = PairAgreementSerializer(many=True, help_text="On the tracks both labeled")
