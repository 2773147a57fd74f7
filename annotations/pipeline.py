"""Worker-side analysis: embeddings, predictions and training. Imported only inside Celery tasks and
commands; it pulls in torch through ml/, which web request paths must never do."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Embedding, ModelVersion, Prediction, Track
from .selectors import model_version_active, queue_priority_from_scores

logger = logging.getLogger(__name__)

MAX_ANALYSIS_ATTEMPTS = 3
STALE_CLAIM = timedelta(minutes=30)
AUGMENT_SEMITONES = tuple(s for s in range(-6, 7) if s)


class TransientPipelineError(RuntimeError):
    """A failure worth retrying (e.g. the database or disk was briefly unavailable)."""


def backbone_name_configured() -> str:
    from ml.backbones import default_backbone_name

    return settings.KEYWEB["BACKBONE"] or default_backbone_name()


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embedding_path(track: Track, backbone: str, semitones: int = 0) -> Path:
    suffix = f".shift{semitones:+d}" if semitones else ""
    return (
        settings.KEYWEB["EMBEDDING_DIR"]
        / backbone
        / track.content_hash[:2]
        / f"{track.content_hash}{suffix}.npy"
    )


def npy_write_atomic(path: Path, array: np.ndarray) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".npy.part") as handle:
        np.save(handle, array)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def audio_path(track: Track) -> Path:
    return Path(settings.MEDIA_ROOT) / track.audio.name


# --- embedding ----------------------------------------------------------------------------------------


def _claim(tracks: Iterable[Track]) -> list[Track]:
    """PENDING (or a claim gone stale) → PROCESSING in one conditional UPDATE per track, so a duplicated
    task running at the same time finds nothing left to claim. Tracks out of attempts are failed."""
    now = timezone.now()
    claimable = Q(status=Track.Status.PENDING) | Q(
        status=Track.Status.PROCESSING, analysis_started_at__lt=now - STALE_CLAIM
    )
    claimed = []
    for track in tracks:
        if track.analysis_attempts >= MAX_ANALYSIS_ATTEMPTS:
            _fail(track, f"analysis failed {track.analysis_attempts} times; the worker log has the details")
            continue
        updated = Track.objects.filter(Q(pk=track.pk) & claimable).update(
            status=Track.Status.PROCESSING,
            analysis_attempts=F("analysis_attempts") + 1,
            analysis_started_at=now,
        )
        if updated:
            claimed.append(track)
    return claimed


def _fail(track: Track, reason: str) -> None:
    logger.warning("track %s failed analysis: %s", track.pk, reason)
    Track.objects.filter(pk=track.pk).update(status=Track.Status.FAILED, error=reason[:2000])


def embeddings_ensure(
    tracks: list[Track], *, backbone, backbone_name: str, semitones: Iterable[int] = (0,)
) -> tuple[dict[tuple[int, int], Embedding], dict[int, str]]:
    """Compute the (track, semitones) embeddings that don't exist yet, write each .npy atomically and
    record it. Returns ({(track id, semitones): Embedding}, {track id: decode error})."""
    from ml.audio import AudioDecodeError, load_audio, pitch_shift
    from ml.backbones.pitchclass import estimate_tuning_cents

    semitones = tuple(semitones)
    stored = {
        (e.track_id, e.semitones): e
        for e in Embedding.objects.filter(track__in=tracks, backbone=backbone_name, semitones__in=semitones)
    }
    failures: dict[int, str] = {}
    for track in tracks:
        missing = [
            s
            for s in semitones
            if (track.pk, s) not in stored or not Path(stored[(track.pk, s)].path).is_file()
        ]
        if not missing:
            continue
        try:
            audio = load_audio(audio_path(track))
        except AudioDecodeError as error:
            failures[track.pk] = str(error)
            continue
        except FileNotFoundError:
            failures[track.pk] = "the audio file is missing from the media folder; re-import it"
            continue
        versions = [audio if s == 0 else pitch_shift(audio, s) for s in missing]
        for shift, window_embeddings in zip(missing, backbone.window_embeddings_batch(versions), strict=True):
            path = embedding_path(track, backbone_name, shift)
            npy_write_atomic(path, np.asarray(window_embeddings, dtype=np.float32))
            embedding, _ = Embedding.objects.update_or_create(
                track=track,
                backbone=backbone_name,
                semitones=shift,
                defaults={
                    "path": str(path),
                    "n_windows": len(window_embeddings),
                    "dim": window_embeddings.shape[1],
                },
            )
            stored[(track.pk, shift)] = embedding
        if 0 in missing:
            _tuning_and_visuals(track, audio, estimate_tuning_cents)
    return stored, failures


def _tuning_and_visuals(track: Track, audio: np.ndarray, estimate_tuning_cents) -> None:
    """While the audio is decoded anyway: the tuning estimate, then the waveform and chromagram the label
    page draws (tuning-compensated). A drawing failure is logged, never fails the analysis."""
    from .visuals import track_visuals_compute, track_visuals_write

    if track.tuning_cents is None:
        track.tuning_cents = float(estimate_tuning_cents(audio))
        Track.objects.filter(pk=track.pk).update(tuning_cents=track.tuning_cents)
    try:
        track_visuals_write(track=track, visuals=track_visuals_compute(track=track, audio=audio))
    except Exception:
        logger.exception("drawing the visuals of track %s failed", track.pk)


def tracks_embed(*, track_ids: list[int], backbone_name: str | None = None) -> list[int]:
    """Analyse newly imported tracks: embed once per backbone, mark them READY; returns the ids that now
    have embeddings. A track whose audio can't be decoded is marked FAILED with the reason, never retried.
    """
    from ml.backbones import get_backbone

    backbone_name = backbone_name or backbone_name_configured()
    done = set(
        Embedding.objects.filter(track_id__in=track_ids, backbone=backbone_name, semitones=0).values_list(
            "track_id", flat=True
        )
    )
    Track.objects.filter(id__in=done, status__in=[Track.Status.PENDING, Track.Status.PROCESSING]).update(
        status=Track.Status.READY
    )
    claimed = _claim(
        Track.objects.filter(
            id__in=track_ids, status__in=[Track.Status.PENDING, Track.Status.PROCESSING]
        ).exclude(id__in=done)
    )
    if not claimed:
        return sorted(done)
    try:
        stored, failures = embeddings_ensure(
            claimed, backbone=get_backbone(backbone_name), backbone_name=backbone_name
        )
    except (OSError, DatabaseError) as error:
        Track.objects.filter(id__in=[t.pk for t in claimed]).update(status=Track.Status.PENDING)
        raise TransientPipelineError(f"embedding interrupted: {error}") from error
    for track in claimed:
        if track.pk in failures:
            _fail(track, failures[track.pk])
        else:
            done.add(track.pk)
    Track.objects.filter(id__in=[t.pk for t in claimed if t.pk not in failures]).update(
        status=Track.Status.READY, error=""
    )
    return sorted(done)


# --- prediction ---------------------------------------------------------------------------------------

_head_cache: dict[tuple[str, float], object] = {}


def head_load_cached(version: ModelVersion):
    from ml.heads import load_head

    path = Path(version.weights_path)
    if not path.is_absolute():
        path = settings.KEYWEB["MODEL_DIR"] / path
    cache_key = (str(path), path.stat().st_mtime)
    if cache_key not in _head_cache:
        _head_cache.clear()
        _head_cache[cache_key] = load_head(path)
    return _head_cache[cache_key]


def tracks_predict(*, track_ids: list[int], model_version_id: int | None = None) -> int:
    """Store a Prediction per track for the model version (default: the active one) and refresh the
    queue priority. Tracks lacking an embedding for the version's backbone are sent to embedding first."""
    from ml.heads import predict_tracks

    version = (
        ModelVersion.objects.filter(pk=model_version_id).first()
        if model_version_id
        else model_version_active()
    )
    if version is None or version.status != ModelVersion.Status.READY:
        logger.info("no ready model version to predict with; %d tracks wait", len(track_ids))
        return 0
    loaded = head_load_cached(version)
    embeddings = {
        e.track_id: e
        for e in Embedding.objects.filter(track_id__in=track_ids, backbone=version.backbone, semitones=0)
    }
    missing = [t for t in track_ids if t not in embeddings]
    if missing:
        from .tasks import embed_tracks_task

        Track.objects.filter(id__in=missing, status=Track.Status.READY).update(status=Track.Status.PENDING)
        transaction.on_commit(lambda: embed_tracks_task.delay(missing))
    tracks = Track.objects.in_bulk(list(embeddings))
    ids = [i for i in embeddings if i in tracks]
    if not ids:
        return 0
    probabilities = predict_tracks(loaded.head, [np.load(embeddings[i].path) for i in ids])
    _predictions_store(version=version, tracks=[tracks[i] for i in ids], probabilities=probabilities)
    return len(ids)


