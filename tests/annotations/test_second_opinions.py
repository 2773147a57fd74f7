"""Second opinions: a stable share of tracks waits for a second annotator, who is served it blind to the
first label; agreement settles it, disagreement sends it to Review; agreement figures follow."""

from __future__ import annotations

import pytest

from annotations.models import Track
from annotations.selectors import track_wants_second_opinion
from annotations.services.labels import second_opinion_share_set
from tests.annotations.api.helpers import token_client
from tests.factories import make_track


@pytest.fixture
def people(roles, django_user_model):
    def make(name: str, role: str = "annotator"):
        user = django_user_model.objects.create_user(username=name, password=f"{name}-password-1")
        user.groups.add(roles[role])
        return user

    return {"ann": make("ann"), "bo": make("bo"), "rev": make("rev", "reviewer")}


def _label(user, key: str) -> dict:
    client = token_client(user)
    served = client.post("/api/v1/queue/next", {}, format="json")
    assert served.status_code == 200, served.content
    track = served.json()
    answer = client.post("/api/v1/queue/submit", {"track": track["id"], "key": key}, format="json")
    assert answer.status_code == 201, answer.content
    return track


def test_a_second_opinion_track_reaches_a_second_annotator_blind_and_agreement_settles_it(people, db):
    second_opinion_share_set(share=1.0)
    track = make_track(title="Tune in G")
    served_first = _label(people["ann"], "G major")
    assert served_first["id"] == track.pk
    track.refresh_from_db()
    assert track.consensus_label == "" and not track.needs_review  # waiting for the second opinion
    assert token_client(people["ann"]).post("/api/v1/queue/next", {}, format="json").status_code == 204

    served_second = token_client(people["bo"]).post("/api/v1/queue/next", {}, format="json").json()
    assert served_second["id"] == track.pk
    assert "ann" not in str(served_second) and "annotations" not in served_second  # blind to the first
    token_client(people["bo"]).post(
        "/api/v1/queue/submit", {"track": track.pk, "key": "G major"}, format="json"
    )
    track.refresh_from_db()
    assert track.consensus_label == "key" and track.consensus.mir_eval == "G major"


def test_a_disagreement_goes_to_review(people, db):
    second_opinion_share_set(share=1.0)
    track = make_track()
    _label(people["ann"], "G major")
    _label(people["bo"], "E minor")
    track.refresh_from_db()
    assert track.needs_review and track.consensus_label == ""
    reviews = token_client(people["rev"]).get("/api/v1/reviews").json()["results"]
    assert [row["id"] for row in reviews] == [track.pk]


def test_agreement_figures_match_a_hand_count(people, db):
    second_opinion_share_set(share=1.0)
    tracks = [make_track() for _ in range(3)]
    for key_ann, key_bo in (("C major", "C major"), ("A minor", "A minor"), ("D major", "A major")):
        _label(people["ann"], key_ann)
        _label(people["bo"], key_bo)
    rows = {row["username"]: row for row in token_client(people["rev"]).get("/api/v1/annotators").json()}
    pair = rows["ann"]["with_others"][0]
    assert pair["with"] == "bo" and pair["n"] == 3
    assert pair["exact"] == pytest.approx(2 / 3, abs=1e-4)
    # D major vs A major is a fifth one way (0.5) and other the other way (0): (1 + 1 + 0.25) / 3.
    assert pair["weighted"] == pytest.approx((1 + 1 + 0.25) / 3, abs=1e-4)
    assert rows["ann"]["with_consensus"]["n"] == 2 and rows["ann"]["with_consensus"]["exact"] == 1.0
    assert len(tracks) == Track.objects.count()


def test_the_share_is_stable_and_about_what_was_asked(db):
    tracks = [make_track() for _ in range(400)]
    chosen = [t.pk for t in tracks if track_wants_second_opinion(t, share=0.1)]
    assert 20 <= len(chosen) <= 60
    assert chosen == [t.pk for t in tracks if track_wants_second_opinion(t, share=0.1)]
    more = {t.pk for t in tracks if track_wants_second_opinion(t, share=0.2)}
    assert set(chosen) <= more  # raising the share only adds tracks


def test_admins_set_the_share_through_the_api(people, db, admin_user):
    client = token_client(admin_user)
    assert (
        client.patch("/api/v1/settings/labeling", {"second_opinion_share": 0.25}, format="json").json()[
            "second_opinion_share"
        ]
        == 0.25
    )
    assert (
        client.patch("/api/v1/settings/labeling", {"second_opinion_share": 2}, format="json").status_code
        == 400
    )
    assert token_client(people["ann"]).get("/api/v1/settings/labeling").status_code == 403
