"""Tracks, the labels people give them, the model's predictions and the model versions that made them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from ml.keys import Key

KEY_INDEX_VALIDATORS = [MinValueValidator(0), MaxValueValidator(23)]


class Track(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for analysis"
        PROCESSING = "processing", "Being analysed"
        READY = "ready", "Analysed"
        FAILED = "failed", "Failed"

    class Split(models.TextChoices):
        POOL = "pool", "Pool (training)"
        TEST = "test", "Test (held out)"

    audio = models.FileField(upload_to="audio/", max_length=500)
    original_filename = models.CharField(max_length=500)
    content_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the audio file")
    size_bytes = models.BigIntegerField()
    audio_format = models.CharField(max_length=16)
    title = models.CharField(max_length=300, blank=True)
    artist = models.CharField(max_length=300, blank=True)
    duration_s = models.FloatField()
    sample_rate = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True, help_text="Why analysis failed, in words a person can act on")
    # Attempts that ended in an error (a decode failure ends it at once); a worker that died mid-analysis
    # does not count here but in analysis_interruptions, so a good track is not failed by other crashes.
    analysis_attempts = models.PositiveSmallIntegerField(default=0)
    analysis_interruptions = models.PositiveSmallIntegerField(default=0)
    # When the current analysis claim was taken or last renewed (the worker renews it per track of a batch).
    analysis_started_at = models.DateTimeField(null=True, blank=True)
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.POOL)
    tuning_cents = models.FloatField(null=True, blank=True, help_text="Estimated offset from A440")
    # Consensus, kept here so the queue and exports are single-table reads.
    consensus_label = models.CharField(max_length=16, blank=True)  # "key" or a no-key label; "" = none yet
    consensus_key = models.PositiveSmallIntegerField(null=True, blank=True, validators=KEY_INDEX_VALIDATORS)
    consensus_at = models.DateTimeField(null=True, blank=True)
    needs_review = models.BooleanField(default=False)
    annotation_count = models.PositiveIntegerField(default=0)
    # Queue: priority comes from the active model's prediction (higher = serve sooner).
    priority = models.FloatField(default=0.0)
    lease_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The next-track query: unlabeled, analysed tracks of a split, best priority first.
            models.Index(
                fields=["split", "-priority", "id"],
                name="track_queue_idx",
                condition=Q(consensus_label="", status="ready", needs_review=False),
            ),
            models.Index(fields=["consensus_label", "split"], name="track_labeled_idx"),
            # The held-out split is served in content-hash order; without this index that query walks past
            # every labeled test track in the content_hash index (100 ms at a million tracks).
            models.Index(
                fields=["split", "content_hash"],
                name="track_test_queue_idx",
                condition=Q(consensus_label="", status="ready", needs_review=False),
            ),
            # The latest labels, which decide when the held-out split is due (queue._split_to_serve).
            models.Index(
                fields=["-consensus_at"],
                name="track_recent_labels_idx",
                condition=Q(consensus_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.original_filename

    @property
    def consensus(self) -> Key | None:
        return Key.from_index(self.consensus_key) if self.consensus_key is not None else None


class Annotation(models.Model):
    class Label(models.TextChoices):
        KEY = "key", "A key"
        AMBIGUOUS = "ambiguous", "Ambiguous"
        NO_KEY = "no_key", "No key (atonal / percussive)"
        MODULATING = "modulating", "Modulating"

    class Source(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEW = "review", "Reviewer decision"
        IMPORT = "import", "Imported label"

    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    label = models.CharField(max_length=16, choices=Label.choices)
    key_index = models.PositiveSmallIntegerField(null=True, blank=True, validators=KEY_INDEX_VALIDATORS)
    tuning_cents = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-50), MaxValueValidator(50)]
    )
    time_spent_s = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    notes = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(label="key") & Q(key_index__isnull=False))
                | (~Q(label="key") & Q(key_index__isnull=True)),
                name="annotation_key_iff_label_key",
            ),
            # One opinion per person per track (an annotator corrects by undo + resubmit).
            models.UniqueConstraint(
                fields=["track", "annotator"],
                condition=Q(source="annotator"),
                name="annotation_one_per_annotator",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.track_id}: {self.display}"

    @property
    def key(self) -> Key | None:
        return Key.from_index(self.key_index) if self.key_index is not None else None

    @property
    def display(self) -> str:
        return self.key.mir_eval if self.key else self.get_label_display()


class Skip(models.Model):
    """An annotator passed on a track; recorded so the queue doesn't serve it to them again soon."""

    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["annotator", "track"])]

    def __str__(self) -> str:
        return f"track {self.track_id} skipped by {self.annotator_id}"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100)
    backbone = models.CharField(max_length=40)
    # What the head was trained on: the backbone's name, feature version and weights hash
    # (ml.cache.backbone_fingerprint); the head is only ever applied to embeddings with the same one.
    # Blank until the worker has loaded the backbone (a queued version, or the shipped head before its
    # first prediction).
    backbone_fingerprint = models.CharField(max_length=80, blank=True)
    # The backbone weights this version uses: a checkpoint from a PretrainingRun, or blank for the
    # backbone's shipped weights.
    backbone_checkpoint = models.CharField(max_length=500, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    weights_path = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    n_training_labels = models.PositiveIntegerField(default=0)
    n_test_labels = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=False)
    # True while queued or training; the partial unique constraint lets only one training exist at a time.
    in_progress = models.BooleanField(null=True, blank=True, default=None)
    is_default = models.BooleanField(default=False, help_text="The head shipped with KeyWeb")
    # The training worker renews this while it works; a stale one means the worker died (recovery sweep).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Training runs started")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_model"
            ),
            # At most one training queued or running, enforced by the database, not by a check-then-insert.
            models.UniqueConstraint(
                fields=["in_progress"], condition=Q(in_progress=True), name="one_training_at_a_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.backbone})"

    @property
    def weighted_score(self) -> float | None:
        return self.metrics.get("weighted") if self.metrics else None


class QueueSettings(models.Model):
    """Run-time labeling settings an admin changes from the dashboard (one row; env gives the defaults)."""

    strategy = models.CharField(max_length=20, blank=True, help_text="blank = KEYWEB_QUEUE_STRATEGY")
    # Blind labeling: annotators see "Track 1234" instead of titles, artists and file names, which often
    # name the key; reviewers and admins still see everything.
    blind_names = models.BooleanField(
        default=False, help_text="Hide titles, artists and file names from annotators"
    )
    # Second opinions: this share of tracks (chosen by content hash, so stably) waits for a second,
    # independent annotator before it has a consensus; a disagreement goes to Review.
    second_opinion_share = models.FloatField(
        null=True, blank=True, help_text="blank = KEYWEB_SECOND_OPINION_SHARE (default 0.10)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"queue strategy {self.strategy or '(default)'}"


class Prediction(models.Model):
    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(help_text="24 probabilities in Key.index order")
    key_index = models.PositiveSmallIntegerField(validators=KEY_INDEX_VALIDATORS)
    confidence = models.FloatField()
    entropy = models.FloatField()
    margin = models.FloatField(help_text="p(best) - p(second)")
    priority = models.FloatField(help_text="The queue priority this prediction gave (strategy at the time)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["track", "model_version"], name="prediction_unique_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.track_id} @ {self.model_version_id}: {self.key.mir_eval}"

    @property
    def key(self) -> Key:
        return Key.from_index(self.key_index)

    def top(self, k: int = 3) -> list[tuple[Key, float]]:
        ranked = sorted(range(24), key=lambda i: -self.probabilities[i])[:k]
        return [(Key.from_index(i), float(self.probabilities[i])) for i in ranked]


class Embedding(models.Model):
    """Window embeddings of one track by one backbone, stored as a .npy file under the embedding dir."""

    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="embeddings")
    backbone = models.CharField(max_length=40)
    # The content identity of the backbone that computed it (ml.cache.backbone_fingerprint): a new
    # checkpoint or feature version gives a new fingerprint, so the track is embedded again.
    fingerprint = models.CharField(max_length=80)
    # 0 = the audio as is; ±1..6 = pitch-shifted copies, cached for training heads on non-cyclic backbones.
    semitones = models.SmallIntegerField(default=0)
    path = models.CharField(max_length=500)
    n_windows = models.PositiveIntegerField()
    dim = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["track", "fingerprint", "semitones"], name="embedding_unique_per_fingerprint"
            ),
        ]

    def __str__(self) -> str:
        return f"track {self.track_id} · {self.fingerprint} · {self.semitones:+d}"


