"""The only module that publishes Celery work: each function says what it starts, sends the task by name
after the current transaction commits, and never imports `tasks` or `worker` (so the web side stays free
of torch). Routing to the `gpu` queue comes from CELERY_TASK_ROUTES, which `send_task` applies by name.

Every message is first written to the outbox (OutboxMessage) in the caller's transaction, so it exists
exactly when the data it refers to does. After commit it is published with a short timeout (a broker
outage never holds a request for more than ~2 s) and deleted; if the broker is down it stays, the caller's
request still succeeds with its work pending, and `outbox_flush` (the recovery sweep, and every later
successful publish) sends it once the broker is back. Tasks are idempotent, so a message sent twice
(published, then the delete failed) does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from keyweb.celery import app

from .models import OutboxMessage

logger = logging.getLogger(__name__)

# Every task name published from here (tests/annotations/test_dispatch.py checks each is registered).
ANALYSIS = "annotations.tasks.embed_tracks_task"
PREDICTION = "annotations.tasks.predict_tracks_task"
TRAINING = "annotations.tasks.train_model_task"
RERANK = "annotations.tasks.queue_rerank_task"
PREDICTION_JOB = "annotations.tasks.predict_file_task"
VISUALS = "annotations.tasks.track_visuals_task"
RECOVERY = "annotations.tasks.recovery_sweep_task"
PRETRAINING = "annotations.tasks.pretrain_backbone_task"
TASK_NAMES = (ANALYSIS, PREDICTION, TRAINING, RERANK, PREDICTION_JOB, VISUALS, RECOVERY, PRETRAINING)

# Tracks per analysis message: a GPU worker embeds a whole batch per forward pass.
ANALYSIS_BATCH = 16
PREDICTION_BATCH = 500


# Messages younger than this are left to the publisher that wrote them (it runs right after commit).
OUTBOX_GRACE = timedelta(seconds=10)


def _send(name: str, args: list) -> None:
    """One publish attempt with short timeouts and no retry loop: fail fast, the outbox keeps the message."""
    timeout = settings.KEYWEB["PUBLISH_TIMEOUT_S"]
    with app.connection_for_write(
        connect_timeout=timeout,
        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0},
    ) as connection:
        connection.ensure_connection(max_retries=0, timeout=timeout)
        app.send_task(name, args=args, connection=connection, retry=False)


def _publish(message_id: int, name: str, args: list) -> bool:
    try:
        _send(name, args)
    except Exception as error:  # the broker is unreachable: keep the message for the sweep
        logger.warning(
            "task queue unreachable, %s%s kept in the outbox for later: %s", name, tuple(args), error
        )
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=F("attempts") + 1, last_error=str(error)[:500]
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).delete()
    return True


def _after_commit(name: str, *args) -> None:
    message = OutboxMessage.objects.create(task_name=name, args=list(args))

    def publish() -> None:
        if _publish(message.pk, name, list(args)):
            outbox_flush(limit=50)

    transaction.on_commit(publish)


def outbox_flush(*, limit: int = 1000, grace: timedelta = OUTBOX_GRACE) -> int:
    """Publish messages the broker could not take earlier, oldest first; stop at the first failure (the
    broker is still down). Returns how many were sent."""
    sent = 0
    cutoff = timezone.now() - grace
    while sent < limit:
        try:
            with transaction.atomic():
                # A failed publish counted an attempt; a fresh message is left to its own publisher.
                message = (
                    OutboxMessage.objects.filter(Q(attempts__gt=0) | Q(created_at__lt=cutoff))
                    .select_for_update(skip_locked=True)
                    .order_by("id")
                    .first()
                )
                if message is None:
                    return sent
                _send(message.task_name, message.args)
                message.delete()
        except DatabaseError:
            raise
        except Exception as error:
            OutboxMessage.objects.filter(pk=message.pk).update(
                attempts=F("attempts") + 1, last_error=str(error)[:500]
            )
            logger.warning("task queue still unreachable; %d messages wait in the outbox", outbox_size())
            return sent
        sent += 1
    return sent


def outbox_size() -> int:
    return OutboxMessage.objects.count()


def is_pending(name: str, *args) -> bool:
    """True while a message for this task and these arguments waits for the broker."""
    return OutboxMessage.objects.filter(task_name=name, args=list(args)).exists()


def batches(ids: Sequence[int], size: int = ANALYSIS_BATCH):
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def analysis_start(*, track_ids: Sequence[int]) -> None:
    """Decode and embed these tracks (queue gpu), which then chains their prediction."""
    for batch in batches(track_ids, ANALYSIS_BATCH):
        _after_commit(ANALYSIS, batch)


def prediction_start(
    *, track_ids: Sequence[int], model_version_id: int | None = None, batch_size: int = PREDICTION_BATCH
) -> None:
    """Predict these tracks with a model version (default: the active one) from stored embeddings."""
    for batch in batches(track_ids, batch_size):
        _after_commit(PREDICTION, batch, model_version_id)


def training_start(*, model_version_id: int) -> None:
    """Train a queued model version (queue gpu)."""
    _after_commit(TRAINING, model_version_id)


def rerank_start() -> None:
    """Re-rank the head of the labeling queue for the diversity-aware strategy."""
    _after_commit(RERANK)


def prediction_job_start(*, job_id: str) -> None:
    """Predict the key of one uploaded file (a PredictionJob)."""
    _after_commit(PREDICTION_JOB, str(job_id))


def visuals_start(*, track_id: int) -> None:
    """Draw a long track's waveform and chromagram."""
    _after_commit(VISUALS, track_id)


def pretraining_start(*, run_id: int) -> None:
    """Pretrain the learned backbone on the library (queue gpu)."""
    _after_commit(PRETRAINING, run_id)
