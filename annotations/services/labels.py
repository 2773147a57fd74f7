"""Labels as data: what a person said about a track (LabelValue), trusted imported labels, and the
consensus that turns annotations into a track's label."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ml.keys import NO_KEY_LABELS, Key

from ..models import Annotation, QueueSettings, Track
from ..selectors import track_wants_second_opinion


@dataclass(frozen=True)
class LabelValue:
    """What a person said about a track: a key, or one of the no-key labels."""

    label: str
    key: Key | None = None

    @classmethod
    def parse(cls, text: str) -> LabelValue:
        cleaned = text.strip()
        normalised = cleaned.lower().replace("-", "_").replace(" ", "_")
        if normalised in NO_KEY_LABELS:
            return cls(label=normalised)
        if normalised in ("x", "n", "none", "atonal"):
            return cls(label=Annotation.Label.NO_KEY)
        return cls(label=Annotation.Label.KEY, key=Key.parse(cleaned))


@transaction.atomic
def annotation_import(*, track: Track, label: LabelValue, user: AbstractBaseUser | None = None) -> bool:
    """Attach an existing label (from a CSV or dataset) as a trusted annotation; idempotent per track."""
    if Annotation.objects.filter(track=track, source=Annotation.Source.IMPORT).exists():
        return False
    Annotation.objects.create(
        track=track,
        annotator=user if user is not None and user.is_authenticated else None,
        label=label.label,
        key_index=label.key.index if label.key else None,
        source=Annotation.Source.IMPORT,
    )
    track_consensus_refresh(track=track)
    return True


def _opinions_required(track: Track) -> int:
    required = settings.KEYWEB["ANNOTATIONS_REQUIRED"]
    return max(required, 2) if track_wants_second_opinion(track) else required


@transaction.atomic
def track_consensus_refresh(*, track: Track) -> Track:
    """Recompute consensus from the annotations: review decision > imported label > agreeing annotators."""
    track = Track.objects.select_for_update().get(pk=track.pk)
    annotations = list(track.annotations.order_by("id"))
    by_annotators = [a for a in annotations if a.source == Annotation.Source.ANNOTATOR]
    decided = [a for a in annotations if a.source in (Annotation.Source.REVIEW, Annotation.Source.IMPORT)]
    track.annotation_count = len(by_annotators)
    consensus: Annotation | None = None
    track.needs_review = False
    if decided:
        consensus = max(decided, key=lambda a: (a.source == Annotation.Source.REVIEW, a.id))
    elif len(by_annotators) >= _opinions_required(track):
        opinions = {(a.label, a.key_index) for a in by_annotators}
        if len(opinions) == 1:
            consensus = by_annotators[-1]
        else:
            track.needs_review = True
    if consensus is None:
        track.consensus_label, track.consensus_key, track.consensus_at = "", None, None
    elif (track.consensus_label, track.consensus_key) != (consensus.label, consensus.key_index):
        track.consensus_label, track.consensus_key = consensus.label, consensus.key_index
        track.consensus_at = timezone.now()
    track.save(
        update_fields=["annotation_count", "needs_review", "consensus_label", "consensus_key", "consensus_at"]
    )
    return track


@transaction.atomic
def second_opinion_share_set(*, share: float) -> float:
    """Set the share of tracks that wait for a second annotator (0 turns second opinions off)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("the second-opinion share must be between 0 and 1")
    QueueSettings.objects.update_or_create(pk=1, defaults={"second_opinion_share": share})
    return share


@transaction.atomic
def blind_names_set(*, hidden: bool) -> bool:
    """Turn blind labeling on or off (annotators see "Track 1234" instead of names)."""
    QueueSettings.objects.update_or_create(pk=1, defaults={"blind_names": hidden})
    return hidden
