"""Model versions: request a training (never two at once), activate a version, decide when to retrain."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import dispatch
from ..models import ModelVersion, Track
from ..selectors import backbone_checkpoint_current, backbone_name_configured, labels_since_last_training
from .recovery import trainings_release_stale

logger = logging.getLogger(__name__)


def model_training_request(
    *, user: AbstractBaseUser | None = None, reason: str = ""
) -> tuple[ModelVersion, bool]:
    """Queue a training; while one is queued or running, return that one instead (created=False).

    The database allows one version in progress (constraint one_training_at_a_time), so parallel requests
    create one. A training whose worker died is released first, so it cannot block every later request.
    If the broker is down the version stays queued and starts once it is back (dispatch's outbox).
    """
    trainings_release_stale()
    backbone = backbone_name_configured()
    running = ModelVersion.objects.filter(in_progress=True).first()
    if running is not None:
        return running, False
    try:
        with transaction.atomic():
            number = ModelVersion.objects.filter(is_default=False).count() + 1
            version = ModelVersion.objects.create(
                name=f"v{number}",
                backbone=backbone,
                backbone_checkpoint=backbone_checkpoint_current(backbone),
                status=ModelVersion.Status.QUEUED,
                in_progress=True,
                requested_by=user if user is not None and user.is_authenticated else None,
                hyperparameters={"reason": reason} if reason else {},
            )
            dispatch.training_start(model_version_id=version.pk)
    except IntegrityError:  # another request won the race between our check and our insert
        return ModelVersion.objects.get(in_progress=True), False
    return version, True


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one that predicts; re-predict every analysed track with it, labeled ones too, so
    the Tracks page and exports always show the active version's opinion (in batches)."""
    if version.status != ModelVersion.Status.READY:
        raise ValueError(f"model {version.name} is {version.get_status_display().lower()}, not ready")
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    tracks_repredict_queue(version_id=version.pk)
    return version


def tracks_repredict_queue(*, version_id: int, batch_size: int = 500) -> int:
    """Start prediction of every analysed track by `version_id`, open tracks first (they feed the queue)."""
    ids = list(
        Track.objects.filter(status=Track.Status.READY)
        .order_by("consensus_label", "id")
        .values_list("id", flat=True)
    )
    dispatch.prediction_start(track_ids=ids, model_version_id=version_id, batch_size=batch_size)
    return len(ids)


def retrain_if_due() -> ModelVersion | None:
    """The beat check: request a training once KEYWEB_RETRAIN_MIN_NEW_LABELS new labels arrived."""
    if labels_since_last_training() < settings.KEYWEB["RETRAIN_MIN_NEW_LABELS"]:
        return None
    version, created = model_training_request(reason="automatic: new labels")
    return version if created else None


# Bootstrap resamples for the activation rule; seeded, so a decision can be reproduced from its inputs.
BOOTSTRAP_SAMPLES = 2000
# The candidate may be at most this likely (by paired bootstrap) to be worse beyond the tolerance.
MAX_RISK_OF_WORSE = 0.2
# …and its calibration error at most this much above the active version's.
ECE_MARGIN = 0.05


def activation_decide(
    *,
    candidate_scores: Sequence[float],
    active_scores: Sequence[float] | None,
    candidate_ece: float | None,
    active_ece: float | None,
) -> dict:
    """Whether a newly trained version should replace the active one, and why, from per-track mir_eval
    weighted scores of BOTH versions on the SAME held-out tracks (`active_scores` None: there is no
    active version that can predict with today's backbone, so anything usable beats nothing).

    Rule: at least KEYWEB_ACTIVATION_MIN_TRACKS tracks; the candidate's mean is not below the active
    one's; a paired bootstrap over tracks puts at most MAX_RISK_OF_WORSE probability on the candidate
    being worse by more than KEYWEB_ACTIVATION_TOLERANCE; its ECE is at most ECE_MARGIN above.
    """
    n = len(candidate_scores)
    decision = {"n": n, "candidate_ece": candidate_ece, "active_ece": active_ece}
    if active_scores is None:
        return {
            **decision,
            "activate": n > 0,
            "reason": "no active model can predict with today's backbone"
            if n
            else "no labeled held-out tracks to measure it on",
        }
    minimum = settings.KEYWEB["ACTIVATION_MIN_TRACKS"]
    if n < minimum:
        return {
            **decision,
            "activate": False,
            "reason": f"only {n} labeled held-out tracks; activation needs {minimum} to compare versions "
            "(KEYWEB_ACTIVATION_MIN_TRACKS) — activate it by hand if you trust it",
        }
    differences = np.asarray(candidate_scores, dtype=float) - np.asarray(active_scores, dtype=float)
    rng = np.random.default_rng(0)
    resampled = differences[rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))].mean(axis=1)
    tolerance = settings.KEYWEB["ACTIVATION_TOLERANCE"]
    mean = float(differences.mean())
    risk = float((resampled < -tolerance).mean())
    low, high = (float(v) for v in np.quantile(resampled, [0.05, 0.95]))
    decision.update(mean_difference=mean, risk_of_worse=risk, interval_90=[low, high])
    if mean < 0:
        return {
            **decision,
            "activate": False,
            "reason": f"worse on the same {n} tracks ({mean:+.3f} weighted)",
        }
    if risk > MAX_RISK_OF_WORSE:
        return {
            **decision,
            "activate": False,
            "reason": f"not clearly as good: {risk:.0%} bootstrap chance of being worse by more than "
            f"{tolerance} on the same {n} tracks",
        }
    if candidate_ece is not None and active_ece is not None and candidate_ece > active_ece + ECE_MARGIN:
        return {
            **decision,
            "activate": False,
            "reason": f"less well calibrated (ECE {candidate_ece:.3f} vs {active_ece:.3f})",
        }
    return {
        **decision,
        "activate": True,
        "reason": f"{mean:+.3f} weighted on the same {n} tracks (90% interval {low:+.3f} to {high:+.3f})",
    }


def training_finished(*, version: ModelVersion, **fields) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(in_progress=None, trained_at=timezone.now(), **fields)
