"""Training a model version: key-labeled pool tracks (with transposition augmentation) → a head, scored
on the labeled held-out split with mir_eval, saved with the backbone fingerprint it was trained on, and
activated unless it is worse than the active version on the same tracks."""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ml.evaluation import head_evaluate, track_scores
from ml.heads import predict_tracks, save_head
from ml.keys import Key
from ml.training import TrainingExample, train_key_model

from ..models import ModelVersion, Track
from ..selectors import model_version_active
from ..services import error_text
from ..services.model_versions import (
    activation_decide,
    model_version_activate,
    training_finished,
)
from .analysis import embeddings_ensure
from .backbones import FingerprintMismatch, backbone_for, fingerprint_for, head_for, torch_device

logger = logging.getLogger(__name__)

AUGMENT_SEMITONES = tuple(s for s in range(-6, 7) if s)


def _training_examples(
    tracks: list[Track], *, backbone_name: str, checkpoint: str = "", shifted: bool, alive=None
):
    semitones = (0, *AUGMENT_SEMITONES) if shifted else (0,)
    stored, failures = embeddings_ensure(
        tracks, backbone_name=backbone_name, checkpoint=checkpoint, semitones=semitones, alive=alive
    )
    examples, kept = [], []
    for track in tracks:
        if track.pk in failures or (track.pk, 0) not in stored:
            continue
        examples.append(
            TrainingExample(
                window_embeddings=np.load(stored[(track.pk, 0)].path),
                key=Key.from_index(track.consensus_key),
                shifted={s: np.load(stored[(track.pk, s)].path) for s in AUGMENT_SEMITONES}
                if shifted
                else None,
            )
        )
        kept.append(track)
    return examples, kept


def _track_scores(head, examples) -> list[float]:
    """mir_eval's weighted score of each held-out track, in `examples` order (for paired comparisons)."""
    probabilities = predict_tracks(head, [e.window_embeddings for e in examples])
    return track_scores(probabilities, [example.key for example in examples]).tolist()


def _test_metrics(head, examples) -> dict:
    if not examples:
        return {"n": 0}
    return head_evaluate(head, [e.window_embeddings for e in examples], [e.key for e in examples])


def model_train(*, version_id: int) -> ModelVersion | None:
    """Train the queued version on every consensus key label of the pool split, evaluate on the test split,
    save the head, and activate it unless it is worse than the active version beyond the tolerance."""
    started = ModelVersion.objects.filter(pk=version_id, status=ModelVersion.Status.QUEUED).update(
        status=ModelVersion.Status.TRAINING,
        progress=0.0,
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not started:  # a duplicate delivery: the version is already training or done
        return None
    version = ModelVersion.objects.get(pk=version_id)
    clock = time.monotonic()
    last_report = [0.0]

    def report(fraction: float) -> None:
        # Progress doubles as the heartbeat the recovery sweep watches (services/recovery.py).
        if time.monotonic() - last_report[0] > 1.0 or fraction >= 1.0:
            last_report[0] = time.monotonic()
            ModelVersion.objects.filter(pk=version_id).update(
                progress=round(0.2 + 0.7 * fraction, 3), heartbeat_at=timezone.now()
            )

    def alive() -> None:
        if time.monotonic() - last_report[0] > 1.0:
            last_report[0] = time.monotonic()
            ModelVersion.objects.filter(pk=version_id).update(heartbeat_at=timezone.now())

    try:
        checkpoint = version.backbone_checkpoint
        backbone = backbone_for(version.backbone, checkpoint)
        fingerprint = fingerprint_for(version.backbone, checkpoint)
        ModelVersion.objects.filter(pk=version_id).update(backbone_fingerprint=fingerprint)
        version.backbone_fingerprint = fingerprint
        shifted = not backbone.cyclic_transposition
        labeled = Track.objects.filter(consensus_label="key").exclude(status=Track.Status.FAILED)
        train_examples, train_tracks = _training_examples(
            list(labeled.filter(split=Track.Split.POOL)),
            backbone_name=version.backbone,
            checkpoint=checkpoint,
            shifted=shifted,
            alive=alive,
        )
        test_tracks = list(labeled.filter(split=Track.Split.TEST))
        test_examples, tested = _training_examples(
            test_tracks, backbone_name=version.backbone, checkpoint=checkpoint, shifted=False, alive=alive
        )
        ModelVersion.objects.filter(pk=version_id).update(progress=0.2)
        if not train_examples:
            raise ValueError(
                "there are no labeled training tracks yet (labels with a key, in the pool split)"
            )
        trained = train_key_model(
            train=train_examples,
            backbone_name=version.backbone,
            cyclic=backbone.cyclic_transposition,
            time_budget_s=settings.KEYWEB["TRAINING_TIME_BUDGET_S"],
            seed=version.pk,
            device=torch_device(),
            progress=report,
        )
        metrics = _test_metrics(trained.head, test_examples)
        metrics["validation"] = trained.metrics_validation
        metrics["ece_validation_before"] = trained.ece_before
        metrics["ece_validation_after"] = trained.ece_after
        # Each version scored on its own embeddings of the same held-out tracks.
        active = model_version_active()
        active_scores, active_ece = None, None
        if active is not None:
            try:
                active_head = head_for(active).head
                active_examples, _ = _training_examples(
                    tested,
                    backbone_name=active.backbone,
                    checkpoint=active.backbone_checkpoint,
                    shifted=False,
                    alive=alive,
                )
                if test_examples and len(active_examples) == len(test_examples):
                    active_metrics = _test_metrics(active_head, active_examples)
                    active_scores = _track_scores(active_head, active_examples)
                    active_ece = active_metrics["ece"]
                    metrics["active_weighted_same_test"] = active_metrics["weighted"]
                elif not test_examples:
                    active_scores = []
            except FingerprintMismatch as error:  # the active head no longer fits: the new one wins
                logger.info("not comparing with the active version: %s", error)
        activation = activation_decide(
            candidate_scores=_track_scores(trained.head, test_examples) if test_examples else [],
            active_scores=active_scores,
            candidate_ece=metrics.get("ece"),
            active_ece=active_ece,
        )
        metrics["activation"] = {
            **activation,
            "compared_with": active.name if active_scores is not None else None,
        }
        metrics["training_seconds"] = round(time.monotonic() - clock, 2)
        weights = settings.KEYWEB["MODEL_DIR"] / f"model-{version.pk}-{version.backbone}.pt"
        save_head(
            weights,
            head=trained.head,
            config=trained.config,
            metrics=metrics,
            extra={"version": version.pk, "backbone_fingerprint": fingerprint},
        )
        hyperparameters = {
            **version.hyperparameters,
            "head": trained.config.describe(),
            "trials": trained.trials,
        }
        # Ready and (if it wins) active in one transaction: nobody sees a ready version that is about to
        # become active but is not yet.
        with transaction.atomic():
            training_finished(
                version=version,
                status=ModelVersion.Status.READY,
                progress=1.0,
                metrics=metrics,
                hyperparameters=hyperparameters,
                weights_path=str(weights),
                n_training_labels=len(train_tracks),
                n_test_labels=len(test_examples),
            )
            version.refresh_from_db()
            if activation["activate"]:
                model_version_activate(version=version)
            logger.info(
                "model version %s %s: %s",
                version.pk,
                "activated" if activation["activate"] else "kept inactive",
                activation["reason"],
            )
    except Exception as error:
        logger.exception("training of model version %s failed", version_id)
        training_finished(
            version=version,
            status=ModelVersion.Status.FAILED,
            error=error_text(error),
        )
        return ModelVersion.objects.get(pk=version_id)
    return version
