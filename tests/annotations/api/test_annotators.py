"""/api/v1/annotators: agreement with the consensus and between annotators, checked against a hand count."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations.services.labels import LabelValue
from annotations.services.queue import review_decide

from .helpers import annotate, make_track, token_client


@pytest.fixture
def cleo(roles) -> User:
    user = User.objects.create_user(username="cleo", password="cleo-password-1")
    user.groups.add(roles["annotator"])
    return user


def test_agreement_matches_a_hand_count(annotator, other_annotator, cleo, reviewer, settings, db):
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    anna, bob = annotator, other_annotator
    agreed, reviewed, disputed, alone = (make_track() for _ in range(4))
    annotate(agreed, anna, "C major")
    annotate(agreed, bob, "C major")  # consensus C major
    annotate(reviewed, anna, "C major")
    annotate(reviewed, bob, "G major")
    review_decide(reviewer=reviewer, track=reviewed, label=LabelValue.parse("G major"))
    annotate(disputed, anna, "A minor")
    annotate(disputed, cleo, "C major")  # relative keys, still disputed: no consensus
    annotate(alone, anna, "no_key")  # one opinion: tells nothing about agreement

    response = token_client(reviewer).get("/api/v1/annotators")
    assert response.status_code == 200
    rows = {row["username"]: row for row in response.json()}
    assert set(rows) == {"anna", "bob", "cleo"}
    # anna: right on `agreed`; on `reviewed` C major against G major is a fifth below, which mir_eval
    # scores 0 (only a fifth above is 0.5).
    assert rows["anna"]["labels"] == 4
    assert rows["anna"]["with_consensus"] == {"n": 2, "exact": 0.5, "weighted": 0.5}
    assert rows["bob"]["with_consensus"] == {"n": 2, "exact": 1.0, "weighted": 1.0}
    assert rows["cleo"]["with_consensus"] == {"n": 0, "exact": None, "weighted": None}
    # anna–bob: same on `agreed` (1), C vs G on `reviewed` (0.5 one way, 0 the other: 0.25).
    assert rows["anna"]["with_others"] == [
        {"with": "bob", "n": 2, "exact": 0.5, "weighted": 0.625},
        {"with": "cleo", "n": 1, "exact": 0.0, "weighted": 0.3},  # relative keys, both ways 0.3
    ]
    assert rows["bob"]["with_others"] == [{"with": "anna", "n": 2, "exact": 0.5, "weighted": 0.625}]
    assert rows["cleo"]["with_others"] == [{"with": "anna", "n": 1, "exact": 0.0, "weighted": 0.3}]


def test_agreement_is_for_reviewers_and_admins(annotator, db):
    assert token_client(annotator).get("/api/v1/annotators").status_code == 403
    assert token_client(None).get("/api/v1/annotators").status_code == 401
