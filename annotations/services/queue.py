"""The labeling queue: serve the most informative track under a lease, take submissions, skips, undo and
review decisions, switch the ordering strategy. The label page and REST clients both call these through
/api/v1/queue/*."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from ml.active import STRATEGIES, stable_random_score

from .. import dispatch
from ..models import Annotation, Prediction, QueueSettings, Skip, Track
from ..selectors import model_version_active, queue_strategy_current, tracks_open_for
from .labels import LabelValue, track_consensus_refresh

UNDO_WINDOW = timedelta(hours=1)
# How many of the latest labels decide whether the held-out split is due (see _split_to_serve).
RECENT_LABELS = 1000


class QueueError(ValueError):
    """A request the queue refuses, with a reason the annotator can act on."""


def _split_to_serve() -> str:
    """Serve held-out tracks often enough that they make up ~TEST_FRACTION of the most recent labels, and so,
    window after window, of all labels. They are drawn in hash order, not by uncertainty, so the test split
    stays an unbiased sample. A fixed window costs the same at any size; counting every labeled track took
    100–300 ms per call at a million tracks (docs/benchmarks.md, "Queue at scale")."""
    recent = list(
        Track.objects.filter(consensus_at__isnull=False)
        .exclude(consensus_label="")
        .order_by("-consensus_at")
        .values_list("split", flat=True)[:RECENT_LABELS]
    )
    test = recent.count(Track.Split.TEST)
    return (
        Track.Split.TEST if test < settings.KEYWEB["TEST_FRACTION"] * (len(recent) + 1) else Track.Split.POOL
    )


@transaction.atomic
def queue_next(*, user: AbstractBaseUser) -> Track | None:
    """Lease and return the next track for `user`; the same track again while their lease holds."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.KEYWEB["LEASE_SECONDS"])
    held = (
        tracks_open_for(user=user, now=now)
        .filter(lease_user=user, lease_expires_at__gte=now)
        .select_for_update(skip_locked=True)
        .first()
    )
    if held is not None:
        Track.objects.filter(pk=held.pk).update(lease_expires_at=lease_until)
        return held
    preferred = _split_to_serve()
    for split in (preferred, Track.Split.POOL if preferred == Track.Split.TEST else Track.Split.TEST):
        ordering = ("content_hash",) if split == Track.Split.TEST else ("-priority", "id")
        candidate = (
            tracks_open_for(user=user, now=now)
            .filter(split=split)
            .order_by(*ordering)
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if candidate is not None:
            # Conditional update: if another transaction leased it meanwhile (SQLite has no row locks),
            # nothing changes and we try the next one.
            leased = (
                Track.objects.filter(pk=candidate.pk)
                .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_user=user))
                .update(lease_user=user, lease_expires_at=lease_until)
            )
            if leased:
                candidate.lease_user, candidate.lease_expires_at = user, lease_until
                return candidate
    return None


@transaction.atomic
def annotation_submit(
    *,
    user: AbstractBaseUser,
    track: Track,
    label: LabelValue,
    tuning_cents: float | None = None,
    time_spent_s: float | None = None,
    notes: str = "",
) -> Annotation:
    """Record `user`'s label for `track`, release the lease, refresh the consensus."""
    if tuning_cents is not None and not -50 <= tuning_cents <= 50:
        raise QueueError("tuning offset must be between -50 and +50 cents")
    if time_spent_s is not None and time_spent_s < 0:
        raise QueueError("time spent cannot be negative")
    if track.status == Track.Status.FAILED:
        raise QueueError("this track failed analysis and cannot be labeled")
    try:
        with transaction.atomic():
            annotation = Annotation.objects.create(
                track=track,
                annotator=user,
                label=label.label,
                key_index=label.key.index if label.key else None,
                tuning_cents=tuning_cents,
                time_spent_s=time_spent_s,
                notes=notes[:5000],
            )
    except IntegrityError as error:
        raise QueueError("you have already labeled this track; undo your label first to change it") from error
    Track.objects.filter(pk=track.pk, lease_user=user).update(lease_user=None, lease_expires_at=None)
    track_consensus_refresh(track=track)
    return annotation


