"""Tracks: filters, role-scoped detail, upload with per-file results, delete, and the best known key."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from annotations.models import Annotation, Track
from annotations.services.tracks import track_import

from .helpers import annotate, error_fields, label_track, make_track, predict, synthetic, token_client


@pytest.fixture
def library(active_model):
    """Five tracks: labeled and not, both splits, predictions of varying confidence."""
    tracks = {
        "c": label_track(make_track(title="Morning", artist="Ana"), "C major"),
        "am": label_track(make_track(title="Night", artist="Bo", split="test"), "A minor"),
        "none": label_track(make_track(title="Drums"), None, label="no_key"),
        "open": make_track(title="Open Morning", artist="Cy"),
        "pending": make_track(title="Waiting", status=Track.Status.PENDING),
    }
    predict(tracks["c"], active_model, "C major", 0.9)
    predict(tracks["open"], active_model, "F# minor", 0.4)
    predict(tracks["am"], active_model, "C major", 0.6)
    return tracks


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("key=8B", {"c"}),  # Camelot
        ("key=Am", {"am"}),
        ("key=no_key", {"none"}),
        ("predicted_key=C major", {"c", "am"}),
        ("predicted_key=11A", {"open"}),  # F# minor in Camelot
        ("confidence_min=0.5", {"c", "am"}),
        ("confidence_min=0.5&confidence_max=0.7", {"am"}),
        ("labeled=true", {"c", "am", "none"}),
        ("labeled=false", {"open", "pending"}),
        ("split=test", {"am"}),
        ("status=pending", {"pending"}),
        ("search=morning", {"c", "open"}),
        ("search=bo", {"am"}),
    ],
)
def test_track_filters(annotator, library, query, expected):
    response = token_client(annotator).get(f"/api/v1/tracks?{query}")
    assert ids(response) == {library[name].pk for name in expected}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("key=H major", "key"),
        ("predicted_key=no_key", "predicted_key"),
        ("confidence_min=high", "confidence_min"),
        ("confidence_max=2", "confidence_max"),
        ("labeled=maybe", "labeled"),
        ("split=train", "split"),
        ("status=done", "status"),
        ("ordering=colour", "ordering"),
    ],
)
def test_filter_values_that_do_not_parse_are_named(annotator, db, query, field):
    response = token_client(annotator).get(f"/api/v1/tracks?{query}")
    assert response.status_code == 400
    assert error_fields(response) == [field]


def test_list_shows_consensus_and_active_prediction(annotator, library):
    rows = {row["id"]: row for row in token_client(annotator).get("/api/v1/tracks").json()["results"]}
    c = rows[library["c"].pk]
    assert c["consensus"] == {"label": "key", "key": "C major", "camelot": "8B"}
    assert c["prediction"] == {"key": "C major", "camelot": "8B", "confidence": 0.9}
    assert (
        rows[library["pending"].pk]["prediction"] is None and rows[library["pending"].pk]["labeled"] is False
    )


def test_list_is_paginated(annotator, library):
    body = token_client(annotator).get("/api/v1/tracks?page_size=2&ordering=-id").json()
    assert body["count"] == 5 and len(body["results"]) == 2 and body["next"]
    assert body["results"][0]["id"] == library["pending"].pk


def test_detail_scopes_annotations_by_role(annotator, other_annotator, reviewer, library):
    track = library["open"]
    annotate(track, annotator, "F# minor")
    annotate(track, other_annotator, "A major")

    def annotators(user) -> list[str]:
        body = token_client(user).get(f"/api/v1/tracks/{track.pk}").json()
        return sorted(a["annotator"] for a in body["annotations"])

    assert annotators(annotator) == ["anna"]
    assert annotators(other_annotator) == ["bob"]
    assert annotators(reviewer) == ["anna", "bob"]
    body = token_client(annotator).get(f"/api/v1/tracks/{track.pk}").json()
    assert body["predictions"][0]["key"] == "F# minor" and body["predictions"][0]["is_active"] is True


def test_unknown_track_is_a_json_404(annotator, db):
    response = token_client(annotator).get("/api/v1/tracks/999999")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_only_admins_delete_and_the_files_go(annotator, admin_user, tmp_path):
    outcome = track_import(path=synthetic(tmp_path, "gone.wav", "D major", seed=4))
    audio = Path(settings.MEDIA_ROOT) / outcome.track.audio.name
    assert audio.is_file()
    assert token_client(annotator).delete(f"/api/v1/tracks/{outcome.track.pk}").status_code == 403
    assert token_client(admin_user).delete(f"/api/v1/tracks/{outcome.track.pk}").status_code == 204
    assert not Track.objects.filter(pk=outcome.track.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_deleted_track_audio_is_removed_after_commit(admin_user, tmp_path, roles):
    outcome = track_import(path=synthetic(tmp_path, "gone.wav", "D major", seed=5))
    audio = Path(settings.MEDIA_ROOT) / outcome.track.audio.name
    assert token_client(admin_user).delete(f"/api/v1/tracks/{outcome.track.pk}").status_code == 204
    assert not audio.exists()


def test_upload_reports_each_file(admin_user, tmp_path, bad_files):
    good = synthetic(tmp_path, "song.flac", "E minor", seed=6)
    client = token_client(admin_user)
    with open(good, "rb") as one, open(bad_files["text"], "rb") as two:
        response = client.post("/api/v1/tracks", {"files": [one, two]}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["existing"], body["failed"]) == (1, 0, 1)
    by_name = {r["source"]: r for r in body["results"]}
    assert by_name["song.flac"]["ok"] and Track.objects.get(pk=by_name["song.flac"]["track"]).title == "song"
    assert "not an audio file" in by_name["notes.wav"]["error"]

    with open(good, "rb") as again:
        repeat = client.post("/api/v1/tracks", {"files": [again]}, format="multipart")
    assert repeat.status_code == 200 and repeat.json()["existing"] == 1


def test_upload_of_only_bad_files_is_a_400_naming_each(admin_user, bad_files):
    with open(bad_files["empty"], "rb") as one, open(bad_files["corrupt"], "rb") as two:
        response = token_client(admin_user).post("/api/v1/tracks", {"files": [one, two]}, format="multipart")
    assert response.status_code == 400
    assert error_fields(response) == ["files.0", "files.1"]
    assert Track.objects.count() == 0


def test_upload_without_files_is_named(admin_user):
    response = token_client(admin_user).post("/api/v1/tracks", {}, format="multipart")
    assert response.status_code == 400 and error_fields(response) == ["files"]


def test_oversized_upload_is_a_413_json(admin_user, tmp_path, monkeypatch):
    monkeypatch.setitem(settings.KEYWEB, "MAX_UPLOAD_BYTES", 50_000)
    big = synthetic(tmp_path, "big.wav", "C major", seed=7, seconds=3.0)
    with open(big, "rb") as handle:
        response = token_client(admin_user).post("/api/v1/tracks", {"files": [handle]}, format="multipart")
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "payload_too_large" and "big.wav" in body["detail"]
    assert Track.objects.count() == 0


@pytest.mark.parametrize(
    ("notation", "key", "top"),
    [
        ("mir_eval", "C major", "C major"),
        ("camelot", "8B", "8B"),
        ("openkey", "1d", "1d"),
        ("jams", "C:major", "C:major"),
        ("id3", "C", "C"),
    ],
)
def test_track_key_from_the_human_consensus(annotator, library, notation, key, top):
    response = token_client(annotator).get(f"/api/v1/tracks/{library['c'].pk}/key?notation={notation}")
    assert response.status_code == 200
    body = response.json()
    assert (body["source"], body["key"], body["notation"], body["confidence"]) == (
        "human",
        key,
        notation,
        1.0,
    )
    assert body["top"][0] == {"key": top, "probability": pytest.approx(0.9)}


def test_track_key_falls_back_to_the_model(annotator, library):
    body = (
        token_client(annotator).get(f"/api/v1/tracks/{library['open'].pk}/key?notation=camelot&top=2").json()
    )
    assert (body["source"], body["key"], body["confidence"]) == ("model", "11A", pytest.approx(0.4))
    assert (
        len(body["top"]) == 2 and body["model_version"] == library["open"].predictions.get().model_version_id
    )


def test_track_key_of_a_no_key_label_and_of_an_unknown(annotator, library):
    client = token_client(annotator)
    no_key = client.get(f"/api/v1/tracks/{library['none'].pk}/key").json()
    assert (no_key["source"], no_key["label"], no_key["key"]) == ("human", "no_key", None)
    unknown = client.get(f"/api/v1/tracks/{library['pending'].pk}/key").json()
    assert unknown["source"] is None and unknown["key"] is None and unknown["top"] == []


def test_track_key_refuses_an_unknown_notation(annotator, library):
    response = token_client(annotator).get(f"/api/v1/tracks/{library['c'].pk}/key?notation=roman&top=99")
    assert response.status_code == 400 and set(error_fields(response)) == {"notation", "top"}


def test_human_tuning_is_reported_when_the_track_has_no_estimate(annotator, active_model):
    track = make_track()
    from annotations.services.labels import LabelValue
    from annotations.services.queue import annotation_submit

    annotation_submit(user=annotator, track=track, label=LabelValue.parse("G major"), tuning_cents=12.0)
    body = token_client(annotator).get(f"/api/v1/tracks/{track.pk}/key").json()
    assert body["source"] == "human" and body["tuning_cents"] == 12.0
    assert Annotation.objects.count() == 1


def test_track_list_query_count_does_not_grow_with_the_page(
    annotator, active_model, django_assert_max_num_queries
):
    """Consensus and the active prediction come from one annotated query, not one query per track."""
    client = token_client(annotator)
    client.get("/api/v1/tracks")  # warm the user's role cache paths
    for number in range(30):
        track = make_track()
        predict(track, active_model, "C major", 0.5 + number / 100)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/tracks?page_size=30").json()
    assert len(body["results"]) == 30 and all(row["prediction"] for row in body["results"])
