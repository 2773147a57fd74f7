"""Model versions: request a training (never two at once), activate a version, decide when to retrain."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ModelVersion, Track
from .selectors import model_version_active

logger = logging.getLogger(__name__)


class TrainingQueueUnavailable(RuntimeError):
    """The broker could not take the training task."""


def _backbone_for_training() -> str:
    configured = settings.KEYWEB["BACKBONE"]
    if configured:
        return configured
    return "myna_vertical" if settings.KEYWEB["MYNA_CHECKPOINT"] else "pitch_class"


def model_training_request(
    *, user: AbstractBaseUser | None = None, reason: str = ""
) -> tuple[ModelVersion, bool]:
    """Queue a training; while one is queued or running, return that one instead (created=False)."""
    running = ModelVersion.objects.filter(in_progress=True).first()
    if running is not None:
        return running, False
    try:
        with transaction.atomic():
            number = ModelVersion.objects.filter(is_default=False).count() + 1
            version = ModelVersion.objects.create(
                name=f"v{number}",
                backbone=_backbone_for_training(),
                status=ModelVersion.Status.QUEUED,
                in_progress=True,
                requested_by=user if user is not None and user.is_authenticated else None,
                hyperparameters={"reason": reason} if reason else {},
            )
            transaction.on_commit(lambda: _queue_training(version.pk))
    except IntegrityError:  # another request won the race between our check and our insert
        return ModelVersion.objects.get(in_progress=True), False
    return version, True


def _queue_training(version_id: int) -> None:
    """Send the task; if the broker is unreachable, fail the version at once so it doesn't block every
    later training as a phantom 'queued' one."""
    from .tasks import train_model_task

    try:
        train_model_task.delay(version_id)
    except Exception as error:
        logger.exception("could not queue training of model version %s", version_id)
        ModelVersion.objects.filter(pk=version_id).update(
            status=ModelVersion.Status.FAILED,
            in_progress=None,
            error=f"the task queue (Redis) could not be reached, so training never started: {error}"[:2000],
        )
        raise TrainingQueueUnavailable(
            "the task queue is unreachable; training was not started — check that Redis and the workers run"
        ) from error


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one that predicts; re-predict every unlabeled track with it (in batches)."""
    if version.status != ModelVersion.Status.READY:
        raise ValueError(f"model {version.name} is {version.get_status_display().lower()}, not ready")
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    transaction.on_commit(lambda: tracks_repredict_queue(version_id=version.pk))
    return version


def tracks_repredict_queue(*, version_id: int, batch_size: int = 500) -> int:
    """Queue prediction of every unlabeled, analysed track by `version_id` in batches."""
    from .tasks import predict_tracks_task

    ids = list(
        Track.objects.filter(consensus_label="", status=Track.Status.READY).values_list("id", flat=True)
    )
    for start in range(0, len(ids), batch_size):
        predict_tracks_task.delay(ids[start : start + batch_size], version_id)
    return len(ids)


def labels_since_last_training() -> int:
    """Key labels that reached consensus after the newest trained (non-default) version was requested."""
    latest = ModelVersion.objects.filter(is_default=False).order_by("-created_at").first()
    labeled = Track.objects.filter(consensus_label="key")
    if latest is not None:
        labeled = labeled.filter(consensus_at__gt=latest.created_at)
    return labeled.count()


def retrain_if_due() -> ModelVersion | None:
    """The beat check: request a training once KEYWEB_RETRAIN_MIN_NEW_LABELS new labels arrived."""
    if labels_since_last_training() < settings.KEYWEB["RETRAIN_MIN_NEW_LABELS"]:
        return None
    version, created = model_training_request(reason="automatic: new labels")
    return version if created else None


def model_version_should_activate(*, candidate_weighted: float | None, active_weighted: float | None) -> bool:
    """Activate unless the candidate is worse than the active version beyond the tolerance."""
    if candidate_weighted is None:
        return False
    if active_weighted is None:
        return True
    return candidate_weighted >= active_weighted - settings.KEYWEB["ACTIVATION_TOLERANCE"]


def training_finished(*, version: ModelVersion, **fields) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(in_progress=None, trained_at=timezone.now(), **fields)


__all__ = [
    "model_training_request",
    "model_version_activate",
    "model_version_active",
    "retrain_if_due",
]
