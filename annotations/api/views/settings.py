"""Labeling settings an admin changes at run time: blind labeling (hide names from annotators)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsAdmin
from ..blind import blind_names_enabled, blind_names_set


class LabelingSettingsSerializer(serializers.Serializer):
    blind_names = serializers.BooleanField(
        help_text="Annotators see 'Track 1234' instead of titles, artists and file names"
    )


class LabelingSettingsApi(APIView):
    """GET the labeling settings; PATCH to change them (admin)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={200: LabelingSettingsSerializer})
    def get(self, request):
        return Response({"blind_names": blind_names_enabled()})

    @extend_schema(request=LabelingSettingsSerializer, responses={200: LabelingSettingsSerializer})
    def patch(self, request):
        data = LabelingSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"blind_names": blind_names_set(hidden=data.validated_data["blind_names"])})
