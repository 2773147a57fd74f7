"""The label page and the labeling API it uses (/api/v1/queue/*, session login + CSRF), the visuals, the
home page's progress and the review pages, through the HTTP client with real logins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotations.models import Annotation, ModelVersion, Prediction, Skip, Track
from annotations.pages import label as label_pages
from annotations.selectors import track_visuals_path
from annotations.services.tracks import track_import
from annotations.services.visuals import track_visuals_compute
from ml.keys import Key
from tests.factories import write_synthetic

NEXT = reverse("api:queue-next")
SUBMIT = reverse("api:queue-submit")
SKIP = reverse("api:queue-skip")
UNDO = reverse("api:queue-undo")
PROGRESS = reverse("api:queue-progress")


def _post(client: Client, url: str, body=None) -> tuple[int, dict | None]:
    data = "" if body is None else json.dumps(body)
    response = client.post(url, data=data, content_type="application/json")
    return response.status_code, (response.json() if response.content else None)


def _next(client: Client) -> dict | None:
    status, body = _post(client, NEXT)
    assert status in (200, 204), body
    return body


def _fields(body: dict) -> list[str | None]:
    """The fields an API error names (annotations/api/errors.py)."""
    assert set(body) == {"status", "code", "detail", "errors"}, body
    return [item["field"] for item in body["errors"]]


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
        priority=1.0,
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
    """The three files imported into the pool, marked analysed and predicted (C major, A minor, Eb major)."""
    tracks = []
    for number, (path, key) in enumerate(zip(audio_files, ("C major", "A minor", "Eb major"), strict=True)):
        track = track_import(path=path).track
        # Pool tracks: held-out ones are served without suggestions (see the held-out test).
        Track.objects.filter(pk=track.pk).update(
            status=Track.Status.READY, priority=3 - number, split=Track.Split.POOL
        )
        track.refresh_from_db()
        _predict(track, model_version, Key.parse(key).index)
        tracks.append(track)
    return tracks


@pytest.fixture
def anna(client, annotator) -> Client:
    assert client.login(username="anna", password="anna-password-1")
    return client


def test_label_page_loads_its_scripts_and_the_api_addresses_without_leasing(anna, ready_tracks):
    response = anna.get(reverse("annotations:label"))
    assert response.status_code == 200
    page = response.content.decode()
    for script in ("common.js", "player.js", "aids.js", "circle.js", "label.js"):
        assert f"keyweb/{script}" in page
    assert "Keyboard shortcuts" in page
    urls = json.loads(page.split('id="api-urls" type="application/json">')[1].split("</script>")[0])
    assert urls == {
        "next": NEXT,
        "submit": SUBMIT,
        "skip": SKIP,
        "undo": UNDO,
        "progress": PROGRESS,
        "skipped": reverse("api:queue-skipped"),
    }
    assert "/label/next.json" not in page and "initial-data" not in page
    assert not Track.objects.filter(lease_user__isnull=False).exists()  # the script leases, not the GET


def test_queue_serves_a_leased_track_with_the_model_top_three(anna, ready_tracks):
    track = _next(anna)
    assert track["id"] in {t.pk for t in ready_tracks}
    assert [s["probability"] for s in track["suggestions"]][0] == pytest.approx(0.6)
    assert len(track["suggestions"]) == 3 and track["blind"] is None
    best = Track.objects.get(pk=track["id"]).predictions.get().key_index
    assert track["suggestions"][0]["index"] == best
    assert track["suggestions"][0]["key"] == Key.from_index(best).mir_eval
    assert len(track["probabilities"]) == 24
    assert track["suggestion_model"]["is_active"] is True
    assert "prediction" not in track  # suggestions only, under the one rule
    assert Track.objects.get(pk=track["id"]).lease_user.username == "anna"
    assert track["progress"] == {"labeled_today": 0, "labeled_total": 0, "queue_size": 3}
    assert track["audio_url"] == reverse("annotations:track_audio", args=[track["id"]])
    assert track["visuals_url"] == reverse("annotations:track_visuals", args=[track["id"]])


def test_held_out_tracks_are_served_without_suggestions_and_say_why(anna, ready_tracks):
    Track.objects.update(split=Track.Split.TEST)
    track = _next(anna)
    assert track["split"] == "test"
    assert track["suggestions"] == [] and track["probabilities"] is None
    assert track["suggestion_model"] is None
    assert "Held-out track" in track["blind"] and "measures the model" in track["blind"]


def test_submit_stores_the_label_and_next_serves_another_with_progress(anna, ready_tracks):
    first = _next(anna)
    status, body = _post(
        anna,
        SUBMIT,
        {
            "track": first["id"],
            "key": "A minor",
            "tuning_cents": "-12",
            "notes": "clear",
            "time_spent_s": 7.5,
        },
    )
    assert status == 201, body
    annotation = Annotation.objects.get(track_id=first["id"])
    assert (annotation.key_index, annotation.tuning_cents, annotation.time_spent_s) == (21, -12.0, 7.5)
    assert annotation.notes == "clear"
    assert body["key"] == "A minor"
    following = _next(anna)
    assert following["id"] != first["id"]
    assert following["progress"]["labeled_total"] == 1 and following["progress"]["queue_size"] == 2


def test_submit_accepts_keys_in_any_notation_and_no_key_labels(anna, ready_tracks):
    track = _next(anna)
    assert _post(anna, SUBMIT, {"track": track["id"], "key": "8B"})[0] == 201
    track = Track.objects.exclude(annotations__isnull=False).first()
    assert _post(anna, SUBMIT, {"track": track.pk, "key": "modulating"})[0] == 201
    labels = set(Annotation.objects.values_list("label", "key_index"))
    assert labels == {("key", 0), ("modulating", None)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"key": "D major"}, "required"),
        ({"track": 999999, "key": "D major"}, "there is no track with id 999999"),
        ({"track": "TRACK", "key": "D major"}, "valid integer"),
        ({"track": None, "key": 24}, "may not be null"),
        ({"key": 24}, "required"),
    ],
)
def test_submit_without_a_valid_track_is_a_400_that_says_why(anna, ready_tracks, body, message):
    status, answer = _post(anna, SUBMIT, body)
    assert status == 400
    assert "track" in _fields(answer)
    track_error = next(e for e in answer["errors"] if e["field"] == "track")
    assert message in track_error["message"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"key": 24}, "key", "must be text"),
        ({"key": "H sharp major"}, "key", "not a key we understand"),
        ({"key": "sad"}, "key", "not a key we understand"),
        ({}, "key", "required"),
        ({"key": "D major", "tuning_cents": 80}, "tuning_cents", "less than or equal to 50"),
        ({"key": "D major", "tuning_cents": "flat"}, "tuning_cents", "valid number"),
        ({"key": "D major", "time_spent_s": -3}, "time_spent_s", "greater than or equal to 0"),
        ({"key": "D major", "notes": ["a list"]}, "notes", "Not a valid string"),
        ({"key": "D major", "notes": "x" * 5001}, "notes", "no more than 5000 characters"),
    ],
)
def test_submit_with_bad_fields_is_a_400_that_says_why(anna, ready_tracks, extra, field, message):
    track = _next(anna)
    status, answer = _post(anna, SUBMIT, {"track": track["id"], **extra})
    assert status == 400
    assert _fields(answer) == [field]
    assert message in answer["errors"][0]["message"] and message in answer["detail"]
    assert not Annotation.objects.exists()


def test_submit_rejects_bodies_that_are_not_json_objects(anna, ready_tracks):
    response = anna.post(SUBMIT, data="key=C", content_type="application/json")
    assert response.status_code == 400 and _fields(response.json()) == ["body"]
    assert "JSON parse error" in response.json()["detail"]
    status, answer = _post(anna, SUBMIT, [1, 2])
    assert status == 400 and "Expected a dictionary" in answer["detail"]


def test_labeling_the_same_track_twice_is_refused(anna, ready_tracks):
    track = _next(anna)
    assert _post(anna, SUBMIT, {"track": track["id"], "key": "C major"})[0] == 201
    status, answer = _post(anna, SUBMIT, {"track": track["id"], "key": "G major"})
    assert status == 409 and "already labeled" in answer["detail"]


def test_skip_remembers_the_skip_and_next_serves_another_track(anna, ready_tracks):
    first = _next(anna)
    status, body = _post(anna, SKIP, {"track": first["id"]})
    assert status == 200
    assert body == {"skipped": first["id"]}
    assert _next(anna)["id"] != first["id"]
    assert Skip.objects.filter(track_id=first["id"], annotator__username="anna").exists()
    status, answer = _post(anna, SKIP, {"track": "x"})
    assert status == 400 and _fields(answer) == ["track"]


def test_undo_withdraws_the_last_label_and_gives_the_track_back(anna, ready_tracks):
    track = _next(anna)
    _post(anna, SUBMIT, {"track": track["id"], "key": "E major", "notes": "maybe", "tuning_cents": 5})
    status, body = _post(anna, UNDO)
    assert status == 200
    assert body["track"]["id"] == track["id"]
    assert len(body["track"]["suggestions"]) == 3  # the same rule as a freshly served track
    assert body["track"]["progress"]["labeled_total"] == 0
    undone = body["undone"]
    assert (undone["key"], undone["notes"], undone["tuning_cents"]) == ("E major", "maybe", 5.0)
    assert not Annotation.objects.exists()
    assert Track.objects.get(pk=track["id"]).lease_user.username == "anna"  # held for the correction
    status, body = _post(anna, UNDO)
    assert status == 409 and "no label from the last hour to undo" in body["detail"]


def test_an_empty_queue_answers_204_and_progress_still_counts(anna, model_version):
    assert _post(anna, NEXT) == (204, None)
    assert anna.get(PROGRESS).json() == {"labeled_today": 0, "labeled_total": 0, "queue_size": 0}
    assert "Nothing to label right now" in anna.get(reverse("annotations:label")).content.decode()


def test_labeling_api_answers_401_and_403_in_json(client, roles, ready_tracks):
    anonymous = client.post(NEXT)
    assert anonymous.status_code == 401
    assert "credentials were not provided" in anonymous.json()["detail"]
    User.objects.create_user(username="visitor", password="visitor-password-1")
    client.login(username="visitor", password="visitor-password-1")
    response = client.post(SUBMIT, data="{}", content_type="application/json")
    assert response.status_code == 403 and "ask an admin" in response.json()["detail"]
    assert client.get(reverse("annotations:label")).status_code == 403


def test_labeling_api_needs_the_csrf_token_with_a_session(annotator, ready_tracks):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="anna", password="anna-password-1")
    token = browser.get(reverse("annotations:label")).context["csrf_token"]
    refused = browser.post(NEXT)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    track = browser.post(NEXT, headers={"X-CSRFToken": str(token)}).json()
    body = json.dumps({"track": track["id"], "key": "C major"})
    refused = browser.post(SUBMIT, data=body, content_type="application/json")
    assert refused.status_code == 403
    accepted = browser.post(
        SUBMIT, data=body, content_type="application/json", headers={"X-CSRFToken": str(token)}
    )
    assert accepted.status_code == 201


def test_submit_does_a_bounded_amount_of_work(anna, ready_tracks, django_assert_max_num_queries):
    """Not a benchmark (speed is measured in bench/, never asserted): a submit stays a handful of queries
    whatever the library holds, and touches no audio."""
    track = _next(anna)
    with django_assert_max_num_queries(40):
        assert _post(anna, SUBMIT, {"track": track["id"], "key": "C major"})[0] == 201


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
    first = _next(anna)
    predicted = Track.objects.get(pk=first["id"]).predictions.get().key_index
    _post(anna, SUBMIT, {"track": first["id"], "key": Key.from_index(predicted).mir_eval})
    second = _next(anna)
    other = (Track.objects.get(pk=second["id"]).predictions.get().key_index + 7) % 24
    _post(anna, SUBMIT, {"track": second["id"], "key": Key.from_index(other).mir_eval})
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
    from annotations.services.labels import track_consensus_refresh

    track = track_consensus_refresh(track=track)
    assert track.needs_review
    return track


@pytest.fixture
def reviewer(client, roles) -> Client:
    user = User.objects.create_user(username="rita", password="rita-password-1")
    user.groups.add(roles["reviewer"])
    client.login(username="rita", password="rita-password-1")
    return client


def _decide(client: Client, track: Track, body: dict) -> tuple[int, dict]:
    return _post(client, reverse("api:track-review", args=[track.pk]), body)


def test_review_is_for_reviewers_and_admins_only(anna, disputed):
    response = anna.get(reverse("annotations:review_list"))
    assert response.status_code == 403
    assert "Only reviewers and admins" in response.content.decode()
    assert _decide(anna, disputed, {"key": "C major"})[0] == 403


def test_reviewer_sees_annotations_and_prediction_and_decides(reviewer, disputed):
    listing = reviewer.get(reverse("annotations:review_list")).content.decode()
    assert f'data-track-id="{disputed.pk}"' in listing
    url = reverse("annotations:review_track", args=[disputed.pk])
    page = reviewer.get(url).content.decode()
    assert "C major" in page and "G major" in page  # both annotators' labels
    assert "ben" in page and "cleo" in page
    assert "The model" in page and "60%" in page
    # One button per distinct label, carrying what the API takes; the decision goes to the API.
    assert 'data-label="C major"' in page and 'data-label="G major"' in page
    assert reverse("api:track-review", args=[disputed.pk]) in page
    assert '<option value="G major">' in page
    status, body = _decide(reviewer, disputed, {"key": "G major", "notes": "the bass settles on G"})
    assert status == 200, body
    assert body["consensus"]["key"] == "G major"
    disputed.refresh_from_db()
    assert (disputed.consensus_label, disputed.consensus_key, disputed.needs_review) == ("key", 7, False)
    assert Annotation.objects.get(track=disputed, source="review").notes == "the bass settles on G"


@pytest.mark.parametrize(
    ("label", "message"), [("", "must be text"), ("42", "not a key"), ("Q minor", "not a key")]
)
def test_a_bad_review_decision_is_a_400_that_says_why(reviewer, disputed, label, message):
    status, body = _decide(reviewer, disputed, {"key": label})
    assert status == 400
    assert _fields(body) == ["key"] and message in body["detail"]
    disputed.refresh_from_db()
    assert disputed.needs_review


def test_wrong_methods_and_unknown_tracks_explain_themselves(anna, ready_tracks):
    wrong = anna.get(SUBMIT)
    assert wrong.status_code == 405 and "POST" in wrong["Allow"]
    assert 'Method "GET" not allowed' in wrong.json()["detail"]
    missing = anna.get(reverse("annotations:track_visuals", args=[99999]))
    assert missing.status_code == 404 and missing.json()["error"] == "there is no track 99999"
    page = anna.delete(reverse("annotations:label"))
    assert page.status_code == 405 and "use GET" in page.content.decode()


def test_the_old_label_json_endpoints_are_gone(anna, ready_tracks):
    for path in ("/label/next.json", "/label/submit.json", "/label/skip.json", "/label/undo.json"):
        assert anna.get(path).status_code == 404


def test_review_decisions_are_the_apis_the_page_takes_none(reviewer, disputed):
    response = reviewer.post(reverse("annotations:review_track", args=[disputed.pk]), {"label": "7"})
    assert response.status_code == 405
    disputed.refresh_from_db()
    assert disputed.needs_review


def test_long_track_visuals_are_drawn_by_a_worker_task_queued_once(
    client, annotator, good_files, monkeypatch
):
    from annotations.services.tracks import track_import

    track = track_import(path=good_files[0]).track
    monkeypatch.setattr(label_pages, "VISUALS_IN_REQUEST_MAX_S", 1.0)  # treat the 6 s file as a long one
    client.login(username="anna", password="anna-password-1")
    url = f"/tracks/{track.pk}/visuals.json"
    first = client.get(url)
    assert first.status_code == 202 and first.json()["status"] == "computing"
    from annotations.selectors import track_visuals_building

    assert track_visuals_building(track)
    assert client.get(url).status_code == 202  # still computing; not queued a second time
    from annotations.services.visuals import track_visuals_build_recorded

    track_visuals_build_recorded(track=track)  # what the worker task runs
    assert not track_visuals_building(track)
    drawn = client.get(url)
    assert drawn.status_code == 200 and len(drawn.json()["peaks"]["max"]) > 100
