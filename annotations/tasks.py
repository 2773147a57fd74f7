"""Celery tasks: thin shells that take ids, call annotations.worker (or a service) and chain what follows.
Published by name from annotations.dispatch; the web side never imports this module."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache

from .models import Track
from .selectors import queue_strategy_current, tracks_needing_work
from .services.model_versions import retrain_if_due
from .services.queue import leases_expire
from .services.recovery import recovery_sweep, work_in_flight
from .services.visuals import track_visuals_build_recorded
from .worker.analysis import TransientAnalysisError, tracks_embed
from .worker.prediction import tracks_predict
from .worker.prediction_jobs import prediction_job_run
from .worker.pretraining import pretraining_run
from .worker.rerank import queue_rerank_diverse
from .worker.training import model_train

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=30)
def embed_tracks_task(self, track_ids: list[int]) -> list[int]:
    """Decode and embed tracks (queue `gpu`), then predict them. Idempotent."""
    try:
        embedded = tracks_embed(track_ids=track_ids)
    except TransientAnalysisError as error:
        raise self.retry(exc=error) from error
    if embedded:
        predict_tracks_task.delay(embedded)
    return embedded


@shared_task(acks_late=True)
def predict_tracks_task(track_ids: list[int], model_version_id: int | None = None) -> int:
    """Predict with the active (or given) model version from stored embeddings. Idempotent."""
    stored = tracks_predict(track_ids=track_ids, model_version_id=model_version_id)
    if stored and queue_strategy_current() == "diverse":
        queue_rerank_task.delay()
    return stored


@shared_task
def leases_expire_task() -> int:
    """Return tracks whose lease ran out to the queue (beat, every minute)."""
    return leases_expire()


@shared_task
def analysis_sweep_task() -> int:
    """Re-queue tracks whose analysis never started or stalled, and predict analysed tracks that the
    active model has not seen (e.g. after the broker was down at import time). Beat, every 5 minutes."""
    to_embed, to_predict = tracks_needing_work()
    for start in range(0, len(to_embed), 32):
        embed_tracks_task.delay(to_embed[start : start + 32])
    for start in range(0, len(to_predict), 256):
        predict_tracks_task.delay(to_predict[start : start + 256])
    return len(to_embed) + len(to_predict)


@shared_task(acks_late=True)
def train_model_task(model_version_id: int) -> str:
    """Train a queued ModelVersion (queue `gpu`). A duplicate delivery finds it no longer QUEUED."""
    version = model_train(version_id=model_version_id)
    return "duplicate delivery: already started" if version is None else version.status


@shared_task(acks_late=True)
def pretrain_backbone_task(run_id: int) -> str:
    """Pretrain the learned backbone on the library (queue `gpu`); resumable, claimed once."""
    run = pretraining_run(run_id=run_id)
    return "duplicate delivery: already claimed" if run is None else run.status


@shared_task
def retrain_check_task() -> int | None:
    """Beat: request a training when enough new labels arrived since the last one."""
    version = retrain_if_due()
    return version.pk if version else None


@shared_task
def queue_rerank_task() -> int:
    """Re-rank the head of the queue for the diversity-aware strategy (after predictions, and on beat)."""
    if queue_strategy_current() != "diverse":
        return 0
    return len(queue_rerank_diverse())


@shared_task(acks_late=True)
def predict_file_task(job_id: str) -> str:
    """Predict the key of a loose uploaded file (a PredictionJob). A duplicate delivery finds it claimed."""
    job = prediction_job_run(job_id=job_id)
    return "duplicate delivery: already claimed" if job is None else job.status


@shared_task
def track_visuals_task(track_id: int) -> None:
    """Draw a long track's waveform and chromagram (asked for by the label page)."""
    track = Track.objects.filter(pk=track_id).first()
    if track is not None:
        track_visuals_build_recorded(track=track)


# While work is in flight, the sweep schedules its own next run, so a worker that died mid-batch or
# mid-training is recovered within STALE_AFTER_S + SWEEP_EVERY even where beat does not run.
_NEXT_SWEEP_KEY = "keyweb:recovery:next-sweep"


def _sweep_every_s() -> float:
    return min(30.0, max(5.0, settings.KEYWEB["STALE_AFTER_S"] / 2))


@shared_task
def recovery_sweep_task() -> int:
    """Release stale claims (training, analysis, prediction jobs) and publish what the broker missed
    (services/recovery.py). Beat runs it every minute; a starting worker runs it; it re-schedules itself."""
    cache.delete(_NEXT_SWEEP_KEY)
    report = recovery_sweep()
    if report.total:
        logger.info("recovery sweep: %s", report)
    if work_in_flight() and cache.add(_NEXT_SWEEP_KEY, 1, timeout=int(_sweep_every_s() * 2)):
        recovery_sweep_task.apply_async(countdown=_sweep_every_s())
    return report.total


@worker_ready.connect
def _recover_on_start(sender=None, **kwargs) -> None:
    """A worker that starts (e.g. after one was killed) looks for abandoned work at once."""
    try:
        recovery_sweep_task.apply_async()
    except Exception as error:  # the broker is down: beat or the next start will sweep
        logger.warning("could not schedule the recovery sweep at worker start: %s", error)
