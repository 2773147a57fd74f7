"""Reads, one function per question: what pages, the API, services and the worker need to know. No writes,
no torch, nothing that publishes work. The dashboard's figures are in selectors.dashboard."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.cache import cache
from django.db.models import (
    Count,
    Exists,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.utils import timezone

from ml.active import stable_random_score
from ml.backbones import default_backbone_name
from ml.keys import Key

from ..models import (
    Annotation,
    ModelVersion,
    Prediction,
    PredictionJob,
    PretrainingRun,
    QueueSettings,
    Skip,
    Track,
)
from ..permissions import user_is_admin, user_is_reviewer

# A track skipped by an annotator is not served to them again for this long.
SKIP_MEMORY = timedelta(hours=24)


# --- configuration and the model ------------------------------------------------------------------------


def backbone_name_configured() -> str:
    """The one backbone rule: KEYWEB_BACKBONE if set, else ml's default (Myna-Vertical when
    MYNA_CHECKPOINT names an existing file). Training requests and the worker both ask this."""
    return settings.KEYWEB["BACKBONE"] or default_backbone_name()


def backbone_checkpoint_current(backbone: str) -> str:
    """The newest finished pretraining checkpoint for `backbone`, which new trainings use; blank for the
    backbone's shipped weights."""
    run = PretrainingRun.objects.filter(backbone=backbone, status=PretrainingRun.Status.READY).first()
    return run.checkpoint_path if run is not None else ""


def blind_names_enabled() -> bool:
    return bool(QueueSettings.objects.filter(pk=1).values_list("blind_names", flat=True).first())


def names_hidden_for(user) -> bool:
    """Whether `user` is shown tracks without their names (blind mode on, and not a reviewer or admin)."""
    return not user_is_reviewer(user) and blind_names_enabled()


def second_opinion_share() -> float:
    stored = QueueSettings.objects.filter(pk=1).values_list("second_opinion_share", flat=True).first()
    return float(settings.KEYWEB["SECOND_OPINION_SHARE"] if stored is None else stored)


def track_wants_second_opinion(track: Track, *, share: float | None = None) -> bool:
    """Whether this track waits for a second annotator: a stable draw from its content hash, so the same
    tracks are chosen on every machine and a share raised later only adds tracks."""
    share = second_opinion_share() if share is None else share
    return stable_random_score(track.content_hash, salt="second-opinion:") < share


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def queue_strategy_current() -> str:
    stored = QueueSettings.objects.filter(pk=1).values_list("strategy", flat=True).first()
    return stored or settings.KEYWEB["QUEUE_STRATEGY"]


def queue_priority_from_scores(track: Track, scores: dict[str, float], strategy: str | None = None) -> float:
    """The number the queue sorts by (higher first) for one track under a strategy.

    `scores` are the prediction's uncertainty scores (ml.active.uncertainty_scores). The diversity-aware
    strategy starts from entropy; its batch selection re-ranks the top of the queue in a worker task.
    """
    strategy = strategy or queue_strategy_current()
    if strategy == "random":
        return stable_random_score(track.content_hash)
    if strategy == "diverse":
        return float(scores["entropy"])
    return float(scores[strategy])


# ?notation= values → attribute of ml.keys.Key ("openkey" is the spelling clients use for Open Key).
NOTATIONS = {
    "mir_eval": "mir_eval",
    "camelot": "camelot",
    "openkey": "open_key",
    "open_key": "open_key",
    "jams": "jams",
    "id3": "id3",
}


def key_text(key: Key | None, notation: str = "mir_eval") -> str | None:
    return key.to(NOTATIONS[notation]) if key is not None else None


def tracks_with_active_prediction(*, active: ModelVersion | None = None) -> QuerySet[Track]:
    """Tracks annotated with `active_key_index` and `active_confidence` from the active model (None when
    it has not predicted the track), so lists and filters stay one query."""
    active = active if active is not None else model_version_active()
    tracks = Track.objects.order_by("id")
    if active is None:
        return tracks.annotate(
            active_key_index=Value(None, output_field=IntegerField()),
            active_confidence=Value(None, output_field=FloatField()),
        )
    predictions = Prediction.objects.filter(track=OuterRef("pk"), model_version=active)
    return tracks.annotate(
        active_key_index=Subquery(predictions.values("key_index")[:1]),
        active_confidence=Subquery(predictions.values("confidence")[:1]),
    )


@dataclass(frozen=True)
class BestKey:
    """What KeyWeb knows about a track's key: the human consensus if any, else the active model's guess."""

    source: str | None  # "human", "model", or None when nothing is known yet
    label: str | None  # "key" or a no-key label (ambiguous, no_key, modulating)
    key: Key | None
    confidence: float | None
    top: list[tuple[Key, float]]
    tuning_cents: float | None
    model_version: ModelVersion | None


