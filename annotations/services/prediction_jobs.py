"""Key prediction for loose audio files (not in the library): store the upload, create the job, start it
after commit. The worker side is annotations.worker.prediction_jobs."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ml.audio import AudioDecodeError, probe

from .. import dispatch
from ..models import PredictionJob
from .tracks import AUDIO_EXTENSIONS, ImportRejected, decoder_message, duration_check

logger = logging.getLogger(__name__)


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
        shown_name = Path(original_name).name
        raise ImportRejected(decoder_message(error, path=upload_path, shown_name=shown_name)) from error
    duration_check(info.duration_s)
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
        dispatch.prediction_job_start(job_id=str(job.pk))
    return job


def prediction_job_delete(*, job: PredictionJob) -> None:
    """Forget a job and remove its file if one was kept (or is still waiting)."""
    if job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
    job.delete()
