"""Faults with real parts: a worker SIGKILLed mid-batch, mid-training or mid-pretraining, and a broker that
is down while the web side saves work. Every piece of work is done exactly once, after the fault, without a person.

The stale timeout is set to 6 s for these tests (KEYWEB_STALE_AFTER_S; 120 s by default, see
docs/operations.md), so recovery takes seconds instead of minutes.
"""

from __future__ import annotations

import io
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from django.core.management import call_command

from annotations import dispatch
from annotations.models import Embedding, ModelVersion, OutboxMessage, PretrainingRun, Track
from annotations.services.labels import LabelValue, annotation_import
from annotations.services.model_versions import model_training_request
from annotations.services.pretraining import pretraining_request
from annotations.services.tracks import track_import
from keyweb.celery import app
from tests.conftest import wait_for
from tests.factories import write_synthetic

pytestmark = pytest.mark.slow

STALE = {"KEYWEB_STALE_AFTER_S": "6"}
KEYS = ("C major", "A minor", "E major", "F# minor", "Bb major", "D minor", "G major", "B minor")


def _kill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _import(tmp_path, count: int, seconds: float) -> list[Track]:
    tracks = []
    for number in range(count):
        path = write_synthetic(
            tmp_path / f"t{number:02d}.wav",
            key=KEYS[number % 8],
            seed=number,
            seconds=seconds,
            sample_rate=16000,
        )
        tracks.append(track_import(path=path, queue_analysis=False).track)
    return tracks


def test_a_worker_killed_mid_batch_leaves_each_track_analysed_once_by_the_next(
    celery_workers, tmp_path, settings
):
    settings.KEYWEB = {**settings.KEYWEB, "STALE_AFTER_S": 6}
    tracks = _import(tmp_path, 16, seconds=40)
    first = celery_workers(**STALE)
    dispatch.analysis_start(track_ids=[t.pk for t in tracks])  # one batch of 16
    wait_for(
        lambda: Track.objects.filter(status=Track.Status.PROCESSING).exists(),
        timeout=120,
        interval=0.05,
        message="the batch to be claimed",
    )
    wait_for(lambda: Embedding.objects.exists(), timeout=120, interval=0.05, message="the first embedding")
    _kill(first)
    assert Track.objects.filter(status=Track.Status.PROCESSING).exists()  # killed mid-batch

    started = time.monotonic()
    celery_workers(**STALE)
    wait_for(
        lambda: Track.objects.filter(status=Track.Status.READY).count() == 16,
        timeout=180,
        message="all tracks analysed by the second worker",
    )
    recovery_s = time.monotonic() - started
    for track in Track.objects.all():
        assert Embedding.objects.filter(track=track, semitones=0).count() == 1  # exactly once
        assert track.analysis_attempts == 0 and track.analysis_interruptions <= 1  # no attempt burned
    print(f"recovered in {recovery_s:.1f} s after the new worker started")


def test_a_worker_killed_mid_training_has_it_trained_once_by_the_next(celery_workers, tmp_path, settings):
    settings.KEYWEB = {**settings.KEYWEB, "STALE_AFTER_S": 6}
    tracks = _import(tmp_path, 12, seconds=8)
    for track in tracks:
        annotation_import(track=track, label=LabelValue.parse(KEYS[tracks.index(track) % 8]))
    slow_training = {**STALE, "KEYWEB_TRAINING_TIME_BUDGET_S": "40", "KEYWEB_ACTIVATION_MIN_TRACKS": "1"}
    first = celery_workers(**slow_training)
    dispatch.analysis_start(track_ids=[t.pk for t in tracks])
    wait_for(
        lambda: Track.objects.filter(status=Track.Status.READY).count() == 12, timeout=120, message="analysis"
    )
    version, created = model_training_request(reason="test")
    assert created
    wait_for(
        lambda: ModelVersion.objects.filter(pk=version.pk, status="training", progress__gt=0.2).exists(),
        timeout=120,
        interval=0.05,
        message="training under way",
    )
    _kill(first)

    started = time.monotonic()
    celery_workers(**{**slow_training, "KEYWEB_TRAINING_TIME_BUDGET_S": "4"})
    wait_for(
        lambda: ModelVersion.objects.get(pk=version.pk).status in ("ready", "failed"),
        timeout=240,
        message="the training to finish on the second worker",
    )
    version.refresh_from_db()
    assert version.status == "ready", version.error
    assert version.attempts == 2 and version.in_progress is None
    assert ModelVersion.objects.filter(is_default=False).count() == 1  # the same version, run once more
    print(f"recovered in {time.monotonic() - started:.1f} s after the new worker started")