PREDICTION_FIELDS = ["probabilities", "key_index", "confidence", "entropy", "margin", "uncertainty"]


def _predictions_store(*, version: ModelVersion, tracks: list[Track], probabilities: np.ndarray) -> None:
    """Upsert the predictions and set queue priorities in a few set-based statements per chunk (a
    re-prediction pass over 1M tracks must not cost one round trip per track: docs/benchmarks.md)."""
    from ml.active import uncertainty_scores

    from .selectors import queue_strategy_current

    strategy = queue_strategy_current()
    scores = uncertainty_scores(probabilities)
    predictions, priorities = [], []
    for row, track in enumerate(tracks):
        track_scores = {name: float(values[row]) for name, values in scores.items()}
        best = int(np.argmax(probabilities[row]))
        priority = queue_priority_from_scores(track, track_scores, strategy)
        predictions.append(
            Prediction(
                track=track,
                model_version=version,
                probabilities=[round(float(p), 6) for p in probabilities[row]],
                key_index=best,
                confidence=float(probabilities[row][best]),
                entropy=track_scores["entropy"],
                margin=1.0 - track_scores["margin"],
                uncertainty=priority,
            )
        )
        track.priority = priority
        priorities.append(track)
    with transaction.atomic():
        Prediction.objects.bulk_create(
            predictions,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["track", "model_version"],
            update_fields=PREDICTION_FIELDS,
        )
        if version.is_active:
            _priorities_update(priorities)


