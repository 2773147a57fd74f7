"""Training requests: one at a time (in the database), recovered when their worker dies, kept during a
broker outage, and activated only when measured better on the same held-out tracks."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from annotations import dispatch
from annotations.models import ModelVersion
from annotations.services.model_versions import activation_decide, model_training_request
from annotations.services.recovery import trainings_release_stale
from keyweb.celery import app


@pytest.mark.django_db(transaction=True)
def test_broker_outage_keeps_the_training_queued_and_the_sweep_starts_it_later(monkeypatch):
    """Regression: a request during a Redis outage was told it failed after committing. Now the version
    stays queued with its message in the outbox, and the sweep publishes it once the broker is back."""
    sent: list[tuple[str, list]] = []

    def broker_down(*args, **kwargs):  # fault injection: Redis unreachable at publish time
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    version, created = model_training_request(reason="test")
    assert created and version.status == ModelVersion.Status.QUEUED and version.in_progress
    assert dispatch.is_pending(dispatch.TRAINING, version.pk)
    again, created_again = model_training_request(reason="second click")
    assert again == version and not created_again  # still one training, not a phantom and a new one
    monkeypatch.setattr(app, "send_task", lambda name, args, **kwargs: sent.append((name, args)))
    assert dispatch.outbox_flush(grace=timedelta(0)) == 1
    assert sent == [(dispatch.TRAINING, [version.pk])]
    assert not dispatch.is_pending(dispatch.TRAINING, version.pk)


@pytest.mark.django_db(transaction=True)
def test_parallel_training_requests_start_one_training():
    """Regression: eight parallel requests created six versions (four named v3); the database now allows
    one version in progress."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def request(number: int):
        try:
            return model_training_request(reason=f"parallel {number}")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(request, range(8)))
    assert sum(created for _, created in results) == 1
    assert len({version.pk for version, _ in results}) == 1
    assert ModelVersion.objects.filter(is_default=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_second_training_in_progress():
    ModelVersion.objects.create(name="a", backbone="pitch_class", in_progress=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(name="b", backbone="pitch_class", in_progress=True)


@pytest.mark.django_db(transaction=True)
def test_a_training_whose_worker_died_is_run_again_once_then_failed(settings, monkeypatch):
    """Regression: a SIGKILLed training stayed `training` forever and answered every later request."""
    settings.KEYWEB = {**settings.KEYWEB, "STALE_AFTER_S": 60}
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    long_ago = timezone.now() - timedelta(minutes=5)
    version = ModelVersion.objects.create(
        name="v1",
        backbone="pitch_class",
        status="training",
        in_progress=True,
        attempts=1,
        heartbeat_at=long_ago,
    )
    fresh, created = model_training_request(reason="after the crash")
    assert fresh == version and not created  # released and queued again, not a second version
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.QUEUED and version.in_progress
    ModelVersion.objects.filter(pk=version.pk).update(status="training", attempts=2, heartbeat_at=long_ago)
    assert trainings_release_stale() == 1
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.FAILED and version.in_progress is None
    assert "stopped 2 times" in version.error
    assert model_training_request(reason="next")[1]  # the next request starts a new training


@pytest.mark.django_db(transaction=True)
def test_a_live_training_is_left_alone(settings):
    settings.KEYWEB = {**settings.KEYWEB, "STALE_AFTER_S": 60}
    ModelVersion.objects.create(
        name="v1", backbone="pitch_class", status="training", in_progress=True, heartbeat_at=timezone.now()
    )
    assert trainings_release_stale() == 0


@pytest.mark.django_db(transaction=True)
def test_only_one_training_at_a_time():
    first, created = model_training_request(reason="one")
    again, created_again = model_training_request(reason="two")
    assert created and not created_again and again == first
    assert ModelVersion.objects.filter(in_progress=True).count() == 1


def test_activation_needs_enough_shared_tracks(settings):
    settings.KEYWEB = {**settings.KEYWEB, "ACTIVATION_MIN_TRACKS": 20}
    decision = activation_decide(
        candidate_scores=[1.0] * 11, active_scores=[0.5] * 11, candidate_ece=0.3, active_ece=0.1
    )
    assert not decision["activate"] and "only 11" in decision["reason"]  # weighted 1.000 on 11 tracks


def test_activation_compares_track_by_track_with_a_margin(settings):
    settings.KEYWEB = {**settings.KEYWEB, "ACTIVATION_MIN_TRACKS": 20, "ACTIVATION_TOLERANCE": 0.01}
    rng = np.random.default_rng(1)
    active = rng.choice([0.0, 0.3, 0.5, 1.0], size=60, p=[0.2, 0.1, 0.1, 0.6])
    better = np.where(rng.random(60) < 0.3, 1.0, active)
    assert activation_decide(
        candidate_scores=better, active_scores=active, candidate_ece=0.05, active_ece=0.06
    )["activate"]
    worse = np.where(rng.random(60) < 0.3, 0.0, active)
    decision = activation_decide(
        candidate_scores=worse, active_scores=active, candidate_ece=0.05, active_ece=0.06
    )
    assert not decision["activate"] and "worse" in decision["reason"]
    noisy = active.copy()
    noisy[:6], noisy[6:12] = 1.0, 0.0  # as many wins as losses: not clearly as good
    decision = activation_decide(
        candidate_scores=noisy + 1e-9, active_scores=active, candidate_ece=0.05, active_ece=0.06
    )
    assert not decision["activate"] and decision["risk_of_worse"] > 0.2


def test_activation_refuses_a_much_worse_calibration(settings):
    settings.KEYWEB = {**settings.KEYWEB, "ACTIVATION_MIN_TRACKS": 5}
    decision = activation_decide(
        candidate_scores=[1.0] * 30, active_scores=[1.0] * 30, candidate_ece=0.30, active_ece=0.10
    )
    assert not decision["activate"] and "calibrated" in decision["reason"]


def test_without_a_usable_active_model_any_measured_candidate_wins():
    decision = activation_decide(
        candidate_scores=[0.3] * 3, active_scores=None, candidate_ece=0.2, active_ece=None
    )
    assert decision["activate"]


@pytest.mark.django_db(transaction=True)
def test_beat_check_retrains_once_enough_new_labels_arrived(settings, django_user_model):
    from annotations.selectors import labels_since_last_training
    from annotations.services.labels import LabelValue
    from annotations.services.model_versions import retrain_if_due
    from annotations.services.queue import annotation_submit

    from .queue_helpers import peaked, track_with_prediction

    settings.KEYWEB = {**settings.KEYWEB, "RETRAIN_MIN_NEW_LABELS": 3}
    user = django_user_model.objects.create_user(username="lab", password="lab-password-1")
    tracks = [track_with_prediction(f"t{i}", peaked(i, 0.4)) for i in range(5)]
    for track in tracks[:2]:
        annotation_submit(user=user, track=track, label=LabelValue.parse("C major"))
    assert labels_since_last_training() == 2 and retrain_if_due() is None
    annotation_submit(user=user, track=tracks[2], label=LabelValue.parse("ambiguous"))
    assert retrain_if_due() is None  # no-key labels don't train the 24-way head
    annotation_submit(user=user, track=tracks[3], label=LabelValue.parse("G major"))
    version = retrain_if_due()
    assert version is not None and version.status == ModelVersion.Status.QUEUED
    assert retrain_if_due() is None  # the running one answers; nothing queued twice
    assert labels_since_last_training() == 0  # counted from the new version on


@pytest.mark.django_db(transaction=True)
def test_activation_repredicts_labeled_tracks_too(monkeypatch):
    """Regression: only open tracks were re-predicted, so labeled ones showed no prediction afterwards."""
    from annotations.services.model_versions import model_version_activate
    from tests.factories import make_track

    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kwargs: sent.append((name, args)))
    open_track = make_track()
    labeled = make_track(consensus_label="key", consensus_key=0)
    version = ModelVersion.objects.create(name="v2", backbone="pitch_class", status="ready")
    model_version_activate(version=version)
    predicted = {track_id for name, args in sent if name == dispatch.PREDICTION for track_id in args[0]}
    assert {open_track.pk, labeled.pk} <= predicted


@pytest.mark.django_db(transaction=True)
def test_a_queued_training_whose_message_was_lost_is_sent_again_once_per_interval(monkeypatch):
    from annotations.services.recovery import trainings_requeue_lost

    sent: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kwargs: sent.append(name))
    version = ModelVersion.objects.create(
        name="v1", backbone="pitch_class", status="queued", in_progress=True
    )
    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    assert trainings_requeue_lost() == 1 and sent == [dispatch.TRAINING]
    assert trainings_requeue_lost() == 0  # not again on every sweep while no worker takes it


