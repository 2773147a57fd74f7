"""How reliable each annotator is (reviewers and admins); the figures come from selectors.agreement."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsReviewer
from ...selectors.agreement import annotator_agreement
from ..serializers.annotators import AnnotatorAgreementSerializer


class AnnotatorAgreementApi(APIView):
    """Each annotator's agreement with the consensus and with each other (reviewer, admin)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses={200: AnnotatorAgreementSerializer(many=True)})
    def get(self, request):
        return Response(AnnotatorAgreementSerializer(annotator_agreement(), many=True).data)
