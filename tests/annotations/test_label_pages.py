"""The label page and its JSON endpoints, the visuals, the home page's progress and the review pages,
through the HTTP client with real logins."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotations import views
from annotations.models import Annotation, ModelVersion, Prediction, Skip, Track
from annotations.services import track_import
from annotations.visuals import track_visuals_compute, track_visuals_path
from ml.keys import Key
from tests.factories import write_synthetic

SUBMIT = reverse("annotations:label_submit")
SKIP = reverse("annotations:label_skip")
UNDO = reverse("annotations:label_undo")
NEXT = reverse("annotations:label_next")


def _post(client: Client, url: str, body) -> dict:
    response = client.post(url, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


@pytest.fixture
def model_version(roles) -> ModelVersion:
    """The active version (the shipped default, registered by setup_keyweb, when it is present)."""
    return ModelVersion.objects.filter(is_active=True).first() or ModelVersion.objects.create(
        name="v1", backbone="pitch_class", status=ModelVersion.Status.READY, is_active=True
    )


def _predict(track: Track, version: ModelVersion, best: int, confidence: float = 0.6) -> Prediction:
    probabilities = [(1 - confidence) / 23] * 24
    probabilities[best] = confidence
    return Prediction.objects.create(
        track=track,
        model_version=version,
        probabilities=probabilities,
        key_index=best,
        confidence=confidence,
        entropy=1.0,
        margin=0.5,
        uncertainty=1.0,
    )


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> list:
    """Three short synthetic tracks, written once for the module (imports copy them into MEDIA_ROOT)."""
    folder = tmp_path_factory.mktemp("label-pages")
    return [
        write_synthetic(folder / f"{number}.wav", key=key, seed=number, seconds=5)
        for number, key in enumerate(("C major", "A minor", "Eb major"))
    ]


@pytest.fixture
def ready_tracks(audio_files, model_version) -> list[Track]:
    """The three files imported, marked analysed and predicted (C major, A minor, Eb major)."""
    tracks = []
    for number, (path, key) in enumerate(zip(audio_files, ("C major", "A minor", "Eb major"), strict=True)):
        track = track_import(path=path).track
        Track.objects.filter(pk=track.pk).update(status=Track.Status.READY, priority=3 - number)
        track.refresh_from_db()
        _predict(track, model_version, Key.parse(key).index)
        tracks.append(track)
    return tracks


@pytest.fixture
def anna(client, annotator) -> Client:
    assert client.login(username="anna", password="anna-password-1")
    return client


def test_label_page_serves_a_leased_track_with_the_model_top_three(anna, ready_tracks):
    response = anna.get(reverse("annotations:label"))
    assert response.status_code == 200
    page = response.content.decode()
    initial = json.loads(page.split('id="initial-data" type="application/json">')[1].split("</script>")[0])
    track = initial["track"]
    assert track["id"] in {t.pk for t in ready_tracks}
    assert len(track["prediction"]["top"]) == 3
    assert track["prediction"]["top"][0]["probability"] == pytest.approx(0.6)
    assert Track.objects.get(pk=track["id"]).lease_user.username == "anna"
    assert initial["progress"] == {"labeled_today": 0, "labeled_total": 0, "queue_size": 3}
    for script in ("common.js", "player.js", "aids.js", "circle.js", "label.js"):
        assert f"keyweb/{script}" in page
    assert "Keyboard shortcuts" in page


def test_submit_stores_the_label_and_answers_with_the_next_track(anna, ready_tracks):
    first = anna.get(NEXT).json()["track"]
    status, body = _post(
        anna,
        SUBMIT,
        {
            "track": first["id"],
            "label": "key",
            "key": 9 + 12,
            "tuning_cents": "-12",
            "notes": "clear",
            "time_spent_s": 7.5,
        },
    )
    assert status == 200, body
    annotation = Annotation.objects.get(track_id=first["id"])
    assert (annotation.key_index, annotation.tuning_cents, annotation.time_spent_s) == (21, -12.0, 7.5)
    assert annotation.notes == "clear"
    assert body["saved"]["label"] == "A minor"
    assert body["track"]["id"] != first["id"]
    assert body["progress"]["labeled_total"] == 1 and body["progress"]["queue_size"] == 2


def test_submit_accepts_keys_in_any_notation_and_no_key_labels(anna, ready_tracks):
    track = anna.get(NEXT).json()["track"]
    assert _post(anna, SUBMIT, {"track": track["id"], "key": "8B"})[0] == 200
    track = Track.objects.exclude(annotations__isnull=False).first()
    assert _post(anna, SUBMIT, {"track": track.pk, "label": "modulating"})[0] == 200
    labels = set(Annotation.objects.values_list("label", "key_index"))
    assert labels == {("key", 0), ("modulating", None)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": "key", "key": 3}, "'track' must be the id"),
        ({"track": 999999, "key": 3}, "there is no track 999999"),
        ({"track": "TRACK", "key": 3}, "'track' must be the id"),
        ({"track": None, "key": 24}, "'track' must be the id"),
        ({"key": 24}, "'track' must be the id"),
    ],
)
def test_submit_without_a_valid_track_is_a_400_that_says_why(anna, ready_tracks, body, message):
    status, answer = _post(anna, SUBMIT, body)
    assert status == 400
    assert message in answer["error"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"key": 24}, "from 0 to 23"),
        ({"key": "H sharp major"}, "not a key we understand"),
        ({"label": "sad"}, "'label' must be 'key'"),
        ({}, "pick a key"),
        ({"key": 3, "tuning_cents": 80}, "between -50 and +50 cents"),
        ({"key": 3, "tuning_cents": "flat"}, "must be a number"),
        ({"key": 3, "time_spent_s": -3}, "cannot be negative"),
        ({"key": 3, "notes": ["a list"]}, "'notes' must be text"),
        ({"key": 3, "notes": "x" * 5001}, "limited to 5000 characters"),
    ],
)
def test_submit_with_bad_fields_is_a_400_that_says_why(anna, ready_tracks, extra, message):
    track = anna.get(NEXT).json()["track"]
    status, answer = _post(anna, SUBMIT, {"track": track["id"], **extra})
    assert status == 400
    assert message in answer["error"]
    assert not Annotation.objects.exists()


def test_submit_rejects_bodies_that_are_not_json_objects(anna, ready_tracks):
    response = anna.post(SUBMIT, data="key=C", content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    assert _post(anna, SUBMIT, [1, 2])[1]["error"] == "the request body must be a JSON object"


def test_labeling_the_same_track_twice_is_refused(anna, ready_tracks):
    track = anna.get(NEXT).json()["track"]
    assert _post(anna, SUBMIT, {"track": track["id"], "key": 0})[0] == 200
    status, answer = _post(anna, SUBMIT, {"track": track["id"], "key": 7})
    assert status == 400 and "already labeled" in answer["error"]


def test_skip_serves_another_track_and_remembers_the_skip(anna, ready_tracks):
    first = anna.get(NEXT).json()["track"]
    status, body = _post(anna, SKIP, {"track": first["id"]})
    assert status == 200
    assert body["skipped"]["track"] == first["id"]
    assert body["track"]["id"] != first["id"]
    assert Skip.objects.filter(track_id=first["id"], annotator__username="anna").exists()
    assert _post(anna, SKIP, {"track": "x"})[0] == 400


def test_undo_withdraws_the_last_label_and_gives_the_track_back(anna, ready_tracks):
    track = anna.get(NEXT).json()["track"]
    _post(anna, SUBMIT, {"track": track["id"], "key": 4, "notes": "maybe"})
    status, body = _post(anna, UNDO, {})
    assert status == 200
    assert body["track"]["id"] == track["id"]
    assert body["undone"]["key"] == 4 and body["undone"]["notes"] == "maybe"
    assert not Annotation.objects.exists()
    assert Track.objects.get(pk=track["id"]).lease_user.username == "anna"  # held for the correction
    status, body = _post(anna, UNDO, {})
    assert status == 400 and "nothing to undo" in body["error"]


def test_an_empty_queue_answers_with_no_track(anna, model_version):
    body = anna.get(NEXT).json()
    assert body["track"] is None and body["progress"]["queue_size"] == 0
    assert "Nothing to label right now" in anna.get(reverse("annotations:label")).content.decode()


def test_json_endpoints_answer_401_and_403_in_json(client, roles, ready_tracks):
    assert client.get(NEXT).status_code == 401
    assert "log in" in client.get(NEXT).json()["error"]
    User.objects.create_user(username="visitor", password="visitor-password-1")
    client.login(username="visitor", password="visitor-password-1")
    response = client.post(SUBMIT, data="{}", content_type="application/json")
    assert response.status_code == 403 and "annotator role" in response.json()["error"]
    assert client.get(reverse("annotations:label")).status_code == 403


def test_json_endpoints_need_the_csrf_token(annotator, ready_tracks):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="anna", password="anna-password-1")
    track = browser.get(NEXT).json()["track"]
    refused = browser.post(
        SUBMIT, data=json.dumps({"track": track["id"], "key": 0}), content_type="application/json"
    )
    assert refused.status_code == 403
    token = browser.get(reverse("annotations:label")).context["csrf_token"]
    accepted = browser.post(
        SUBMIT,
        data=json.dumps({"track": track["id"], "key": 0}),
        content_type="application/json",
        headers={"X-CSRFToken": str(token)},
    )
    assert accepted.status_code == 200


def test_submit_answers_quickly(anna, ready_tracks):
    """Not a benchmark: a guard against a submit that does something slow (e.g. touching audio)."""
    track = anna.get(NEXT).json()["track"]
    started = time.perf_counter()
    assert _post(anna, SUBMIT, {"track": track["id"], "key": 0})[0] == 200
    assert time.perf_counter() - started < 2.0


# --- visuals ------------------------------------------------------------------------------------------------


def _tone(frequencies: list[float], seconds: float = 4.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return sum(np.sin(2 * np.pi * f * t) for f in frequencies).astype(np.float32) * 0.2


def test_chromagram_of_a_c_major_triad_lights_c_e_and_g():
    c4, e4, g4 = 261.63, 329.63, 392.0
    visuals = track_visuals_compute(track=Track(pk=1), audio=_tone([c4, e4, g4]))
    chroma = np.array(visuals["chroma"]["values"])
    assert chroma.shape[1] == 12 and 14 <= chroma.shape[0] <= 18  # ~4 frames per second
    assert chroma.min() >= 0 and chroma.max() <= 1
    middle = chroma[4:-4].mean(axis=0)
    assert set(np.argsort(middle)[-3:]) == {0, 4, 7}
    assert middle[[1, 3, 6, 10]].max() < 0.2
    peaks = visuals["peaks"]
    assert len(peaks["min"]) == len(peaks["max"]) == 800
    assert all(low <= high for low, high in zip(peaks["min"], peaks["max"], strict=True))
    assert max(peaks["max"]) == pytest.approx(1.0, abs=0.01)


def test_chromagram_is_tuning_compensated():
    """A4 played 45 cents sharp sits between A and Bb; told the tuning, the chromagram puts it on A."""
    sharp_a = 440.0 * 2 ** (45 / 1200)
    untuned = np.array(track_visuals_compute(track=Track(pk=1), audio=_tone([sharp_a]))["chroma"]["values"])
    tuned = np.array(
        track_visuals_compute(track=Track(pk=1, tuning_cents=45.0), audio=_tone([sharp_a]))["chroma"][
            "values"
        ]
    )
    a, b_flat = 9, 10
    assert tuned[4:-4, a].mean() > 0.9 and tuned[4:-4, b_flat].mean() < 0.1
    assert untuned[4:-4, b_flat].mean() > 0.25  # uncompensated, a third of it leaks to the wrong row


def test_visuals_are_computed_once_then_served_from_the_stored_file(anna, ready_tracks):
    track = ready_tracks[0]
    url = reverse("annotations:track_visuals", args=[track.pk])
    response = anna.get(url)
    assert response.status_code == 200
    assert len(response.json()["chroma"]["values"]) >= 20
    stored = track_visuals_path(track)
    assert stored.is_file()
    marked = {**json.loads(stored.read_text()), "track": "from the file"}
    stored.write_text(json.dumps(marked))
    assert anna.get(url).json()["track"] == "from the file"


def test_visuals_of_a_missing_audio_file_are_a_404_that_says_so(anna, ready_tracks, settings):
    track = ready_tracks[2]
    (settings.MEDIA_ROOT / track.audio.name).unlink()
    response = anna.get(reverse("annotations:track_visuals", args=[track.pk]))
    assert response.status_code == 404 and "missing" in response.json()["error"]


# --- home ---------------------------------------------------------------------------------------------------


def test_home_shows_progress_and_agreement_with_the_model(anna, ready_tracks):
    first = anna.get(NEXT).json()["track"]
    predicted = Track.objects.get(pk=first["id"]).predictions.get().key_index
    _post(anna, SUBMIT, {"track": first["id"], "key": predicted})
    second = anna.get(NEXT).json()["track"]
    _post(
        anna,
        SUBMIT,
        {
            "track": second["id"],
            "key": (Track.objects.get(pk=second["id"]).predictions.get().key_index + 7) % 24,
        },
    )
    page = anna.get(reverse("annotations:home")).content.decode()
    assert 'data-testid="labeled-today">2<' in page
    assert 'data-testid="labeled-total">2<' in page
    assert 'data-testid="queue-size">1<' in page
    assert 'data-testid="agreement">50%<' in page


# --- review -------------------------------------------------------------------------------------------------


@pytest.fixture
def disputed(ready_tracks, roles, settings) -> Track:
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    track = ready_tracks[0]
    for name, key in (("ben", 0), ("cleo", 7)):
        user = User.objects.create_user(username=name, password=f"{name}-password-1")
        user.groups.add(roles["annotator"])
        Annotation.objects.create(track=track, annotator=user, label="key", key_index=key)
    from annotations.services import track_consensus_refresh

    track = track_consensus_refresh(track=track)
    assert track.needs_review
    return track


@pytest.fixture
def reviewer(client, roles) -> Client:
    user = User.objects.create_user(username="rita", password="rita-password-1")
    user.groups.add(roles["reviewer"])
    client.login(username="rita", password="rita-password-1")
    return client


def test_review_is_for_reviewers_and_admins_only(anna, disputed):
    response = anna.get(reverse("annotations:review_list"))
    assert response.status_code == 403
    assert "Only reviewers and admins" in response.content.decode()


def test_reviewer_sees_annotations_and_prediction_and_decides(reviewer, disputed):
    listing = reviewer.get(reverse("annotations:review_list")).content.decode()
    assert f'data-track-id="{disputed.pk}"' in listing
    url = reverse("annotations:review_track", args=[disputed.pk])
    page = reviewer.get(url).content.decode()
    assert "C major" in page and "G major" in page  # both annotators' labels
    assert "ben" in page and "cleo" in page
    assert "The model" in page and "60%" in page
    response = reviewer.post(url, {"label": "7", "notes": "the bass settles on G"})
    assert response.status_code == 302
    disputed.refresh_from_db()
    assert (disputed.consensus_label, disputed.consensus_key, disputed.needs_review) == ("key", 7, False)
    assert Annotation.objects.get(track=disputed, source="review").notes == "the bass settles on G"


@pytest.mark.parametrize(
    ("label", "message"), [("", "choose the key"), ("42", "from 0 to 23"), ("Q minor", "not a key")]
)
def test_a_bad_review_decision_is_a_400_that_says_why(reviewer, disputed, label, message):
    response = reviewer.post(reverse("annotations:review_track", args=[disputed.pk]), {"label": label})
    assert response.status_code == 400
    assert message in response.content.decode()
    disputed.refresh_from_db()
    assert disputed.needs_review


def test_wrong_methods_and_unknown_tracks_explain_themselves(anna, ready_tracks):
    wrong = anna.get(SUBMIT)
    assert wrong.status_code == 405 and wrong["Allow"] == "POST"
    assert "use POST" in wrong.json()["error"]
    missing = anna.get(reverse("annotations:track_visuals", args=[99999]))
    assert missing.status_code == 404 and missing.json()["error"] == "there is no track 99999"
    page = anna.delete(reverse("annotations:label"))
    assert page.status_code == 405 and "use GET" in page.content.decode()


def test_long_track_visuals_are_drawn_by_a_worker_task_queued_once(
    client, annotator, good_files, monkeypatch
):
    from annotations.services import track_import

    track = track_import(path=good_files[0]).track
    monkeypatch.setattr(views, "VISUALS_IN_REQUEST_MAX_S", 1.0)  # treat the 6 s file as a long one
    client.login(username="anna", password="anna-password-1")
    url = f"/tracks/{track.pk}/visuals.json"
    first = client.get(url)
    assert first.status_code == 202 and first.json()["status"] == "computing"
    from annotations.visuals import track_visuals_building

    assert track_visuals_building(track)
    assert client.get(url).status_code == 202  # still computing; not queued a second time
    from annotations.visuals import track_visuals_build_recorded

    track_visuals_build_recorded(track=track)  # what the worker task runs
    assert not track_visuals_building(track)
    drawn = client.get(url)
    assert drawn.status_code == 200 and len(drawn.json()["peaks"]["max"]) > 100
