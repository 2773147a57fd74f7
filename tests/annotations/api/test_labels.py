"""Annotations scoped by role, the queue through the API, and reviewer decisions."""

from __future__ import annotations

import pytest

from annotations.models import Annotation, Skip, Track

from .helpers import annotate, error_fields, make_track, predict, token_client


def test_submit_a_label_in_any_notation(annotator, db):
    track = make_track()
    response = token_client(annotator).post(
        "/api/v1/annotations",
        {"track": track.pk, "key": "3A", "tuning_cents": -8, "notes": "clear"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["key"], body["camelot"], body["annotator"], body["source"]) == (
        "Bb minor",
        "3A",
        "anna",
        "annotator",
    )
    track.refresh_from_db()
    assert track.consensus_label == "key" and track.consensus.mir_eval == "Bb minor"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"track": 1, "key": "H major"}, ["key"]),
        ({"track": "one", "key": "C major"}, ["track"]),
        ({"track": 1, "key": 7}, ["key"]),
        ({"key": "C major"}, ["track"]),
        ({"track": 1, "key": "C major", "tuning_cents": 80}, ["tuning_cents"]),
        ({"track": 1, "key": "C major", "time_spent_s": "long"}, ["time_spent_s"]),
        ({"track": 999999, "key": "C major"}, ["track"]),
    ],
)
def test_bad_annotations_name_the_field(annotator, db, body, fields):
    make_track()
    response = token_client(annotator).post("/api/v1/annotations", body, format="json")
    assert response.status_code == 400
    assert error_fields(response) == fields
    assert Annotation.objects.count() == 0


