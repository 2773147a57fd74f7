"""A real Celery worker process consumes tasks from the real Redis broker and writes to the test database."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from annotations.models import Embedding, Prediction, Track
from annotations.selectors import track_visuals_stored
from annotations.services.tracks import track_import
from annotations.tasks import embed_tracks_task
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def test_worker_embeds_and_predicts_an_imported_track(celery_worker_process, good_files):
    call_command("setup_keyweb", stdout=io.StringIO())
    track = track_import(path=good_files[1]).track  # queues embedding on commit

    prediction = wait_for(
        lambda: Prediction.objects.filter(track=track).first(), timeout=120, message="the worker's prediction"
    )
    track.refresh_from_db()
    assert track.status == Track.Status.READY and track.error == ""
    assert track.tuning_cents is not None and abs(track.tuning_cents) <= 50
    visuals = track_visuals_stored(track)  # drawn by the worker while the audio was decoded
    assert visuals is not None and len(visuals["chroma"]["pitch_classes"]) == 12
    assert visuals["tuning_cents"] == pytest.approx(track.tuning_cents)
    embedding = Embedding.objects.get(track=track, semitones=0)
    stored = np.load(embedding.path)
    assert stored.shape == (embedding.n_windows, embedding.dim)
    assert len(prediction.probabilities) == 24
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-3)
    assert prediction.model_version.is_active
    assert track.priority == pytest.approx(prediction.entropy, rel=1e-4)

    # A duplicated task finds the work done and changes nothing.
    before = (Embedding.objects.count(), Prediction.objects.count(), Path(embedding.path).stat().st_mtime_ns)
    embed_tracks_task.delay([track.pk]).get(timeout=60)
    assert before == (
        Embedding.objects.count(),
        Prediction.objects.count(),
        Path(embedding.path).stat().st_mtime_ns,
    )


def test_worker_marks_undecodable_audio_failed_with_the_reason(celery_worker_process, good_files):
    track = track_import(path=good_files[0]).track
    wait_for(
        lambda: Track.objects.get(pk=track.pk).status == Track.Status.READY,
        timeout=120,
        message="the first analysis to finish",
    )
    # The stored file is damaged after import (a disk problem, say): analysis must fail once, clearly.
    Path(settings.MEDIA_ROOT, track.audio.name).write_bytes(b"RIFF\x00\x00garbage" * 10)
    Embedding.objects.filter(track=track).delete()
    Track.objects.filter(pk=track.pk).update(status=Track.Status.PENDING, analysis_attempts=0)

    embed_tracks_task.delay([track.pk]).get(timeout=60)
    track.refresh_from_db()
    assert track.status == Track.Status.FAILED
    assert "audio" in track.error.lower()
    assert track.analysis_attempts == 1
    embed_tracks_task.delay([track.pk]).get(timeout=60)  # a failed track is never retried
    track.refresh_from_db()
    assert track.analysis_attempts == 1
