"""Worker-side analysis: embeddings and predictions. Imported only inside Celery tasks and commands;
it pulls in torch through ml/, which web request paths must never do."""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Embedding, ModelVersion, Prediction, Track
from .selectors import model_version_active, queue_priority_from_scores

logger = logging.getLogger(__name__)

MAX_ANALYSIS_ATTEMPTS = 3
STALE_CLAIM = timedelta(minutes=30)


class TransientPipelineError(RuntimeError):
    """A failure worth retrying (e.g. the database or disk was briefly unavailable)."""


def backbone_name_configured() -> str:
    from ml.backbones import default_backbone_name

    return settings.KEYWEB["BACKBONE"] or default_backbone_name()


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


def _claim(tracks: list[Track]) -> list[Track]:
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


def tracks_embed(*, track_ids: list[int], backbone_name: str | None = None) -> list[int]:
    """Embed the given tracks once per backbone; returns the ids that now have embeddings.

    A track whose audio can't be decoded is marked FAILED with the reason and never retried.
    """
    from ml.audio import AudioDecodeError, load_audio
    from ml.backbones import get_backbone

    backbone_name = backbone_name or backbone_name_configured()
    ready = set(
        Embedding.objects.filter(track_id__in=track_ids, backbone=backbone_name, semitones=0).values_list(
            "track_id", flat=True
        )
    )
    todo = [
        t
        for t in Track.objects.filter(id__in=track_ids).exclude(id__in=ready)
        if t.status != Track.Status.FAILED
    ]
    if not todo:
        return sorted(ready)
    claimed = _claim(todo)
    if not claimed:
        return sorted(ready)
    backbone = get_backbone(backbone_name)
    decoded: list[tuple[Track, np.ndarray]] = []
    for track in claimed:
        try:
            audio = load_audio(Path(settings.MEDIA_ROOT) / track.audio.name)
        except AudioDecodeError as error:
            _fail(track, str(error))
            continue
        except FileNotFoundError:
            _fail(track, "the audio file is missing from the media folder; re-import it")
            continue
        decoded.append((track, audio))

    try:
        _embed_and_store(decoded, backbone, backbone_name, ready)
    except (OSError, DatabaseError) as error:
        unfinished = [track.pk for track, _ in decoded if track.pk not in ready]
        Track.objects.filter(id__in=unfinished).update(status=Track.Status.PENDING)
        raise TransientPipelineError(f"embedding interrupted: {error}") from error
    return sorted(ready)


def _embed_and_store(decoded: list[tuple[Track, np.ndarray]], backbone, backbone_name: str, ready: set[int]):
    from ml.backbones.pitchclass import estimate_tuning_cents

    embeddings = backbone.window_embeddings_batch([audio for _, audio in decoded])
    for (track, audio), window_embeddings in zip(decoded, embeddings, strict=True):
        path = embedding_path(track, backbone_name)
        npy_write_atomic(path, window_embeddings.astype(np.float32))
        with transaction.atomic():
            Embedding.objects.update_or_create(
                track=track,
                backbone=backbone_name,
                semitones=0,
                defaults={
                    "path": str(path),
                    "n_windows": len(window_embeddings),
                    "dim": window_embeddings.shape[1],
                },
            )
            Track.objects.filter(pk=track.pk).update(
                status=Track.Status.READY, tuning_cents=float(estimate_tuning_cents(audio)), error=""
            )
        ready.add(track.pk)


_head_cache: dict[tuple[str, float], object] = {}


def _load_head(version: ModelVersion):
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
    from ml.active import uncertainty_scores
    from ml.heads import predict_windows

    version = ModelVersion.objects.get(pk=model_version_id) if model_version_id else model_version_active()
    if version is None:
        logger.info("no active model version yet; %d tracks wait for one", len(track_ids))
        return 0
    head = _load_head(version)
    embeddings = {
        e.track_id: e
        for e in Embedding.objects.filter(track_id__in=track_ids, backbone=version.backbone, semitones=0)
    }
    missing = [t for t in track_ids if t not in embeddings]
    if missing:
        from .tasks import embed_tracks_task

        Track.objects.filter(id__in=missing, status=Track.Status.READY).update(status=Track.Status.PENDING)
        transaction.on_commit(lambda: embed_tracks_task.delay(missing))
    tracks = {t.pk: t for t in Track.objects.filter(id__in=list(embeddings))}
    stored = 0
    for track_id, embedding in embeddings.items():
        probabilities = predict_windows(head, np.load(embedding.path))
        scores = {name: float(values[0]) for name, values in uncertainty_scores(probabilities).items()}
        best = int(np.argmax(probabilities))
        with transaction.atomic():
            Prediction.objects.update_or_create(
                track_id=track_id,
                model_version=version,
                defaults={
                    "probabilities": [round(float(p), 6) for p in probabilities],
                    "key_index": best,
                    "confidence": float(probabilities[best]),
                    "entropy": scores["entropy"],
                    "margin": 1.0 - scores["margin"],
                    "uncertainty": scores[
                        settings.KEYWEB["QUEUE_STRATEGY"]
                        if settings.KEYWEB["QUEUE_STRATEGY"] in scores
                        else "entropy"
                    ],
                },
            )
            if version.is_active:
                Track.objects.filter(pk=track_id).update(
                    priority=queue_priority_from_scores(tracks[track_id], scores),
                )
        stored += 1
    return stored


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