def test_malformed_json_is_a_400_on_the_body(annotator, db):
    response = token_client(annotator).post(
        "/api/v1/annotations", data='{"track": 1, "key": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error" and error_fields(response) == ["body"]


def test_labeling_twice_is_a_conflict(annotator, db):
    track = make_track()
    client = token_client(annotator)
    client.post("/api/v1/annotations", {"track": track.pk, "key": "C major"}, format="json")
    response = client.post("/api/v1/annotations", {"track": track.pk, "key": "D major"}, format="json")
    assert response.status_code == 409 and "undo" in response.json()["detail"]


def test_annotators_see_only_their_own_annotations(annotator, other_annotator, reviewer, db):
    track = make_track()
    mine = annotate(track, annotator, "C major")
    theirs = annotate(track, other_annotator, "A minor")
    anna = token_client(annotator)
    assert [a["id"] for a in anna.get("/api/v1/annotations").json()["results"]] == [mine.pk]
    assert anna.get(f"/api/v1/annotations/{theirs.pk}").status_code == 404
    assert anna.get("/api/v1/annotations?annotator=bob").json()["count"] == 0
    rita = token_client(reviewer)
    assert rita.get("/api/v1/annotations").json()["count"] == 2
    assert rita.get("/api/v1/annotations?annotator=bob&key=Am").json()["results"][0]["id"] == theirs.pk


def test_queue_next_submit_skip_undo(annotator, db):
    first, second = make_track(priority=2.0), make_track(priority=1.0)
    client = token_client(annotator)
    served = client.post("/api/v1/queue/next").json()
    assert served["id"] in (first.pk, second.pk) and served["audio_url"].endswith("/audio")
    assert "prediction" not in served
    assert client.post("/api/v1/queue/next").json()["id"] == served["id"]  # the lease holds

    submitted = client.post("/api/v1/queue/submit", {"track": served["id"], "key": "E major"}, format="json")
    assert submitted.status_code == 201
    following = client.post("/api/v1/queue/next").json()
    assert following["id"] != served["id"]

    skipped = client.post("/api/v1/queue/skip", {"track": following["id"]}, format="json")
    assert skipped.json() == {"skipped": following["id"]} and Skip.objects.count() == 1
    assert client.post("/api/v1/queue/next").status_code == 204

    undone = client.post("/api/v1/queue/undo")
    assert undone.status_code == 200 and undone.json()["track"]["id"] == served["id"]
    assert not Annotation.objects.exists()
    assert client.post("/api/v1/queue/undo").status_code == 409


def test_reviewers_resolve_disagreements(annotator, other_annotator, reviewer, settings, db):
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    track = make_track()
    annotate(track, annotator, "C major")
    annotate(track, other_annotator, "A minor")
    assert Track.objects.get(pk=track.pk).needs_review

    assert (
        token_client(annotator).post(f"/api/v1/tracks/{track.pk}/review", {"key": "C major"}).status_code
        == 403
    )
    rita = token_client(reviewer)
    assert [t["id"] for t in rita.get("/api/v1/reviews").json()["results"]] == [track.pk]
    bad = rita.post(f"/api/v1/tracks/{track.pk}/review", {"key": "X minor"}, format="json")
    assert bad.status_code == 400 and error_fields(bad) == ["key"]
    decided = rita.post(
        f"/api/v1/tracks/{track.pk}/review", {"key": "Am", "notes": "bass says A"}, format="json"
    )
    assert decided.status_code == 200
    assert decided.json()["consensus"] == {"label": "key", "key": "A minor", "camelot": "8A"}
    assert len(decided.json()["annotations"]) == 3
    assert rita.get("/api/v1/reviews").json()["count"] == 0


def test_queue_shows_the_models_top_three_for_pool_tracks_and_none_for_held_out_ones(
    annotator, active_model, db
):
    """The suggestion rule (docs/ui.md) holds for REST clients as for the label page."""
    pool = make_track(priority=2.0, split=Track.Split.POOL)
    held_out = make_track(priority=1.0, split=Track.Split.TEST)
    predict(pool, active_model, "A minor", 0.7)
    predict(held_out, active_model, "D major", 0.9)
    client = token_client(annotator)

    first = client.post("/api/v1/queue/next").json()
    assert first["progress"] == {"labeled_today": 0, "labeled_total": 0, "queue_size": 2}
    client.post("/api/v1/queue/skip", {"track": first["id"]}, format="json")
    second = client.post("/api/v1/queue/next").json()
    served = {track["id"]: track for track in (first, second)}
    assert set(served) == {pool.pk, held_out.pk}  # the queue decides which split is due first

    shown = served[pool.pk]
    assert shown["blind"] is None and len(shown["suggestions"]) == 3
    assert shown["suggestions"][0] == {"index": 21, "key": "A minor", "camelot": "8A", "probability": 0.7}
    assert shown["suggestion_model"] == {"id": active_model.pk, "name": "v1", "is_active": True}
    assert len(shown["probabilities"]) == 24

    hidden = served[held_out.pk]
    assert hidden["suggestions"] == [] and hidden["probabilities"] is None
    assert hidden["suggestion_model"] is None and "Held-out track" in hidden["blind"]
    assert "prediction" not in hidden and "prediction" not in shown


def test_queue_progress_counts_your_labels(annotator, db):
    track = make_track()
    client = token_client(annotator)
    assert client.get("/api/v1/queue/progress").json() == {
        "labeled_today": 0,
        "labeled_total": 0,
        "queue_size": 1,
    }
    annotate(track, annotator, "C major")
    assert client.get("/api/v1/queue/progress").json() == {
        "labeled_today": 1,
        "labeled_total": 1,
        "queue_size": 0,
    }
    assert token_client(None).get("/api/v1/queue/progress").status_code == 401


def test_skipped_tracks_are_listed_and_can_be_put_back(annotator, other_annotator, db):
    track = make_track(title="Skipped song")
    anna = token_client(annotator)
    assert anna.get("/api/v1/queue/skipped").json() == []
    anna.post("/api/v1/queue/skip", {"track": track.pk}, format="json")
    token_client(other_annotator).post("/api/v1/queue/skip", {"track": track.pk}, format="json")
    skipped = anna.get("/api/v1/queue/skipped").json()
    assert [(s["track"], s["title"]) for s in skipped] == [(track.pk, "Skipped song")]
    assert anna.post("/api/v1/queue/next").status_code == 204  # skipped: not served for a day

    assert anna.delete(f"/api/v1/queue/skipped/{track.pk}").status_code == 204
    assert anna.get("/api/v1/queue/skipped").json() == []
    assert anna.post("/api/v1/queue/next").json()["id"] == track.pk  # back in the queue
    assert Skip.objects.filter(annotator=other_annotator).count() == 1  # only your own skips
    missing = anna.delete(f"/api/v1/queue/skipped/{track.pk}")
    assert missing.status_code == 404 and "not skipped" in missing.json()["detail"]
    assert anna.delete("/api/v1/queue/skipped/999999").status_code == 404
    assert token_client(None).get("/api/v1/queue/skipped").status_code == 401


def test_submit_and_skip_can_answer_with_the_next_track_in_one_round_trip(annotator, db):
    first, second, third = make_track(priority=3.0), make_track(priority=2.0), make_track(priority=1.0)
    client = token_client(annotator)
    served = client.post("/api/v1/queue/next").json()
    submitted = client.post(
        "/api/v1/queue/submit", {"track": served["id"], "key": "E major", "next": True}, format="json"
    )
    assert submitted.status_code == 201
    body = submitted.json()
    assert body["key"] == "E major" and body["next"]["id"] not in (served["id"], None)
    assert body["next"]["progress"]["labeled_total"] == 1
    assert client.post("/api/v1/queue/next").json()["id"] == body["next"]["id"]  # it is leased to you
    skipped = client.post("/api/v1/queue/skip", {"track": body["next"]["id"], "next": True}, format="json")
    assert skipped.json()["skipped"] == body["next"]["id"]
    remaining = skipped.json()["next"]
    assert remaining["id"] in {first.pk, second.pk, third.pk} - {served["id"], body["next"]["id"]}
    client.post("/api/v1/queue/skip", {"track": remaining["id"]}, format="json")
    last = client.post("/api/v1/queue/skip", {"track": remaining["id"], "next": True}, format="json").json()
    assert last["next"] is None  # nothing left
    bad = client.post(
        "/api/v1/queue/submit", {"track": first.pk, "key": "C major", "next": "soon"}, format="json"
    )
    assert bad.status_code == 400 and error_fields(bad) == ["next"]
