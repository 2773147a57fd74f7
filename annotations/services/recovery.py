"""Recovery from workers that died and messages the broker never got: stale claims are released and
re-run once (or failed with a reason when they keep dying), pending outbox messages are published, and
prediction-job uploads are deleted on schedule. Called by the recovery sweep (beat, worker start, and
self-scheduled while work is in flight) and before a training request; never needs a person."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import dispatch
from ..models import ModelVersion, PredictionJob, PretrainingRun, Track

logger = logging.getLogger(__name__)

# A training or prediction job is started at most this many times.
MAX_RUNS = 2


def stale_before():
    """Claims last renewed before this moment belong to a worker that stopped (KEYWEB_STALE_AFTER_S)."""
    return timezone.now() - timedelta(seconds=settings.KEYWEB["STALE_AFTER_S"])


@dataclass
class RecoveryReport:
    trainings: int = 0
    tracks: int = 0
    jobs: int = 0
    files: int = 0
    published: int = 0

    @property
    def total(self) -> int:
        return self.trainings + self.tracks + self.jobs + self.files + self.published


@transaction.atomic
def trainings_release_stale() -> int:
    """A training whose worker stopped renewing its heartbeat is queued again once, then failed."""
    stale = ModelVersion.objects.select_for_update(skip_locked=True).filter(
        Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True),
        status=ModelVersion.Status.TRAINING,
    )
    released = 0
    for version in stale:
        if version.attempts >= MAX_RUNS:
            ModelVersion.objects.filter(pk=version.pk).update(
                status=ModelVersion.Status.FAILED,
                in_progress=None,
                trained_at=timezone.now(),
                error=f"the training worker stopped {version.attempts} times during this training "
                "(killed or out of memory?); see the worker log, then retrain",
            )
            logger.warning(
                "model version %s failed: its worker stopped %d times", version.pk, version.attempts
            )
        else:
            ModelVersion.objects.filter(pk=version.pk).update(
                status=ModelVersion.Status.QUEUED, progress=0.0, heartbeat_at=None
            )
            dispatch.training_start(model_version_id=version.pk)
            logger.warning("model version %s: its training worker stopped; training again", version.pk)
        released += 1
    return released


@transaction.atomic
def pretrainings_release_stale() -> int:
    """A pretraining whose worker died is queued again and continues from its last checkpoint (it loses at
    most the steps since then); after KEYWEB_MAX_INTERRUPTIONS runs it is failed with the reason."""
    released = 0
    stale = PretrainingRun.objects.select_for_update(skip_locked=True).filter(
        Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True),
        status=PretrainingRun.Status.RUNNING,
    )
    for run in stale:
        if run.attempts >= settings.KEYWEB["MAX_INTERRUPTIONS"]:
            PretrainingRun.objects.filter(pk=run.pk).update(
                status=PretrainingRun.Status.FAILED,
                in_progress=None,
                finished_at=timezone.now(),
                error=f"the worker stopped {run.attempts} times during this pretraining; see the worker log",
            )
        else:
            PretrainingRun.objects.filter(pk=run.pk).update(status=PretrainingRun.Status.QUEUED)
            dispatch.pretraining_start(run_id=run.pk)
            logger.warning("pretraining run %s: its worker stopped; continuing from its checkpoint", run.pk)
        released += 1
    return released


@transaction.atomic
def trainings_requeue_lost(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """A version queued long ago with no message waiting (e.g. the broker restarted empty) is sent again,
    at most once per `older_than` (heartbeat_at marks the last send); the training task claims
    QUEUED → TRAINING, so a duplicate delivery does nothing."""
    cutoff = timezone.now() - older_than
    lost = [
        version.pk
        for version in ModelVersion.objects.filter(
            status=ModelVersion.Status.QUEUED, created_at__lt=cutoff
        ).filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        if not dispatch.is_pending(dispatch.TRAINING, version.pk)
    ]
    ModelVersion.objects.filter(pk__in=lost).update(heartbeat_at=timezone.now())
    for version_id in lost:
        dispatch.training_start(model_version_id=version_id)
    return len(lost)


@transaction.atomic
def analysis_release_stale() -> int:
    """Tracks whose analysis claim went stale go back to pending and are analysed again; a track that kept
    its worker from finishing KEYWEB_MAX_INTERRUPTIONS times is failed with the reason."""
    stale = list(
        Track.objects.select_for_update(skip_locked=True)
        .filter(status=Track.Status.PROCESSING, analysis_started_at__lt=stale_before())
        .values_list("id", "analysis_interruptions")
    )
    limit = settings.KEYWEB["MAX_INTERRUPTIONS"]
    give_up = [track_id for track_id, interruptions in stale if interruptions + 1 >= limit]
    retry = [track_id for track_id, interruptions in stale if interruptions + 1 < limit]
    Track.objects.filter(id__in=give_up).update(
        status=Track.Status.FAILED,
        analysis_interruptions=F("analysis_interruptions") + 1,
        error=f"the analysis worker stopped {limit} times while analysing this track (killed or out of "
        "memory?); see the worker log",
    )
    Track.objects.filter(id__in=retry).update(
        status=Track.Status.PENDING,
        analysis_interruptions=F("analysis_interruptions") + 1,
        analysis_started_at=None,
    )
    dispatch.analysis_start(track_ids=retry)
    if stale:
        logger.warning("released %d stale analysis claims (%d failed for good)", len(stale), len(give_up))
    return len(stale)


@transaction.atomic
def prediction_jobs_release_stale(*, queued_after: timedelta = timedelta(minutes=10)) -> int:
    """Running jobs whose worker stopped are run again once, then failed; queued jobs whose message was
    lost are sent again."""
    released = 0
    running = PredictionJob.objects.select_for_update(skip_locked=True).filter(
        status=PredictionJob.Status.RUNNING, started_at__lt=stale_before()
    )
    for job in running:
        if job.attempts >= MAX_RUNS:
            _job_file_delete(job)
            PredictionJob.objects.filter(pk=job.pk).update(
                status=PredictionJob.Status.FAILED,
                finished_at=timezone.now(),
                file_path="" if not job.keep_file else job.file_path,
                error=f"the worker stopped {job.attempts} times while predicting this file; upload it again",
            )
        else:
            PredictionJob.objects.filter(pk=job.pk).update(status=PredictionJob.Status.QUEUED)
            dispatch.prediction_job_start(job_id=str(job.pk))
        released += 1
    for job in PredictionJob.objects.filter(
        status=PredictionJob.Status.QUEUED, created_at__lt=timezone.now() - queued_after
    ):
        if not dispatch.is_pending(dispatch.PREDICTION_JOB, str(job.pk)):
            dispatch.prediction_job_start(job_id=str(job.pk))
            released += 1
    return released


def _job_file_delete(job: PredictionJob) -> bool:
    if not job.file_path or job.keep_file:
        return False
    Path(job.file_path).unlink(missing_ok=True)
    return True


def prediction_job_files_clean() -> int:
    """Uploads of finished jobs are deleted unless kept (a worker that died after finishing may not have)."""
    cleaned = 0
    for job in PredictionJob.objects.filter(
        status__in=[PredictionJob.Status.DONE, PredictionJob.Status.FAILED], keep_file=False
    ).exclude(file_path=""):
        _job_file_delete(job)
        PredictionJob.objects.filter(pk=job.pk).update(file_path="")
        cleaned += 1
    return cleaned


def recovery_sweep() -> RecoveryReport:
    """Everything above, then the outbox: what the broker missed is published once it is back."""
    report = RecoveryReport(
        trainings=trainings_release_stale() + trainings_requeue_lost() + pretrainings_release_stale(),
        tracks=analysis_release_stale(),
        jobs=prediction_jobs_release_stale(),
        files=prediction_job_files_clean(),
    )
    report.published = dispatch.outbox_flush()
    return report


def work_in_flight() -> bool:
    """Whether a later sweep may find something to recover (so a sweep schedules the next one)."""
    return (
        ModelVersion.objects.filter(in_progress=True).exists()
        or PretrainingRun.objects.filter(in_progress=True).exists()
        or Track.objects.filter(status__in=[Track.Status.PENDING, Track.Status.PROCESSING]).exists()
        or PredictionJob.objects.filter(
            status__in=[PredictionJob.Status.QUEUED, PredictionJob.Status.RUNNING]
        ).exists()
        or dispatch.outbox_size() > 0
    )