def _priorities_update(tracks: list[Track], chunk: int = 2000) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for start in range(0, len(tracks), chunk):
                part = tracks[start : start + chunk]
                cursor.execute(
                    f"UPDATE {Track._meta.db_table} AS t SET priority = v.priority "
                    "FROM unnest(%s::bigint[], %s::float8[]) AS v(id, priority) WHERE t.id = v.id",
                    [[t.pk for t in part], [t.priority for t in part]],
                )
    else:
        Track.objects.bulk_update(tracks, ["priority"], batch_size=500)


def tracks_needing_work(*, grace: timedelta = timedelta(minutes=2)) -> tuple[list[int], list[int]]:
    """Ids to (embed, predict): pending for longer than `grace` or stalled in processing; analysed but
    without a prediction from the active model."""
    now = timezone.now()
    to_embed = list(
        Track.objects.filter(
            Q(status=Track.Status.PENDING, created_at__lt=now - grace)
            | Q(status=Track.Status.PROCESSING, analysis_started_at__lt=now - STALE_CLAIM)
        ).values_list("id", flat=True)
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


# --- training -----------------------------------------------------------------------------------------


def _training_examples(tracks: list[Track], *, backbone, backbone_name: str, shifted: bool):
    from ml.keys import Key
    from ml.training import TrainingExample

    semitones = (0, *AUGMENT_SEMITONES) if shifted else (0,)
    stored, failures = embeddings_ensure(
        tracks, backbone=backbone, backbone_name=backbone_name, semitones=semitones
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


def _test_metrics(head, examples) -> dict:
    from ml.heads import predict_tracks
    from ml.keys import Key
    from ml.metrics import expected_calibration_error, key_metrics

    if not examples:
        return {"n": 0}
    probabilities = predict_tracks(head, [e.window_embeddings for e in examples])
    labels = np.array([e.key.index for e in examples])
    metrics = key_metrics(
        [e.key for e in examples], [Key.from_index(int(i)) for i in probabilities.argmax(axis=1)]
    )
    metrics["ece"] = expected_calibration_error(probabilities, labels)
    return metrics


def model_train(*, version_id: int) -> ModelVersion | None:
    """Train the queued version on every consensus key label of the pool split, evaluate on the test split,
    save the head, and activate it unless it is worse than the active version beyond the tolerance."""
    from ml.backbones import get_backbone
    from ml.heads import save_head
    from ml.training import train_key_model

    from .versions import model_version_activate, model_version_should_activate, training_finished

    started = ModelVersion.objects.filter(pk=version_id, status=ModelVersion.Status.QUEUED).update(
        status=ModelVersion.Status.TRAINING, progress=0.0
    )
    if not started:  # a duplicate delivery: the version is already training or done
        return None
    version = ModelVersion.objects.get(pk=version_id)
    clock = time.monotonic()
    last_report = [0.0]

    def report(fraction: float) -> None:
        if time.monotonic() - last_report[0] > 1.0 or fraction >= 1.0:
            last_report[0] = time.monotonic()
            ModelVersion.objects.filter(pk=version_id).update(progress=round(0.2 + 0.7 * fraction, 3))

    try:
        backbone = get_backbone(version.backbone)
        shifted = not backbone.cyclic_transposition
        labeled = Track.objects.filter(consensus_label="key").exclude(status=Track.Status.FAILED)
        train_examples, train_tracks = _training_examples(
            list(labeled.filter(split=Track.Split.POOL)),
            backbone=backbone,
            backbone_name=version.backbone,
            shifted=shifted,
        )
        test_examples, _ = _training_examples(
            list(labeled.filter(split=Track.Split.TEST)),
            backbone=backbone,
            backbone_name=version.backbone,
            shifted=False,
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
        active = model_version_active()
        active_weighted = None
        if active is not None and test_examples and active.backbone == version.backbone:
            active_weighted = _test_metrics(head_load_cached(active).head, test_examples).get("weighted")
            metrics["active_weighted_same_test"] = active_weighted
        metrics["training_seconds"] = round(time.monotonic() - clock, 2)
        weights = settings.KEYWEB["MODEL_DIR"] / f"model-{version.pk}-{version.backbone}.pt"
        save_head(
            weights, head=trained.head, config=trained.config, metrics=metrics, extra={"version": version.pk}
        )
        hyperparameters = {
            **version.hyperparameters,
            "head": trained.config.describe(),
            "trials": trained.trials,
        }
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
    except Exception as error:
        logger.exception("training of model version %s failed", version_id)
        training_finished(
            version=version,
            status=ModelVersion.Status.FAILED,
            error=f"{error.__class__.__name__}: {error}"[:2000],
        )
        return ModelVersion.objects.get(pk=version_id)

    version.refresh_from_db()
    if model_version_should_activate(
        candidate_weighted=metrics.get("weighted"), active_weighted=active_weighted
    ):
        model_version_activate(version=version)
    return version


# --- diversity-aware ordering -------------------------------------------------------------------------

DIVERSE_CANDIDATES = 300
DIVERSE_BATCH = 50


def queue_rerank_diverse(*, candidates: int = DIVERSE_CANDIDATES, batch: int = DIVERSE_BATCH) -> list[int]:
    """For the `diverse` strategy: among the most uncertain open pool tracks, pick a batch that covers the
    embedding space (k-center greedy, mixed with entropy) away from what is already labeled, and put that
    batch at the head of the queue in pick order. Near-duplicates of each other never sit side by side."""
    from ml.active import k_center_greedy

    active = model_version_active()
    if active is None:
        return []
    open_tracks = list(
        Track.objects.filter(
            status=Track.Status.READY, consensus_label="", needs_review=False, split=Track.Split.POOL
        )
        .filter(predictions__model_version=active)
        .order_by("-predictions__entropy")
        .values_list("id", "predictions__entropy")[:candidates]
    )
    if not open_tracks:
        return []
    ids = [track_id for track_id, _ in open_tracks]
    entropy = np.array([value for _, value in open_tracks])
    paths = dict(
        Embedding.objects.filter(track_id__in=ids, backbone=active.backbone, semitones=0).values_list(
            "track_id", "path"
        )
    )
    usable = [i for i, track_id in enumerate(ids) if track_id in paths]
    means = np.stack([np.load(paths[ids[i]]).mean(axis=0) for i in usable])
    labeled_paths = Embedding.objects.filter(
        backbone=active.backbone, semitones=0, track__consensus_label="key"
    ).values_list("path", flat=True)[:2000]
    anchors = np.stack([np.load(p).mean(axis=0) for p in labeled_paths]) if labeled_paths else None
    order = k_center_greedy(means, n_select=batch, anchors=anchors, uncertainty=entropy[usable])
    chosen = [ids[usable[i]] for i in order]
    top = float(entropy.max()) if len(entropy) else 0.0
    with transaction.atomic():
        for rank, track_id in enumerate(chosen):
            # Above every plain-entropy priority (entropy ≤ ln 24 ≈ 3.18), in pick order.
            Track.objects.filter(pk=track_id).update(priority=top + 10.0 + (len(chosen) - rank))
    return chosen
