"""The only module that publishes Celery work: each function says what it starts, sends the task by name
after the current transaction commits, and never imports `tasks` or `worker` (so the web side stays free
of torch). Routing to the `gpu` queue comes from CELERY_TASK_ROUTES, which `send_task` applies by name.

Inside a transaction the message goes out only once the data it refers to is committed; outside one it
goes out at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

from keyweb.celery import app

logger = logging.getLogger(__name__)

# Every task name published from here (tests/annotations/test_dispatch.py checks each is registered).
ANALYSIS = "annotations.tasks.embed_tracks_task"
PREDICTION = "annotations.tasks.predict_tracks_task"
TRAINING = "annotations.tasks.train_model_task"
RERANK = "annotations.tasks.queue_rerank_task"
PREDICTION_JOB = "annotations.tasks.predict_file_task"
VISUALS = "annotations.tasks.track_visuals_task"
TASK_NAMES = (ANALYSIS, PREDICTION, TRAINING, RERANK, PREDICTION_JOB, VISUALS)

# Tracks per analysis message: a GPU worker embeds a whole batch per forward pass.
ANALYSIS_BATCH = 16
PREDICTION_BATCH = 500


def _send(name: str, *args) -> None:
    app.send_task(name, args=list(args))


def _after_commit(name: str, *args, on_error: Callable[[Exception], None] | None = None) -> None:
    def publish() -> None:
        try:
            _send(name, *args)
        except Exception as error:
            if on_error is None:
                raise
            on_error(error)

    transaction.on_commit(publish)


def _batches(ids: Sequence[int], size: int):
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def analysis_start(*, track_ids: Sequence[int]) -> None:
    """Decode and embed these tracks (queue gpu), which then chains their prediction."""
    for batch in _batches(track_ids, ANALYSIS_BATCH):
        _after_commit(ANALYSIS, batch)


def prediction_start(
    *, track_ids: Sequence[int], model_version_id: int | None = None, batch_size: int = PREDICTION_BATCH
) -> None:
    """Predict these tracks with a model version (default: the active one) from stored embeddings."""
    for batch in _batches(track_ids, batch_size):
        _after_commit(PREDICTION, batch, model_version_id)


def training_start(*, model_version_id: int, on_error: Callable[[Exception], None] | None = None) -> None:
    """Train a queued model version (queue gpu). `on_error` runs if the broker refuses the message."""
    _after_commit(TRAINING, model_version_id, on_error=on_error)


def rerank_start() -> None:
    """Re-rank the head of the labeling queue for the diversity-aware strategy."""
    _after_commit(RERANK)


def prediction_job_start(*, job_id: str) -> None:
    """Predict the key of one uploaded file (a PredictionJob)."""
    _after_commit(PREDICTION_JOB, str(job_id))


def visuals_start(*, track_id: int) -> None:
    """Draw a long track's waveform and chromagram."""
    _after_commit(VISUALS, track_id)
