"""Training requests: one at a time, and a broker outage never leaves a phantom 'queued' version."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from annotations.models import ModelVersion
from annotations.services.model_versions import (
    TrainingQueueUnavailable,
    model_training_request,
    model_version_should_activate,
)
from keyweb.celery import app


@pytest.mark.django_db(transaction=True)
def test_broker_outage_fails_the_version_instead_of_blocking_training(monkeypatch):
    def broker_down(*args, **kwargs):  # fault injection: Redis unreachable at publish time
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    with pytest.raises(TrainingQueueUnavailable, match="unreachable"):
        model_training_request(reason="test")
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.FAILED and version.in_progress is None
    assert "Redis" in version.error
    monkeypatch.undo()
    second, created = model_training_request(reason="after the outage")
    assert created and second.pk != version.pk


@pytest.mark.django_db(transaction=True)
def test_only_one_training_at_a_time():
    first, created = model_training_request(reason="one")
    again, created_again = model_training_request(reason="two")
    assert created and not created_again and again == first
    assert ModelVersion.objects.filter(in_progress=True).count() == 1


@pytest.mark.parametrize(
    ("candidate", "active", "tolerance", "expected"),
    [
        (0.80, 0.80, 0.01, True),
        (0.795, 0.80, 0.01, True),
        (0.78, 0.80, 0.01, False),
        (None, 0.5, 0.01, False),
        (0.3, None, 0.01, True),
    ],
)
def test_activation_rule(settings, candidate, active, tolerance, expected):
    settings.KEYWEB = {**settings.KEYWEB, "ACTIVATION_TOLERANCE": tolerance}
    assert model_version_should_activate(candidate_weighted=candidate, active_weighted=active) is expected


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
