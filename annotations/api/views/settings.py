"""Labeling settings an admin changes at run time: blind labeling (hide names from annotators) and the
share of tracks that get a second opinion."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsAdmin
from ...selectors import blind_names_enabled, second_opinion_share
from ...services.labels import blind_names_set, second_opinion_share_set


class LabelingSettingsSerializer(serializers.Serializer):
    blind_names = serializers.BooleanField(
        required=False, help_text="Annotators see 'Track 1234' instead of titles, artists and file names"
    )
    second_opinion_share = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Share of tracks (0-1) a second annotator labels too, blind to the first",
    )


def _current() -> dict:
    return {"blind_names": blind_names_enabled(), "second_opinion_share": second_opinion_share()}


class LabelingSettingsApi(APIView):
    """GET the labeling settings; PATCH to change them (admin)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={200: LabelingSettingsSerializer})
    def get(self, request):
        return Response(_current())

    @extend_schema(request=LabelingSettingsSerializer, responses={200: LabelingSettingsSerializer})
    def patch(self, request):
        data = LabelingSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "blind_names" in data.validated_data:
            blind_names_set(hidden=data.validated_data["blind_names"])
        if "second_opinion_share" in data.validated_data:
            second_opinion_share_set(share=data.validated_data["second_opinion_share"])
        return Response(_current())
