"""Requesting self-supervised pretraining of the learned backbone: one run at a time (database
constraint), started on the gpu queue after commit; a run whose worker died is continued from its last
checkpoint by the recovery sweep."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import dispatch
from ..models import PretrainingRun

logger = logging.getLogger(__name__)

PRETRAINABLE = ("skey",)


class PretrainingRefused(ValueError):
    """A request that cannot start a pretraining, with the reason."""


def pretraining_request(
    *,
    user: AbstractBaseUser | None = None,
    steps: int | None = None,
    backbone: str = "skey",
    on_worker: bool = True,
) -> tuple[PretrainingRun, bool]:
    """Queue a pretraining run; while one is queued or running, return it instead (created=False).

    `on_worker=False` leaves it queued for the caller to run in its own process (manage.py
    pretrain_backbone); if that process dies, the recovery sweep hands the run to a worker, which resumes it.
    """
    if backbone not in PRETRAINABLE:
        raise PretrainingRefused(f"only {', '.join(PRETRAINABLE)} can be pretrained, not {backbone!r}")
    steps = steps or settings.KEYWEB["PRETRAINING_STEPS"]
    if steps < 1:
        raise PretrainingRefused("steps must be at least 1")
    running = PretrainingRun.objects.filter(in_progress=True).first()
    if running is not None:
        return running, False
    try:
        with transaction.atomic():
            run = PretrainingRun.objects.create(
                backbone=backbone,
                steps_total=steps,
                in_progress=True,
                requested_by=user if user is not None and user.is_authenticated else None,
            )
            if on_worker:
                dispatch.pretraining_start(run_id=run.pk)
    except IntegrityError:  # another request won the race
        return PretrainingRun.objects.get(in_progress=True), False
    return run, True


def pretraining_finished(*, run_id: int, **fields) -> None:
    PretrainingRun.objects.filter(pk=run_id).update(in_progress=None, finished_at=timezone.now(), **fields)


def held_out_text(held_out: dict | None) -> str:
    """A run's held-out comparison in one line (the command and the worker log; the dashboard has its own)."""
    if held_out and held_out.get("error"):
        return f"measuring it on the held-out tracks failed ({held_out['error']}); the checkpoint is usable"
    if not held_out or not held_out.get("n"):
        return "no held-out track has a key label yet, so nothing measured what it bought"
    after = held_out["after"]
    tracks = f"{held_out['n']} held-out track{'' if held_out['n'] == 1 else 's'}"
    if held_out.get("before") is None:
        return f"weighted {after['weighted']:.3f} on {tracks} (it started from random weights)"
    gain = held_out["gain"]
    low, high = gain["ci95"]
    return (
        f"weighted {held_out['before']['weighted']:.3f} → {after['weighted']:.3f} on {tracks} "
        f"(gain {gain['mean']:+.3f}, 95 % interval {low:+.3f} to {high:+.3f})"
    )
