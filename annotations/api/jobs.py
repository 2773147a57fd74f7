"""Key prediction for loose audio files (not in the library): the web side stores the upload and queues a
job; the worker side (`prediction_job_run`, called by annotations.tasks.predict_file_task) decodes, embeds
and predicts with the active model. ml is imported inside the worker function only."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ml.audio import AudioDecodeError, probe

from ..models import ModelVersion, PredictionJob
from ..selectors import model_version_active
from ..services import AUDIO_EXTENSIONS, ImportRejected

logger = logging.getLogger(__name__)

STALE_RUNNING = timedelta(minutes=30)


def prediction_jobs_dir() -> Path:
    """Under MEDIA_ROOT: the one folder the web and worker containers share (docker/compose.yml)."""
    return Path(settings.MEDIA_ROOT) / "prediction-jobs"


def prediction_job_submit(
    *, upload_path: Path, original_name: str, user: AbstractBaseUser, keep_file: bool = False
) -> PredictionJob:
    """Check the file is audio (header only, so the answer comes at once), move it under the jobs folder
    and queue the prediction after commit. Raises ImportRejected with the reason."""
    suffix = Path(original_name).suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise ImportRejected(
            f"unsupported file type {suffix or '(none)'!r}; KeyWeb reads "
            + ", ".join(sorted(set(AUDIO_EXTENSIONS.values())))
        )
    try:
        info = probe(upload_path)
    except AudioDecodeError as error:
        raise ImportRejected(str(error).removeprefix(f"{upload_path}: ")) from error
    if info.duration_s > settings.KEYWEB["MAX_DURATION_S"] + 1.0:
        raise ImportRejected(
            f"audio is too long ({info.duration_s / 60:.1f} min; the limit is "
            f"{settings.KEYWEB['MAX_DURATION_S'] / 60:.1f} min)"
        )
    job_id = uuid.uuid4()
    folder = prediction_jobs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"{job_id}{suffix}"
    shutil.move(upload_path, stored)
    with transaction.atomic():
        job = PredictionJob.objects.create(
            id=job_id,
            user=user if user.is_authenticated else None,
            original_filename=Path(original_name).name[:500],
            file_path=str(stored),
            keep_file=keep_file,
        )
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(job_id) -> None:
    from ..tasks import predict_file_task

    predict_file_task.delay(str(job_id))


def prediction_job_delete(*, job: PredictionJob) -> None:
    """Forget a job and remove its file if one was kept (or is still waiting)."""
    if job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
    job.delete()


# --- worker side -----------------------------------------------------------------------------------

_backbones: dict[str, object] = {}


def _backbone(name: str):
    from ml.backbones import get_backbone

    if name not in _backbones:
        _backbones[name] = get_backbone(name)
    return _backbones[name]


def prediction_job_run(*, job_id: str) -> PredictionJob | None:
    """Predict the key of a queued job's file with the active model. A second delivery of the same job
    finds it already claimed and does nothing (returns None)."""
    # A job left RUNNING by a worker that died is claimed again once it is clearly stale.
    stale = Q(status=PredictionJob.Status.RUNNING, created_at__lt=timezone.now() - STALE_RUNNING)
    claimed = (
        PredictionJob.objects.filter(pk=job_id)
        .filter(Q(status=PredictionJob.Status.QUEUED) | stale)
        .update(status=PredictionJob.Status.RUNNING)
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
    import numpy as np

    from ml.audio import load_audio
    from ml.heads import predict_tracks

    from ..pipeline import head_load_cached

    version: ModelVersion | None = model_version_active()
    if version is None or version.status != ModelVersion.Status.READY:
        raise _JobFailed("there is no active model to predict with; an admin must train or activate one")
    if not job.file_path or not os.path.isfile(job.file_path):
        raise _JobFailed("the uploaded file is gone from the server; upload it again")
    try:
        audio = load_audio(job.file_path, max_duration_s=settings.KEYWEB["MAX_DURATION_S"])
    except AudioDecodeError as error:
        raise _JobFailed(str(error).removeprefix(f"{job.file_path}: ")) from error
    if audio.size == 0:
        raise _JobFailed("the file holds no audio (0 frames)")
    backbone = _backbone(version.backbone)
    window_embeddings = backbone.window_embeddings(audio)
    probabilities = predict_tracks(head_load_cached(version).head, [window_embeddings])[0]
    best = int(np.argmax(probabilities))
    tuning = getattr(backbone, "estimate_tuning_cents", None)
    return {
        "model_version": version,
        "probabilities": [round(float(p), 6) for p in probabilities],
        "key_index": best,
        "confidence": float(probabilities[best]),
        "tuning_cents": float(tuning(audio)) if tuning is not None else None,
    }
