"""Labeled-dataset exports (streamed) and label imports with a dry-run report (admin)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsAdmin
from ...services.exports import CONTENT_TYPES, FILE_NAMES, FORMATS, ExportOptions, export_stream
from ...services.label_imports import LabelFileError, label_records_read, labels_import
from ..errors import field_error
from ..serializers.datasets import ExportQuerySerializer, ImportReportSerializer, ImportRequestSerializer
from .tracks import refuse_oversized_upload


class FirstRendererNegotiation(BaseContentNegotiation):
    """Exports answer CSV, JSONL or zip whatever the Accept header says; errors are always JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportApi(APIView):
    """Stream the labeled dataset as csv, jsonl, a zip of JAMS files or a GiantSteps-style zip (admin)."""

    permission_classes = [IsAdmin]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        parameters=[
            ExportQuerySerializer,
            OpenApiParameter("export_format", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(FORMATS)),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request, export_format: str):
        if export_format not in FORMATS:
            raise field_error("export_format", f"unknown format {export_format!r}; use {', '.join(FORMATS)}")
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = ExportOptions(**query.validated_data)
        if options.audio and export_format not in ("jams", "giantsteps"):
            raise field_error("audio", "audio files come only in a zip: use the jams or giantsteps format")
        response = StreamingHttpResponse(
            export_stream(export_format, options), content_type=CONTENT_TYPES[export_format]
        )
        response["Content-Disposition"] = f'attachment; filename="{FILE_NAMES[export_format]}"'
        response["X-Accel-Buffering"] = "no"  # let a proxy pass the stream through as it is made
        return response


class ImportApi(APIView):
    """Import labels from a KeyWeb CSV/JSONL export, a path,key CSV, a .jams file or a JAMS/GiantSteps zip;
    with dry_run=true nothing changes and the report says what would (admin)."""

    permission_classes = [IsAdmin]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer}, responses={200: ImportReportSerializer}
    )
    def post(self, request):
        uploaded = request.FILES.get("file")
        refuse_oversized_upload(request)
        data = ImportRequestSerializer(
            data={
                "file": uploaded,
                "format": request.data.get("format", "auto"),
                "dry_run": request.data.get("dry_run", False),
            }
        )
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            found_format, records = label_records_read(
                stream=uploaded.open("rb"), name=uploaded.name or "", label_format=values["format"]
            )
            report = labels_import(
                records=records, label_format=found_format, user=request.user, dry_run=values["dry_run"]
            )
        except LabelFileError as error:
            raise field_error("file", f"{uploaded.name}: {error}") from error
        return Response(ImportReportSerializer(report).data)
