"""Analysis of imported tracks: claim them, decode once, embed every analysis window with the configured
backbone, record each embedding under the backbone's fingerprint, estimate tuning and draw the visuals."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from ml.audio import AudioDecodeError, load_audio, pitch_shift
from ml.backbones.pitchclass import estimate_tuning_cents
from ml.files import npy_write_atomic

from ..models import Embedding, Track
from ..selectors import track_visuals_stored
from ..services.visuals import track_visuals_compute, track_visuals_write
from .backbones import analysis_backbone, backbone_for, embedding_path, fingerprint_for

logger = logging.getLogger(__name__)

MAX_ANALYSIS_ATTEMPTS = 3


class TransientAnalysisError(RuntimeError):
    """A failure worth retrying (e.g. the database or disk was briefly unavailable)."""


def audio_path(track: Track) -> Path:
    return Path(settings.MEDIA_ROOT) / track.audio.name


def _claim(tracks: Iterable[Track]) -> list[Track]:
    """PENDING → PROCESSING in one conditional UPDATE per track, so a duplicated task running at the same
    time finds nothing left to claim. A claim whose worker died is released by services.recovery; tracks
    whose analysis kept failing with errors are failed here."""
    now = timezone.now()
    claimed = []
    for track in tracks:
        if track.analysis_attempts >= MAX_ANALYSIS_ATTEMPTS:
            _fail(track, f"analysis failed {track.analysis_attempts} times; the worker log has the details")
            continue
        updated = Track.objects.filter(pk=track.pk, status=Track.Status.PENDING).update(
            status=Track.Status.PROCESSING, analysis_started_at=now
        )
        if updated:
            claimed.append(track)
    return claimed


def _fail(track: Track, reason: str) -> None:
    logger.warning("track %s failed analysis: %s", track.pk, reason)
    Track.objects.filter(pk=track.pk).update(
        status=Track.Status.FAILED, error=reason[:2000], analysis_attempts=F("analysis_attempts") + 1
    )


def embeddings_ensure(
    tracks: list[Track],
    *,
    backbone_name: str,
    checkpoint: str = "",
    semitones: Iterable[int] = (0,),
    alive=None,
) -> tuple[dict[tuple[int, int], Embedding], dict[int, str]]:
    """Compute the (track, semitones) embeddings that today's backbone has not made yet, write each .npy
    atomically and record it. Returns ({(track id, semitones): Embedding}, {track id: decode error}).
    `alive()` is called before each track, so the caller can renew its claim."""
    backbone = backbone_for(backbone_name, checkpoint)
    fingerprint = fingerprint_for(backbone_name, checkpoint)
    semitones = tuple(semitones)
    stored = {
        (e.track_id, e.semitones): e
        for e in Embedding.objects.filter(track__in=tracks, fingerprint=fingerprint, semitones__in=semitones)
    }
    failures: dict[int, str] = {}
    for track in tracks:
        if alive is not None:
            alive()
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
            path = embedding_path(content_hash=track.content_hash, fingerprint=fingerprint, semitones=shift)
            npy_write_atomic(path, np.asarray(window_embeddings, dtype=np.float32))
            embedding, _ = Embedding.objects.update_or_create(
                track=track,
                fingerprint=fingerprint,
                semitones=shift,
                defaults={
                    "backbone": backbone_name,
                    "path": str(path),
                    "n_windows": len(window_embeddings),
                    "dim": window_embeddings.shape[1],
                },
            )
            stored[(track.pk, shift)] = embedding
        if 0 in missing:
            _tuning_and_visuals(track, audio)
    return stored, failures


def _tuning_and_visuals(track: Track, audio: np.ndarray) -> None:
    """While the audio is decoded anyway: the tuning estimate, then the waveform and chromagram the label
    page draws (tuning-compensated), unless they are stored already: they depend on the audio alone, so
    embedding it again with another network (a new model, a pretraining's measurement) leaves them. A
    drawing failure is logged, never fails the analysis."""
    if track.tuning_cents is None:
        track.tuning_cents = float(estimate_tuning_cents(audio))
        Track.objects.filter(pk=track.pk).update(tuning_cents=track.tuning_cents)
    if track_visuals_stored(track) is not None:
        return
    try:
        track_visuals_write(track=track, visuals=track_visuals_compute(track=track, audio=audio))
    except Exception:
        logger.exception("drawing the visuals of track %s failed", track.pk)


def tracks_embed(*, track_ids: list[int]) -> list[int]:
    """Analyse newly imported tracks: embed them with the backbone the active version uses, mark them
    READY; returns the ids that now have embeddings. A track whose audio can't be decoded is marked
    FAILED with the reason, never retried."""
    backbone_name, checkpoint = analysis_backbone()
    fingerprint = fingerprint_for(backbone_name, checkpoint)
    done = set(
        Embedding.objects.filter(track_id__in=track_ids, fingerprint=fingerprint, semitones=0).values_list(
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
    claimed_ids = [t.pk for t in claimed]

    def alive() -> None:  # renew the batch's claim before each track (the recovery sweep watches it)
        Track.objects.filter(id__in=claimed_ids, status=Track.Status.PROCESSING).update(
            analysis_started_at=timezone.now()
        )

    try:
        _, failures = embeddings_ensure(
            claimed, backbone_name=backbone_name, checkpoint=checkpoint, alive=alive
        )
    except (OSError, DatabaseError) as error:
        Track.objects.filter(id__in=claimed_ids).update(
            status=Track.Status.PENDING, analysis_attempts=F("analysis_attempts") + 1
        )
        raise TransientAnalysisError(f"embedding interrupted: {error}") from error
    for track in claimed:
        if track.pk in failures:
            _fail(track, failures[track.pk])
        else:
            done.add(track.pk)
    Track.objects.filter(id__in=[t.pk for t in claimed if t.pk not in failures]).update(
        status=Track.Status.READY, error=""
    )
    return sorted(done)