def track_best_key(*, track: Track, top_k: int = 3) -> BestKey:
    active = model_version_active()
    prediction = (
        Prediction.objects.filter(track=track, model_version=active).first() if active is not None else None
    )
    top = prediction.top(top_k) if prediction is not None else []
    if track.consensus_label:
        return BestKey(
            source="human",
            label=track.consensus_label,
            key=track.consensus,
            confidence=1.0,
            top=top,
            tuning_cents=_human_tuning(track) if track.tuning_cents is None else track.tuning_cents,
            model_version=active if prediction is not None else None,
        )
    if prediction is not None:
        return BestKey(
            source="model",
            label=Annotation.Label.KEY,
            key=prediction.key,
            confidence=prediction.confidence,
            top=top,
            tuning_cents=track.tuning_cents,
            model_version=active,
        )
    return BestKey(
        source=None,
        label=None,
        key=None,
        confidence=None,
        top=[],
        tuning_cents=track.tuning_cents,
        model_version=None,
    )


def _human_tuning(track: Track) -> float | None:
    values = [
        a.tuning_cents
        for a in track.annotations.exclude(tuning_cents=None).only("tuning_cents").order_by("id")
    ]
    return sum(values) / len(values) if values else None


def model_learning_curve() -> list[dict]:
    """Held-out weighted score against the number of training labels, one point per version trained here
    (the shipped default head, trained on synthetic audio, is not a point on this curve), oldest first."""
    versions = ModelVersion.objects.filter(status=ModelVersion.Status.READY, is_default=False).order_by(
        "created_at", "id"
    )
    return [
        {
            "version": version.pk,
            "name": version.name,
            "n_training_labels": version.n_training_labels,
            "weighted": version.metrics.get("weighted"),
            "trained_at": version.trained_at,
        }
        for version in versions
        if isinstance(version.metrics, dict) and version.metrics.get("weighted") is not None
    ]


def labels_since_last_training() -> int:
    """Key labels that reached consensus after the newest trained (non-default) version was requested."""
    latest = ModelVersion.objects.filter(is_default=False).order_by("-created_at").first()
    labeled = Track.objects.filter(consensus_label="key")
    if latest is not None:
        labeled = labeled.filter(consensus_at__gt=latest.created_at)
    return labeled.count()


# --- the labeling queue -----------------------------------------------------------------------------------


def annotation_latest_own(user: AbstractBaseUser) -> Annotation | None:
    """The label `annotation_undo` would withdraw: the user's newest own annotation."""
    return (
        Annotation.objects.filter(annotator=user, source=Annotation.Source.ANNOTATOR)
        .order_by("-created_at", "-id")
        .first()
    )


def tracks_skipped_recently(*, user: AbstractBaseUser) -> QuerySet[Skip]:
    """`user`'s skips the queue still honours (the last SKIP_MEMORY), newest first."""
    return (
        Skip.objects.filter(annotator=user, created_at__gte=timezone.now() - SKIP_MEMORY)
        .select_related("track")
        .order_by("-created_at", "-id")
    )


def tracks_open_for(*, user: AbstractBaseUser, now: datetime | None = None) -> QuerySet[Track]:
    """Tracks the queue may serve `user`: analysed, unlabeled, undisputed, not held by someone else, not
    labeled or recently skipped by them."""
    now = now or timezone.now()
    return (
        Track.objects.filter(status=Track.Status.READY, consensus_label="", needs_review=False)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_user=user))
        # NOT EXISTS, not NOT IN: PostgreSQL then probes the few rows of each candidate track while it walks
        # the queue index, instead of first hashing everything this user ever labeled (docs/benchmarks.md).
        .filter(~Exists(Annotation.objects.filter(annotator=user, track=OuterRef("pk"))))
        .filter(
            ~Exists(
                Skip.objects.filter(annotator=user, track=OuterRef("pk"), created_at__gte=now - SKIP_MEMORY)
            )
        )
    )


@dataclass(frozen=True)
class AnnotatorProgress:
    labeled_today: int
    labeled_total: int
    queue_size: int
    agreement: float | None  # share of this person's key labels that match the model's top key they saw
    agreement_n: int


