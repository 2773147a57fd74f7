"""Model versions: request a training (never two at once), activate a version, decide when to retrain."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.selectors import backbone_name_configured, labels_since_last_training

from .. import dispatch
from ..models import ModelVersion, Track

logger = logging.getLogger(__name__)


class TrainingQueueUnavailable(RuntimeError):
    """The broker could not take the training task."""


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
                backbone=backbone_name_configured(),
                status=ModelVersion.Status.QUEUED,
                in_progress=True,
                requested_by=user if user is not None and user.is_authenticated else None,
                hyperparameters={"reason": reason} if reason else {},
            )
            dispatch.training_start(model_version_id=version.pk, on_error=_training_unqueued(version.pk))
    except IntegrityError:  # another request won the race between our check and our insert
        return ModelVersion.objects.get(in_progress=True), False
    return version, True


def _training_unqueued(version_id: int):
    """What to do if the broker refuses the training message: fail the version at once so it does not
    block every later training as a phantom 'queued' one, and tell the caller."""

    def fail(error: Exception) -> None:
        logger.exception("could not queue training of model version %s", version_id)
        ModelVersion.objects.filter(pk=version_id).update(
            status=ModelVersion.Status.FAILED,
            in_progress=None,
            error=f"the task queue (Redis) could not be reached, so training never started: {error}"[:2000],
        )
        raise TrainingQueueUnavailable(
            "the task queue is unreachable; training was not started — check that Redis and the workers run"
        ) from error

    return fail


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one that predicts; re-predict every unlabeled track with it (in batches)."""
    if version.status != ModelVersion.Status.READY:
        raise ValueError(f"model {version.name} is {version.get_status_display().lower()}, not ready")
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    tracks_repredict_queue(version_id=version.pk)
    return version


def tracks_repredict_queue(*, version_id: int, batch_size: int = 500) -> int:
    """Start prediction of every unlabeled, analysed track by `version_id`, in batches."""
    ids = list(
        Track.objects.filter(consensus_label="", status=Track.Status.READY).values_list("id", flat=True)
    )
    dispatch.prediction_start(track_ids=ids, model_version_id=version_id, batch_size=batch_size)
    return len(ids)


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