def test_a_worker_killed_mid_pretraining_has_the_next_continue_from_its_checkpoint(celery_workers, tmp_path):
    tracks = _import(tmp_path, 6, seconds=10)
    Track.objects.filter(pk__in=[t.pk for t in tracks]).update(
        status=Track.Status.READY, split=Track.Split.POOL
    )
    # A checkpoint after every step (KEYWEB_PRETRAINING_CHECKPOINT_S=0); the worker is killed as soon as
    # the first one is on disk, however fast this machine's steps are.
    environment = {**STALE, "KEYWEB_PRETRAINING_CHECKPOINT_S": "0"}
    first = celery_workers(**environment)
    steps = 40
    run, created = pretraining_request(steps=steps)
    assert created

    def checkpoint_saved() -> bool:
        path = PretrainingRun.objects.get(pk=run.pk).checkpoint_path
        return bool(path) and Path(path).is_file()

    wait_for(checkpoint_saved, timeout=180, interval=0.02, message="the first checkpoint")
    _kill(first)
    run.refresh_from_db()
    killed_at = torch.load(run.checkpoint_path, weights_only=True)["pretraining"]["step"]
    assert run.status == PretrainingRun.Status.RUNNING and 1 <= killed_at < steps  # killed mid-way

    started = time.monotonic()
    celery_workers(**environment)
    wait_for(
        lambda: PretrainingRun.objects.get(pk=run.pk).status in ("ready", "failed"),
        timeout=300,
        message="the pretraining to finish on the second worker",
    )
    run.refresh_from_db()
    assert run.status == PretrainingRun.Status.READY, run.error
    assert run.attempts == 2 and run.in_progress is None and run.steps_done == steps
    # It continued from the step the killed worker had saved, not from the start, and lost no step.
    assert run.resumed_from == killed_at
    final = torch.load(run.checkpoint_path, weights_only=True)["pretraining"]
    assert final["complete"] and final["step"] == steps
    assert [record["step"] for record in final["losses"]] == list(range(1, steps + 1))
    assert PretrainingRun.objects.count() == 1  # the same run, not a new one
    print(
        f"continued from step {killed_at} and finished {time.monotonic() - started:.1f} s after the new worker started"
    )


@pytest.fixture
def admin_client_api(admin_user):
    from tests.annotations.api.helpers import token_client

    client = token_client(admin_user)
    assert client.get("/api/v1/auth/me").status_code == 200  # load the URLconf before timing anything
    return client


@pytest.fixture
def broker_down(monkeypatch):
    """Publishing goes to a closed port, as when Redis is stopped; the worker keeps the real broker."""
    monkeypatch.setattr(app.conf, "broker_write_url", "redis://127.0.0.1:1/0")
    yield
    monkeypatch.undo()


def test_uploads_during_a_broker_outage_answer_fast_and_are_analysed_after_it(
    celery_workers, tmp_path, admin_client_api, broker_down, monkeypatch
):
    paths = [write_synthetic(tmp_path / f"u{n}.wav", key=KEYS[n], seed=n, seconds=3) for n in range(3)]
    timings = []
    for path in paths:
        with open(path, "rb") as audio:
            started = time.monotonic()
            response = admin_client_api.post("/api/v1/tracks", {"files": [audio]}, format="multipart")
            timings.append(time.monotonic() - started)
        assert response.status_code == 201, response.content  # saved, and said so: no 500 after commit
    assert max(timings) < 2.0, timings
    assert OutboxMessage.objects.count() == 3  # the work asked for is kept
    assert Track.objects.filter(status=Track.Status.PENDING).count() == 3

    monkeypatch.undo()  # Redis is back
    celery_workers()  # a worker start sweeps the outbox; beat does the same every minute
    wait_for(
        lambda: Track.objects.filter(status=Track.Status.READY).count() == 3,
        timeout=120,
        message="the uploads analysed after the outage",
    )
    assert OutboxMessage.objects.count() == 0


def test_a_training_requested_during_an_outage_starts_when_the_broker_returns(
    celery_workers, tmp_path, admin_client_api, broker_down, monkeypatch
):
    started = time.monotonic()
    response = admin_client_api.post("/api/v1/models/training", {}, format="json")
    assert time.monotonic() - started < 2.0
    assert response.status_code in (201, 202), response.content
    version = ModelVersion.objects.get(is_default=False)
    assert version.status == ModelVersion.Status.QUEUED
    monkeypatch.undo()
    worker = celery_workers()
    wait_for(
        lambda: ModelVersion.objects.get(pk=version.pk).status != ModelVersion.Status.QUEUED,
        timeout=120,
        message="the training to start after the outage",
    )
    assert worker.poll() is None


def test_import_tracks_says_in_one_line_that_analysis_waits_for_the_broker(tmp_path, broker_down, db):
    write_synthetic(tmp_path / "library" / "one.wav", key="C major", seed=1, seconds=3)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    call_command("import_tracks", str(tmp_path / "library"), "--no-progress", stdout=out, stderr=err)
    assert time.monotonic() - started < 10
    assert "Traceback" not in out.getvalue() + err.getvalue()
    pending = [line for line in (out.getvalue() + err.getvalue()).splitlines() if "task queue" in line]
    assert len(pending) == 1 and "start by itself" in pending[0]


def test_the_outbox_sweep_skips_messages_the_publisher_is_still_sending(db):
    OutboxMessage.objects.create(task_name=dispatch.ANALYSIS, args=[[1]])
    assert dispatch.outbox_flush(grace=timedelta(seconds=60)) == 0
    assert OutboxMessage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_activation_and_prediction_jobs_during_an_outage_answer_fast_and_keep_their_work(
    tmp_path, admin_client_api, broker_down, monkeypatch
):
    make = ModelVersion.objects.create
    version = make(name="v2", backbone="pitch_class", status="ready", weights_path="x.pt")
    Track.objects.update(status=Track.Status.READY)
    started = time.monotonic()
    response = admin_client_api.post(f"/api/v1/models/{version.pk}/activate", {}, format="json")
    assert time.monotonic() - started < 2.0 and response.status_code == 200, response.content
    path = write_synthetic(tmp_path / "loose.wav", key="A minor", seed=3, seconds=3)
    with open(path, "rb") as audio:
        started = time.monotonic()
        response = admin_client_api.post("/api/v1/predictions", {"file": audio}, format="multipart")
    assert time.monotonic() - started < 2.0 and response.status_code == 202, response.content
    assert dispatch.is_pending(dispatch.PREDICTION_JOB, response.json()["id"])

    monkeypatch.undo()  # Redis is back: the sweep sends what waited
    assert dispatch.outbox_flush() >= 1
    assert OutboxMessage.objects.count() == 0
