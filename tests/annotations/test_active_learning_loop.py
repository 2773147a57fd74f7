"""The loop end to end with a real worker: import → embed → predict → queue → label → retrain → new
version with metrics → re-prediction. And: the held-out split never reaches training."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

from annotations.models import Embedding, ModelVersion, Prediction, Track
from annotations.services.labels import LabelValue
from annotations.services.model_versions import model_training_request
from annotations.services.queue import annotation_submit, queue_next
from annotations.services.tracks import track_import
from annotations.worker.analysis import tracks_embed
from annotations.worker.prediction import tracks_predict
from annotations.worker.training import model_train
from ml.keys import ALL_KEYS
from tests.conftest import wait_for
from tests.factories import write_synthetic

pytestmark = pytest.mark.slow
KEYS = [ALL_KEYS[i] for i in (0, 7, 2, 9, 21, 16, 14, 19, 5, 10, 12, 3)]


def _library(folder, n: int) -> dict[str, str]:
    truth = {}
    for i in range(n):
        key = KEYS[i % len(KEYS)]
        path = write_synthetic(
            folder / f"track{i:02d}.wav", key=key.mir_eval, seed=100 + i, seconds=7, sample_rate=16000
        )
        truth[path.name] = key.mir_eval
    return truth


def test_loop_with_a_real_worker(celery_workers, tmp_path, settings, django_user_model):
    settings.KEYWEB = {**settings.KEYWEB, "TEST_FRACTION": 0.25}
    # The worker reads its own settings from the environment: a short training, and activation allowed on
    # the few held-out tracks this small library has.
    celery_workers(
        KEYWEB_TEST_FRACTION="0.25",
        KEYWEB_TRAINING_TIME_BUDGET_S="8",
        KEYWEB_ACTIVATION_TOLERANCE="1.0",
        KEYWEB_ACTIVATION_MIN_TRACKS="1",
    )
    call_command("setup_keyweb", stdout=io.StringIO())
    default = ModelVersion.objects.get(is_default=True)
    truth = _library(tmp_path / "library", 16)
    call_command("import_tracks", str(tmp_path / "library"), "--no-progress", stdout=io.StringIO())

    # Without anyone acting, every track is embedded and predicted by the shipped model.
    wait_for(
        lambda: Prediction.objects.filter(model_version=default).count() == 16,
        timeout=240,
        message="predictions for all 16 tracks",
    )
    assert Track.objects.filter(status="ready").count() == 16
    assert Embedding.objects.filter(backbone=default.backbone, semitones=0).count() == 16

    annotator = django_user_model.objects.create_user(username="lab", password="lab-password-1")
    labeled = 0
    while (track := queue_next(user=annotator)) is not None:
        annotation_submit(user=annotator, track=track, label=LabelValue.parse(truth[track.original_filename]))
        labeled += 1
    assert labeled == 16
    assert Track.objects.filter(consensus_label="key", split="test").exists()

    version, created = model_training_request(reason="test")
    assert created
    again, created_again = model_training_request(reason="second click")
    assert again == version and not created_again  # answered, not queued twice

    wait_for(
        lambda: ModelVersion.objects.get(pk=version.pk).status in ("ready", "failed"),
        timeout=300,
        message="the training to finish",
    )
    version.refresh_from_db()
    assert version.status == "ready", version.error
    n_test = Track.objects.filter(consensus_label="key", split="test").count()
    assert version.n_training_labels == 16 - n_test and version.n_test_labels == n_test
    for field in ("weighted", "correct", "fifth", "relative", "parallel", "other", "n", "confusion", "ece"):
        assert field in version.metrics
    assert version.metrics["n"] == n_test
    assert np.isclose(
        sum(version.metrics[f] for f in ("correct", "fifth", "relative", "parallel", "other")), 1
    )
    assert version.is_active and version.in_progress is None

    # Activation re-predicts the open tracks with the new version (all are labeled here, so add one).
    extra = write_synthetic(tmp_path / "late.wav", key="E minor", seed=999, seconds=7, sample_rate=16000)
    late = track_import(path=extra).track
    wait_for(
        lambda: Prediction.objects.filter(track=late, model_version=version).exists(),
        timeout=120,
        message="the new version's prediction of a late track",
    )


def test_the_test_split_is_never_trained_on(db, tmp_path, settings, monkeypatch):
    settings.KEYWEB = {**settings.KEYWEB, "TRAINING_TIME_BUDGET_S": 2}
    call_command("setup_keyweb", stdout=io.StringIO())
    truth = _library(tmp_path / "library", 8)
    for path in sorted((tmp_path / "library").glob("*.wav")):
        track = track_import(path=path, label=LabelValue.parse(truth[path.name])).track
        Track.objects.filter(pk=track.pk).update(split="test" if track.pk % 2 else "pool")
    ids = list(Track.objects.values_list("id", flat=True))
    tracks_embed(track_ids=ids)
    tracks_predict(track_ids=ids)

    seen_by_training: list[np.ndarray] = []
    import annotations.worker.training

    real_train = annotations.worker.training.train_key_model

    def recording_train(**kwargs):
        seen_by_training.extend(example.window_embeddings for example in kwargs["train"])
        return real_train(**kwargs)

    monkeypatch.setattr(annotations.worker.training, "train_key_model", recording_train)
    version, _ = model_training_request(reason="test")
    model_train(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "ready", version.error

    test_embeddings = [np.load(e.path) for e in Embedding.objects.filter(track__split="test", semitones=0)]
    pool_embeddings = [np.load(e.path) for e in Embedding.objects.filter(track__split="pool", semitones=0)]
    assert len(seen_by_training) == len(pool_embeddings) == 4
    for trained in seen_by_training:
        assert any(np.array_equal(trained, pool) for pool in pool_embeddings)
        assert not any(np.array_equal(trained, held_out) for held_out in test_embeddings)
    assert version.n_test_labels == 4 and version.metrics["n"] == 4
