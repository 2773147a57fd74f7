"""Key prediction for a loose audio file: POST answers 202 with a job at once; GET polls it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsAnnotator
from ...selectors import prediction_jobs_visible_to
from ...services.prediction_jobs import (
    prediction_job_delete,
    prediction_job_submit,
    prediction_jobs_dir,
)
from ...services.tracks import ImportRejected
from ..errors import field_error
from ..serializers.keys import KeyQuerySerializer
from ..serializers.predictions import PredictionJobCreateSerializer, PredictionJobSerializer
from .tracks import refuse_oversized_upload


class PredictionJobCreateApi(APIView):
    """Upload an audio file that is not in the library to have its key predicted (any role). The file is
    deleted after prediction unless `keep_file` is true."""

    permission_classes = [IsAnnotator]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": PredictionJobCreateSerializer},
        responses={202: PredictionJobSerializer},
    )
    def post(self, request):
        uploaded = request.FILES.get("file")
        refuse_oversized_upload(request)
        data = PredictionJobCreateSerializer(
            data={"file": uploaded, "keep_file": request.data.get("keep_file", False)}
        )
        data.is_valid(raise_exception=True)
        folder = prediction_jobs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        suffix = Path(uploaded.name or "").suffix.lower()[:8]
        with tempfile.NamedTemporaryFile(dir=folder, suffix=f".part{suffix}", delete=False) as handle:
            for chunk in uploaded.chunks():
                handle.write(chunk)
            temporary = Path(handle.name)
        try:
            job = prediction_job_submit(
                upload_path=temporary,
                original_name=uploaded.name or f"upload{suffix}",
                user=request.user,
                keep_file=data.validated_data["keep_file"],
            )
        except ImportRejected as error:
            raise field_error("file", f"{uploaded.name}: {error}") from error
        finally:
            temporary.unlink(missing_ok=True)
        response = Response(PredictionJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = PredictionJobSerializer(job).data["url"]
        return response


class PredictionJobDetailApi(APIView):
    """GET: a job's status, then its key, in the notation asked for (the submitter or an admin).
    DELETE: forget the job and remove its file if it was kept."""

    permission_classes = [IsAnnotator]

    def _job(self, request, job_id):
        job = prediction_jobs_visible_to(user=request.user).filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"there is no prediction job {job_id} of yours")
        return job

    @extend_schema(parameters=[KeyQuerySerializer], responses={200: PredictionJobSerializer})
    def get(self, request, job_id):
        query = KeyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        job = self._job(request, job_id)
        return Response(PredictionJobSerializer(job, context=dict(query.validated_data)).data)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Job deleted")})
    def delete(self, request, job_id):
        prediction_job_delete(job=self._job(request, job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