@pytest.mark.django_db(transaction=True)
def test_an_upgrade_that_ships_another_default_head_lets_it_predict(tmp_path, monkeypatch):
    """Regression: the default version pins the backbone fingerprint at its first use; after an upgrade
    that changes the features and ships a matching head, the old pin refused the new head. setup_keyweb
    now notices the shipped head changed (its metrics sidecar) and drops the pin and the old metrics."""
    import io
    import json

    from django.core.management import call_command

    from annotations.management.commands import setup_keyweb

    head = tmp_path / "default_head_skey.pt"
    head.write_bytes(b"weights")
    head.with_suffix(".json").write_text(json.dumps({"weighted": 0.886}))
    monkeypatch.setattr(setup_keyweb, "default_head_path", lambda backbone: head)
    call_command("setup_keyweb", stdout=io.StringIO())
    version = ModelVersion.objects.get(is_default=True)
    ModelVersion.objects.filter(pk=version.pk).update(backbone_fingerprint="skey:features2:old")

    call_command("setup_keyweb", stdout=io.StringIO())  # same release: the pin stays
    version.refresh_from_db()
    assert version.backbone_fingerprint == "skey:features2:old" and version.metrics == {"weighted": 0.886}

    head.with_suffix(".json").write_text(json.dumps({"weighted": 0.890}))  # the upgrade
    out = io.StringIO()
    call_command("setup_keyweb", stdout=out)
    version.refresh_from_db()
    assert version.backbone_fingerprint == "" and version.metrics == {"weighted": 0.890}
    assert "shipped head changed" in out.getvalue()
    assert ModelVersion.objects.filter(is_default=True).count() == 1 and version.is_active


