"""Pretraining the learned backbone on the library: the command with its progress bar, the held-out split
kept out, one run at a time, resuming after a worker died, and the checkpoint recorded for the next
training."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import torch
from django.core.management import call_command
from django.utils import timezone

from annotations import dispatch
from annotations.models import Embedding, OutboxMessage, PretrainingRun, Track
from annotations.services.labels import LabelValue, annotation_import
from annotations.services.model_versions import model_training_request
from annotations.services.pretraining import pretraining_request
from annotations.services.recovery import pretrainings_release_stale
from annotations.services.tracks import track_import
from annotations.worker.pretraining import pretraining_checkpoint_path, pretraining_run
from keyweb.celery import app
from tests.factories import write_synthetic

pytestmark = pytest.mark.slow


@pytest.fixture
def library(tmp_path, db):
    tracks = []
    for number, key in enumerate(("C major", "A minor", "G major", "E minor", "D major")):
        path = write_synthetic(
            tmp_path / f"p{number}.wav", key=key, seed=number, seconds=10, sample_rate=16000
        )
        track = track_import(path=path, queue_analysis=False).track
        Track.objects.filter(pk=track.pk).update(status=Track.Status.READY, split=Track.Split.POOL)
        tracks.append(track)
    Track.objects.filter(pk=tracks[-1].pk).update(split=Track.Split.TEST)  # held out: never pretrained on
    annotation_import(track=tracks[0], label=LabelValue.parse("C major"))
    annotation_import(track=tracks[-1], label=LabelValue.parse("D major"))
    return tracks


def test_the_command_pretrains_on_the_pool_split_and_the_next_training_uses_it(
    library, settings, monkeypatch
):
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)  # no worker here
    out = io.StringIO()
    call_command("pretrain_backbone", "--steps", "2", "--no-progress", stdout=out)
    run = PretrainingRun.objects.get()
    assert run.status == PretrainingRun.Status.READY, run.error
    assert run.n_tracks == 4 and run.n_labelled == 1  # the held-out track never enters
    assert run.steps_done == 2 and len(run.checkpoint_sha256) == 64
    checkpoint = torch.load(run.checkpoint_path, weights_only=True)
    assert checkpoint["pretraining"]["step"] == 2
    assert "The next model training uses it" in out.getvalue()
    # What it bought, before any head: the network alone on the held-out key-labelled track (D major),
    # with the shipped weights it started from and with its checkpoint, scored and paired.
    held_out = run.held_out
    assert held_out["n"] == 1
    for side in ("before", "after"):
        assert held_out[side]["n"] == 1 and held_out[side]["weighted"] in (0.0, 0.2, 0.3, 0.5, 1.0)
    assert held_out["gain"]["mean"] == pytest.approx(
        held_out["after"]["weighted"] - held_out["before"]["weighted"]
    )
    assert f"on 1 held-out track (gain {held_out['gain']['mean']:+.3f}" in out.getvalue()
    # Its embeddings are recorded, so the next training's held-out evaluation does not compute them again.
    held_out_track = library[-1]
    assert held_out_track.embeddings.filter(fingerprint__startswith="skey").count() == 2

    settings.KEYWEB = {**settings.KEYWEB, "BACKBONE": "skey"}
    version, created = model_training_request(reason="after pretraining")
    assert created and version.backbone == "skey" and version.backbone_checkpoint == run.checkpoint_path


def test_one_pretraining_at_a_time(library, monkeypatch):
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    first, created = pretraining_request(steps=5)
    again, created_again = pretraining_request(steps=5)
    assert created and not created_again and again == first


def test_a_killed_pretraining_continues_from_its_checkpoint(library, settings, monkeypatch):
    settings.KEYWEB = {**settings.KEYWEB, "STALE_AFTER_S": 60}
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    run, _ = pretraining_request(steps=1, on_worker=False)
    assert pretraining_run(run_id=run.pk).status == PretrainingRun.Status.READY
    # The same run asked for more steps, then its worker died mid-way: RUNNING, stale, checkpoint at step 1.
    PretrainingRun.objects.filter(pk=run.pk).update(
        status=PretrainingRun.Status.RUNNING,
        in_progress=True,
        steps_total=2,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    OutboxMessage.objects.all().delete()
    assert pretrainings_release_stale() == 1
    assert dispatch.is_pending(dispatch.PRETRAINING, run.pk) or OutboxMessage.objects.count() == 0
    run.refresh_from_db()
    assert run.status == PretrainingRun.Status.QUEUED
    finished = pretraining_run(run_id=run.pk)
    assert finished.status == PretrainingRun.Status.READY and finished.steps_done == 2
    assert finished.attempts == 2
    checkpoint = torch.load(pretraining_checkpoint_path(run.pk), weights_only=True)
    assert checkpoint["pretraining"]["step"] == 2 and len(checkpoint["pretraining"]["losses"]) == 2


def test_a_first_attempt_replaces_a_checkpoint_another_run_left_under_its_id(library, monkeypatch):
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    run, _ = pretraining_request(steps=2, on_worker=False)
    left = pretraining_checkpoint_path(run.pk)  # e.g. the database was reset and the model folder kept
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"not this run's checkpoint")
    finished = pretraining_run(run_id=run.pk)
    assert finished.status == PretrainingRun.Status.READY, finished.error
    assert finished.steps_done == 2 and finished.resumed_from == 0
    assert torch.load(left, weights_only=True)["pretraining"]["step"] == 2


def test_held_out_comparison_without_labelled_held_out_tracks_says_so(library):
    from annotations.services.pretraining import held_out_text
    from annotations.worker.pretraining import held_out_comparison

    Track.objects.filter(split=Track.Split.TEST).update(consensus_label="", consensus_key=None)
    assert held_out_comparison(before="", after="", alive=lambda: None) == {"n": 0}
    assert "no held-out track has a key label yet" in held_out_text({"n": 0})


def test_a_failed_measurement_leaves_the_pretraining_ready_and_says_why(library, monkeypatch):
    import annotations.worker.pretraining as worker_pretraining

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    monkeypatch.setattr(worker_pretraining, "embeddings_ensure", disk_full)
    run, _ = pretraining_request(steps=1, on_worker=False)
    finished = pretraining_run(run_id=run.pk)
    assert finished.status == PretrainingRun.Status.READY and len(finished.checkpoint_sha256) == 64
    assert finished.held_out["n"] == 0 and "No space left on device" in finished.held_out["error"]
    from annotations.services.pretraining import held_out_text

    assert "the checkpoint is usable" in held_out_text(finished.held_out)


def test_embedding_with_another_network_leaves_the_drawn_visuals(library):
    from annotations.selectors import track_visuals_path, track_visuals_stored
    from annotations.worker.analysis import embeddings_ensure

    track = library[0]
    embeddings_ensure([track], backbone_name="pitch_class")
    path = track_visuals_path(track)
    drawn = path.stat().st_mtime_ns
    track.refresh_from_db()
    assert track_visuals_stored(track) is not None
    # Another network's embedding (what a pretraining's measurement or a new model computes) keeps them...
    stored, failures = embeddings_ensure([track], backbone_name="skey")
    assert (track.pk, 0) in stored and not failures
    assert path.stat().st_mtime_ns == drawn
    # ...and draws them again only when they are gone.
    path.unlink()
    Embedding.objects.filter(track=track, backbone="skey").delete()
    embeddings_ensure([track], backbone_name="skey")
    assert track_visuals_stored(track) is not None


def test_held_out_comparison_reports_its_progress_track_by_track(library):
    from annotations.worker.pretraining import held_out_comparison

    Track.objects.filter(pk__in=[t.pk for t in library[1:3]]).update(split=Track.Split.TEST)
    annotation_import(track=library[1], label=LabelValue.parse("A minor"))
    fractions = []
    held_out = held_out_comparison(before="", after="", alive=lambda: None, progress=fractions.append)
    assert held_out["n"] == 2  # D major and A minor; the unlabelled held-out track is not read
    assert fractions == [0.0, 0.25, 0.5, 0.75, 1.0]  # two tracks, before and after