class PredictionJob(models.Model):
    """A key prediction for a loose audio file that is not in the library (POST /api/v1/predictions)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    original_filename = models.CharField(max_length=500)
    # Where the upload waits for the worker; cleared once the file is deleted (unless keep_file).
    file_path = models.CharField(max_length=500, blank=True)
    keep_file = models.BooleanField(default=False)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    probabilities = models.JSONField(null=True, blank=True, help_text="24 probabilities in Key.index order")
    key_index = models.PositiveSmallIntegerField(null=True, blank=True, validators=KEY_INDEX_VALIDATORS)
    confidence = models.FloatField(null=True, blank=True)
    tuning_cents = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"prediction job {self.pk} ({self.status})"

    @property
    def key(self) -> Key | None:
        return Key.from_index(self.key_index) if self.key_index is not None else None


class OutboxMessage(models.Model):
    """A Celery message written in the same transaction as the data it is about (transactional outbox).

    annotations.dispatch publishes it after commit and deletes it once the broker took it; if the broker
    was down, the recovery sweep publishes it when the broker is back, so nothing asked for is lost.
    """

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.task_name}{tuple(self.args)}"


class PretrainingRun(models.Model):
    """Self-supervised pretraining of the learned backbone on the library's own audio (never the held-out
    split). Resumable: the worker checkpoints as it goes and a stale run is continued from there."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    backbone = models.CharField(max_length=40, default="skey")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    n_tracks = models.PositiveIntegerField(default=0)
    n_labelled = models.PositiveIntegerField(default=0)
    losses = models.JSONField(default=dict, blank=True, help_text="The latest loss terms")
    held_out = models.JSONField(
        default=dict,
        blank=True,
        help_text="The network alone on the held-out key-labelled tracks, before and after (worker.pretraining)",
    )
    error = models.TextField(blank=True)
    in_progress = models.BooleanField(null=True, blank=True, default=None)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    resumed_from = models.PositiveIntegerField(
        default=0,
        help_text="The checkpoint step the latest attempt continued from after a worker stopped (0: from the start)",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["in_progress"], condition=Q(in_progress=True), name="one_pretraining_at_a_time"
            ),
        ]

    def __str__(self) -> str:
        return f"pretraining #{self.pk} ({self.status})"
