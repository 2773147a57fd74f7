"""Worker side of loose-file prediction: claim a queued PredictionJob, decode, embed, predict with the
active model, record the outcome, delete the file unless it is kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from ml.audio import AudioDecodeError, load_audio
from ml.heads import predict_tracks

from ..models import ModelVersion, PredictionJob
from ..selectors import model_version_active
from ..services.tracks import decoder_message
from .backbones import backbone_for, head_for

logger = logging.getLogger(__name__)


def prediction_job_run(*, job_id: str) -> PredictionJob | None:
    """Predict the key of a queued job's file with the active model. A second delivery of the same job
    finds it already claimed and does nothing (returns None)."""
    # A job left RUNNING by a worker that died is queued again by services.recovery.
    claimed = PredictionJob.objects.filter(pk=job_id, status=PredictionJob.Status.QUEUED).update(
        status=PredictionJob.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    job = PredictionJob.objects.get(pk=job_id)
    try:
        fields = _predict(job)
        fields["status"] = PredictionJob.Status.DONE
    except _JobFailed as error:
        fields = {"status": PredictionJob.Status.FAILED, "error": str(error)[:2000]}
    except Exception as error:
        logger.exception("prediction job %s failed", job_id)
        fields = {
            "status": PredictionJob.Status.FAILED,
            "error": f"internal error ({error.__class__.__name__}); the worker log has the details",
        }
    if not job.keep_file and job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
        fields["file_path"] = ""
    PredictionJob.objects.filter(pk=job_id).update(finished_at=timezone.now(), **fields)
    return PredictionJob.objects.get(pk=job_id)


class _JobFailed(RuntimeError):
    """A failure the submitter can act on (bad audio, no model)."""


def _predict(job: PredictionJob) -> dict:
    version: ModelVersion | None = model_version_active()
    if version is None or version.status != ModelVersion.Status.READY:
        raise _JobFailed("there is no active model to predict with; an admin must train or activate one")
    if not job.file_path or not os.path.isfile(job.file_path):
        raise _JobFailed("the uploaded file is gone from the server; upload it again")
    try:
        audio = load_audio(job.file_path, max_duration_s=settings.KEYWEB["MAX_DURATION_S"])
    except AudioDecodeError as error:
        message = decoder_message(error, path=Path(job.file_path), shown_name=job.original_filename)
        raise _JobFailed(message) from error
    if audio.size == 0:
        raise _JobFailed("the file holds no audio (0 frames)")
    backbone = backbone_for(version.backbone, version.backbone_checkpoint)
    window_embeddings = backbone.window_embeddings(audio)
    probabilities = predict_tracks(head_for(version).head, [window_embeddings])[0]
    best = int(np.argmax(probabilities))
    tuning = getattr(backbone, "estimate_tuning_cents", None)
    return {
        "model_version": version,
        "probabilities": [round(float(p), 6) for p in probabilities],
        "key_index": best,
        "confidence": float(probabilities[best]),
        "tuning_cents": float(tuning(audio)) if tuning is not None else None,
    }