@transaction.atomic
def annotation_undo(*, user: AbstractBaseUser) -> Track | None:
    """Withdraw `user`'s most recent label (within the undo window) and lease the track back to them."""
    annotation = (
        Annotation.objects.filter(
            annotator=user, source=Annotation.Source.ANNOTATOR, created_at__gte=timezone.now() - UNDO_WINDOW
        )
        .select_related("track")
        .order_by("-created_at", "-id")
        .first()
    )
    if annotation is None:
        return None
    track = annotation.track
    annotation.delete()
    # The user holds one lease at a time: release the track served after the withdrawn label.
    Track.objects.filter(lease_user=user).exclude(pk=track.pk).update(lease_user=None, lease_expires_at=None)
    Track.objects.filter(pk=track.pk).update(
        lease_user=user, lease_expires_at=timezone.now() + timedelta(seconds=settings.KEYWEB["LEASE_SECONDS"])
    )
    return track_consensus_refresh(track=track)


@transaction.atomic
def queue_skip(*, user: AbstractBaseUser, track: Track) -> Skip:
    """Pass on a track: recorded, lease released, not served to this user again for a day."""
    Track.objects.filter(pk=track.pk, lease_user=user).update(lease_user=None, lease_expires_at=None)
    return Skip.objects.create(track=track, annotator=user)


@transaction.atomic
def queue_skip_put_back(*, user: AbstractBaseUser, track: Track) -> int:
    """Forget `user`'s skips of `track`, so the queue may serve it to them again."""
    deleted, _ = Skip.objects.filter(annotator=user, track=track).delete()
    return deleted


@transaction.atomic
def review_decide(*, reviewer: AbstractBaseUser, track: Track, label: LabelValue, notes: str = "") -> Track:
    """A reviewer's decision becomes the consensus of a disputed (or any) track."""
    Annotation.objects.filter(track=track, source=Annotation.Source.REVIEW).delete()
    Annotation.objects.create(
        track=track,
        annotator=reviewer,
        label=label.label,
        key_index=label.key.index if label.key else None,
        source=Annotation.Source.REVIEW,
        notes=notes[:5000],
    )
    return track_consensus_refresh(track=track)


@transaction.atomic
def queue_strategy_set(*, strategy: str) -> str:
    """Switch the ordering strategy and re-rank every open track from its stored prediction."""
    if strategy not in STRATEGIES:
        raise QueueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    settings_row, _ = QueueSettings.objects.get_or_create(pk=1)
    settings_row.strategy = strategy
    settings_row.save()
    queue_priorities_refresh()
    if strategy == "diverse":
        dispatch.rerank_start()
    return strategy


def queue_priorities_refresh() -> int:
    """Set Track.priority from the active model's stored predictions under the current strategy (one
    UPDATE per chunk; the diversity-aware strategy is refined by annotations.worker.rerank)."""
    strategy = queue_strategy_current()
    active = model_version_active()
    if active is None:
        return 0
    expression = {
        "entropy": F("entropy"),
        "diverse": F("entropy"),
        "margin": 1.0 - F("margin"),
        "least_confidence": 1.0 - F("confidence"),
    }.get(strategy)
    updated = 0
    open_tracks = Track.objects.filter(consensus_label="")
    if strategy == "random":
        for track_id, content_hash in open_tracks.values_list("id", "content_hash").iterator(chunk_size=5000):
            updated += Track.objects.filter(pk=track_id).update(priority=stable_random_score(content_hash))
        return updated
    score = Prediction.objects.filter(track=OuterRef("pk"), model_version=active).annotate(score=expression)
    return open_tracks.filter(predictions__model_version=active).update(
        priority=Subquery(score.values("score")[:1])
    )


def leases_expire() -> int:
    """Clear leases that ran out, returning their tracks to the queue."""
    return Track.objects.filter(lease_expires_at__lt=timezone.now()).update(
        lease_user=None, lease_expires_at=None
    )