def _version(tmp_path, name: str, *, recorded: str | None, pin: str = "", is_default: bool = False):
    """A version whose head file records `recorded` (None: nothing) and whose row pins `pin`."""
    from ml.heads import HeadConfig, KeyHead, save_head

    config = HeadConfig(backbone="pitch_class", input_dim=12, hidden_layers=0)
    extra = {"backbone_fingerprint": recorded} if recorded else {}
    path = save_head(
        tmp_path / f"{name}.pt", head=KeyHead(config=config), config=config, metrics=None, extra=extra
    )
    return ModelVersion.objects.create(
        name=name,
        backbone="pitch_class",
        is_default=is_default,
        weights_path=str(path),
        backbone_fingerprint=pin,
    )


@pytest.mark.django_db
def test_the_default_head_follows_its_file_and_a_trained_head_its_pin(tmp_path):
    """The shipped head's file says which embeddings it was made for: it replaces a pin left by an older
    release. A trained version keeps its own pin, and embeddings it was not trained on are refused."""
    from annotations.worker.backbones import FingerprintMismatch, fingerprint_for, head_for

    today = fingerprint_for("pitch_class")
    shipped = _version(
        tmp_path, "shipped", recorded=today, pin="pitch_class-from-an-older-release", is_default=True
    )
    assert head_for(shipped).config.input_dim == 12
    shipped.refresh_from_db()
    assert shipped.backbone_fingerprint == today

    unrecorded = _version(tmp_path, "unrecorded", recorded=None)
    head_for(unrecorded)  # a file that records nothing: today's features, pinned at first use
    unrecorded.refresh_from_db()
    assert unrecorded.backbone_fingerprint == today

    trained = _version(tmp_path, "trained", recorded=today, pin="pitch_class-other-features")
    with pytest.raises(FingerprintMismatch, match="retrain"):
        head_for(trained)
    other_weights = _version(tmp_path, "other-weights", recorded="pitch_class-other-weights")
    with pytest.raises(FingerprintMismatch):
        head_for(other_weights)
