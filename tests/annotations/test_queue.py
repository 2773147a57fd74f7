"""The labeling queue: strategy order, leases, skip, undo, consensus and review, the held-out split."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from annotations.models import Annotation, Skip, Track
from annotations.services.labels import LabelValue
from annotations.services.queue import (
    QueueError,
    annotation_submit,
    annotation_undo,
    queue_next,
    queue_skip,
    queue_strategy_set,
    review_decide,
)
from ml.active import uncertainty_scores
from ml.keys import Key

from .queue_helpers import peaked, track_with_prediction

C_MAJOR = LabelValue.parse("C major")
A_MINOR = LabelValue.parse("A minor")


@pytest.fixture
def users(db):
    return [User.objects.create_user(username=f"user{i}", password="x-password-1") for i in range(3)]


@pytest.fixture
def pool_only(settings):
    settings.KEYWEB = {**settings.KEYWEB, "TEST_FRACTION": 0.0}


def test_uncertainty_scores_on_hand_made_vectors():
    confident = peaked(0, 0.9)
    torn = peaked(0, 0.45, 7, 0.44)  # C vs G: small margin, moderate entropy
    flat = [1 / 24] * 24  # maximal entropy
    scores = uncertainty_scores([confident, torn, flat])
    assert scores["entropy"].argmax() == 2 and scores["entropy"].argmin() == 0
    assert scores["margin"].argmax() == 2 and scores["margin"][1] > 0.98
    assert scores["least_confidence"].tolist() == pytest.approx([0.1, 0.55, 1 - 1 / 24])


@pytest.mark.parametrize(
    ("strategy", "expected_order"),
    [
        ("entropy", ["flat", "spread", "torn", "confident"]),
        ("margin", ["flat", "torn", "spread", "confident"]),
        ("least_confidence", ["flat", "spread", "torn", "confident"]),
    ],
)
def test_strategy_orders_the_queue(users, pool_only, strategy, expected_order):
    track_with_prediction("confident", peaked(0, 0.9))
    track_with_prediction("torn", peaked(0, 0.45, 7, 0.44))
    track_with_prediction("spread", peaked(3, 0.3))
    track_with_prediction("flat", [1 / 24] * 24)
    queue_strategy_set(strategy=strategy)
    served = []
    for _ in range(4):
        track = queue_next(user=users[0])
        served.append(track.title)
        annotation_submit(user=users[0], track=track, label=C_MAJOR)
    assert served == expected_order
    assert queue_next(user=users[0]) is None


def test_random_strategy_is_stable(users, pool_only):
    for i in range(6):
        track_with_prediction(f"t{i}", peaked(i, 0.5))
    queue_strategy_set(strategy="random")
    first = queue_next(user=users[0]).title
    Track.objects.update(lease_user=None, lease_expires_at=None)
    assert queue_next(user=users[1]).title == first


def test_unknown_strategy_is_refused(db):
    with pytest.raises(QueueError, match="unknown strategy 'loudest'"):
        queue_strategy_set(strategy="loudest")


def test_leases_keep_annotators_apart_and_expire(users, pool_only, settings):
    for i in range(3):
        track_with_prediction(f"t{i}", peaked(i, 0.3 + 0.1 * i))
    first = queue_next(user=users[0])
    assert queue_next(user=users[0]) == first  # same track while the lease holds
    second = queue_next(user=users[1])
    assert second != first
    Track.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_next(user=users[2]) == first  # an expired lease returns the track to the queue


def test_skip_is_recorded_and_not_served_again(users, pool_only):
    a = track_with_prediction("a", peaked(0, 0.2))
    b = track_with_prediction("b", peaked(0, 0.8))
    assert queue_next(user=users[0]) == a
    queue_skip(user=users[0], track=a)
    assert Skip.objects.filter(track=a, annotator=users[0]).exists()
    assert queue_next(user=users[0]) == b
    assert queue_next(user=users[1]) == a  # others still get it


def test_undo_withdraws_the_last_label_and_serves_it_again(users, pool_only):
    a = track_with_prediction("a", peaked(0, 0.2))
    track_with_prediction("b", peaked(0, 0.8))
    annotation_submit(user=users[0], track=queue_next(user=users[0]), label=C_MAJOR)
    assert Track.objects.get(pk=a.pk).consensus == Key.parse("C major")
    undone = annotation_undo(user=users[0])
    assert undone == a and undone.consensus_label == ""
    assert not Annotation.objects.exists()
    assert queue_next(user=users[0]) == a
    assert annotation_undo(user=users[1]) is None


def test_double_submission_is_refused_clearly(users, pool_only):
    a = track_with_prediction("a", peaked(0, 0.2))
    annotation_submit(user=users[0], track=a, label=C_MAJOR)
    with pytest.raises(QueueError, match="already labeled"):
        annotation_submit(user=users[0], track=a, label=A_MINOR)
    with pytest.raises(QueueError, match="tuning"):
        annotation_submit(user=users[1], track=a, label=A_MINOR, tuning_cents=80)


def test_disagreement_goes_to_review_and_the_reviewer_decides(users, pool_only, settings):
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    a = track_with_prediction("a", peaked(0, 0.2))
    annotation_submit(user=users[0], track=a, label=C_MAJOR)
    a.refresh_from_db()
    assert a.consensus_label == "" and not a.needs_review
    assert queue_next(user=users[1]) == a  # still open for a second opinion
    annotation_submit(user=users[1], track=a, label=A_MINOR)
    a.refresh_from_db()
    assert a.needs_review and a.consensus_label == ""
    assert queue_next(user=users[2]) is None  # disputed tracks leave the queue
    review_decide(reviewer=users[2], track=a, label=A_MINOR)
    a.refresh_from_db()
    assert not a.needs_review and a.consensus == Key.parse("A minor")
    assert Annotation.objects.filter(track=a).count() == 3  # nothing lost


def test_agreement_reaches_consensus(users, pool_only, settings):
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    a = track_with_prediction("a", peaked(0, 0.2))
    annotation_submit(user=users[0], track=a, label=C_MAJOR)
    annotation_submit(user=users[1], track=a, label=C_MAJOR)
    a.refresh_from_db()
    assert a.consensus == Key.parse("C major") and a.annotation_count == 2


def test_no_key_labels(users, pool_only):
    a = track_with_prediction("a", peaked(0, 0.2))
    annotation_submit(
        user=users[0], track=a, label=LabelValue.parse("modulating"), notes="goes to the dominant"
    )
    a.refresh_from_db()
    assert a.consensus_label == "modulating" and a.consensus_key is None


def test_test_split_is_served_to_keep_its_share(users, settings):
    settings.KEYWEB = {**settings.KEYWEB, "TEST_FRACTION": 0.25}
    for i in range(8):
        track_with_prediction(f"pool{i}", peaked(i, 0.2 + 0.05 * i))
    for i in range(4):
        track_with_prediction(f"test{i}", peaked(i, 0.5), split="test")
    splits = []
    for _ in range(8):
        track = queue_next(user=users[0])
        splits.append(track.split)
        annotation_submit(user=users[0], track=track, label=C_MAJOR)
    assert splits.count("test") == 2  # a quarter of the labels, drawn as the share falls behind
    assert splits[0] == "test"


def test_undo_leaves_the_user_one_lease(users, pool_only):
    a = track_with_prediction("a", peaked(0, 0.2))
    b = track_with_prediction("b", peaked(0, 0.8))
    annotation_submit(user=users[0], track=queue_next(user=users[0]), label=C_MAJOR)
    assert queue_next(user=users[0]) == b  # the next track is leased...
    annotation_undo(user=users[0])  # ...and released again when the label is withdrawn
    assert list(Track.objects.filter(lease_user=users[0])) == [a]
    assert queue_next(user=users[1]) == b