def annotator_progress(*, user: AbstractBaseUser, with_agreement: bool = True) -> AnnotatorProgress:
    mine = Annotation.objects.filter(annotator=user, source=Annotation.Source.ANNOTATOR)
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    agreement, agreement_n = None, 0
    if with_agreement:
        # The prediction the person saw: the track's newest one made before they labeled it.
        predicted = Prediction.objects.filter(
            track=OuterRef("track"), created_at__lte=OuterRef("created_at")
        ).order_by("-created_at", "-id")
        compared = (
            mine.filter(label=Annotation.Label.KEY)
            .annotate(predicted_key=Subquery(predicted.values("key_index")[:1]))
            .exclude(predicted_key=None)
            .values_list("key_index", "predicted_key")
        )
        pairs = list(compared)
        agreement_n = len(pairs)
        if pairs:
            agreement = sum(label == predicted for label, predicted in pairs) / agreement_n
    return AnnotatorProgress(
        labeled_today=mine.filter(created_at__gte=start_of_day).count(),
        labeled_total=mine.count(),
        queue_size=tracks_open_for(user=user).count(),
        agreement=agreement,
        agreement_n=agreement_n,
    )


def tracks_for_review() -> QuerySet[Track]:
    return Track.objects.filter(needs_review=True).annotate(n_annotations=Count("annotations")).order_by("id")


def track_prediction_latest(track: Track) -> Prediction | None:
    """The active model's prediction for the track, else the newest one from any version."""
    active = model_version_active()
    predictions = Prediction.objects.filter(track=track).select_related("model_version")
    if active is not None:
        prediction = predictions.filter(model_version=active).first()
        if prediction is not None:
            return prediction
    return predictions.order_by("-created_at").first()


def tracks_needing_work(*, grace: timedelta = timedelta(minutes=2)) -> tuple[list[int], list[int]]:
    """Ids to (embed, predict): pending for longer than `grace` (stale processing claims are released to
    pending by services.recovery); analysed but without a prediction from the active model."""
    now = timezone.now()
    to_embed = list(
        Track.objects.filter(status=Track.Status.PENDING, created_at__lt=now - grace).values_list(
            "id", flat=True
        )
    )
    active = model_version_active()
    to_predict: list[int] = []
    if active is not None:
        to_predict = list(
            Track.objects.filter(status=Track.Status.READY)
            .exclude(predictions__model_version=active)
            .values_list("id", flat=True)
        )
    return to_embed, to_predict


# --- the admin dashboard -----------------------------------------------------------------------------------


def labeled_tracks_for_export() -> QuerySet[Track]:
    return Track.objects.exclude(consensus_label="").order_by("id")


# --- who sees what ------------------------------------------------------------------------------------------


def admin_usernames() -> list[str]:
    """Whom a person without a role should ask (accounts in the admin group; superusers if none)."""
    admins = User.objects.filter(is_active=True, groups__name="admin").order_by("username")
    names = list(admins.values_list("username", flat=True)[:5])
    return names or list(
        User.objects.filter(is_active=True, is_superuser=True).values_list("username", flat=True)[:5]
    )


def annotations_visible_to(*, user: AbstractBaseUser) -> QuerySet[Annotation]:
    """Annotators see their own annotations; reviewers and admins see everyone's."""
    annotations = Annotation.objects.select_related("annotator").order_by("id")
    if user_is_reviewer(user):
        return annotations
    return annotations.filter(annotator=user)


def prediction_jobs_visible_to(*, user: AbstractBaseUser) -> QuerySet[PredictionJob]:
    """A prediction job is its submitter's; admins see all of them."""
    jobs = PredictionJob.objects.all()
    return jobs if user_is_admin(user) else jobs.filter(user=user)


# --- the label page's drawings --------------------------------------------------------------------------

VISUALS_VERSION = 1


def track_visuals_path(track: Track) -> Path:
    return Path(settings.MEDIA_ROOT) / "visuals" / track.content_hash[:2] / f"{track.content_hash}.json"


def track_visuals_stored(track: Track) -> dict | None:
    """The cached visuals, or None when missing, unreadable, of an older format or computed before the
    track's tuning was known (the chromagram would not be tuning-compensated)."""
    path = track_visuals_path(track)
    try:
        visuals = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if visuals.get("version") != VISUALS_VERSION:
        return None
    if track.tuning_cents is not None and visuals.get("tuning_cents") is None:
        return None
    return visuals


def visuals_building_key(track_id: int) -> str:
    return f"keyweb:visuals:building:{track_id}"


def visuals_failure_key(track_id: int) -> str:
    return f"keyweb:visuals:failed:{track_id}"


def track_visuals_building(track: Track) -> bool:
    return cache.get(visuals_building_key(track.pk)) is not None


def track_visuals_failure(track: Track) -> str | None:
    return cache.get(visuals_failure_key(track.pk))
