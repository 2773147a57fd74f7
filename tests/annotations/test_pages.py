"""Pages: login, track list, browser upload with per-file results, audio streaming with ranges."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Track
from annotations.services.tracks import track_import


def test_login_required(client, db):
    response = client.get(reverse("annotations:home"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_annotator_sees_imported_tracks(client, annotator, good_files):
    for path in good_files:
        assert track_import(path=path).ok
    assert client.login(username="anna", password="anna-password-1")
    page = client.get(reverse("annotations:track_list")).content.decode()
    for name in ("one", "two", "three"):
        assert f"<td>{name}</td>" in page


def test_upload_needs_permission(client, annotator):
    client.login(username="anna", password="anna-password-1")
    assert client.get(reverse("annotations:upload")).status_code == 403


def test_upload_reports_each_file(client, admin_user, good_files, bad_files):
    client.login(username="ada", password="ada-password-1")
    with open(good_files[0], "rb") as good, open(bad_files["text"], "rb") as bad:
        response = client.post(reverse("annotations:upload"), {"files": [good, bad]})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Imported as track #" in page
    assert "notes.wav" in page and 'role="alert"' in page
    assert Track.objects.count() == 1


def test_upload_of_only_bad_files_is_a_400(client, admin_user, bad_files):
    client.login(username="ada", password="ada-password-1")
    with open(bad_files["empty"], "rb") as empty:
        response = client.post(reverse("annotations:upload"), {"files": [empty]})
    assert response.status_code == 400
    assert "empty" in response.content.decode()


def test_oversized_upload_is_refused_while_streaming(client, admin_user, good_files, settings):
    settings.KEYWEB = {**settings.KEYWEB, "MAX_UPLOAD_BYTES": 50_000}
    client.login(username="ada", password="ada-password-1")
    with open(good_files[0], "rb") as big:
        response = client.post(reverse("annotations:upload"), {"files": [big]})
    assert response.status_code == 413
    assert "limit" in response.content.decode()
    assert Track.objects.count() == 0


@pytest.fixture
def stored_track(db, good_files) -> Track:
    return track_import(path=good_files[0]).track


def test_audio_supports_range_requests(client, annotator, stored_track):
    client.login(username="anna", password="anna-password-1")
    url = reverse("annotations:track_audio", args=[stored_track.pk])
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    body = b"".join(whole.streaming_content)
    partial = client.get(url, HTTP_RANGE="bytes=100-199")
    assert partial.status_code == 206
    assert partial["Content-Range"] == f"bytes 100-199/{len(body)}"
    assert b"".join(partial.streaming_content) == body[100:200]
    assert client.get(url, HTTP_RANGE=f"bytes={len(body) + 10}-").status_code == 416


def test_audio_needs_login(client, stored_track):
    assert client.get(reverse("annotations:track_audio", args=[stored_track.pk])).status_code == 302


def test_healthz(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def catalogue(roles):
    """Five tracks: labeled, predicted, disputed and held out in known ways."""
    from annotations.models import ModelVersion
    from tests.annotations.api.helpers import label_track, make_track, predict

    ModelVersion.objects.update(is_active=False)
    version = ModelVersion.objects.create(name="v1", backbone="pitch_class", status="ready", is_active=True)
    tracks = {
        "sunrise": make_track(title="Sunrise", artist="Ana", original_filename="sunrise_Dmaj.wav"),
        "night": make_track(title="Night drive", artist="Bo", original_filename="night.flac"),
        "rain": make_track(title="Rain", artist="Ana", split=Track.Split.TEST),
        "dust": make_track(title="Dust", artist="Cy", needs_review=True),
        "noise": make_track(title="Noise", artist="Cy"),
    }
    label_track(tracks["sunrise"], "D major")
    label_track(tracks["noise"], None, label="no_key")
    predict(tracks["sunrise"], version, "D major", 0.9)
    predict(tracks["night"], version, "A minor", 0.4)
    predict(tracks["rain"], version, "A minor", 0.7)
    return tracks


def _listed(client, query: str = "") -> list[str]:
    response = client.get(reverse("annotations:track_list") + query)
    assert response.status_code == 200, response.content
    html = response.content.decode()
    return sorted(
        name for name in ("Sunrise", "Night drive", "Rain", "Dust", "Noise") if f"<td>{name}</td>" in html
    )


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("", ["Dust", "Night drive", "Noise", "Rain", "Sunrise"]),
        ("?q=ana", ["Rain", "Sunrise"]),  # artist, any case
        ("?q=dmaj", ["Sunrise"]),  # file name
        ("?q=drive", ["Night drive"]),  # title
        ("?label=D+major", ["Sunrise"]),
        ("?label=no_key", ["Noise"]),
        ("?predicted=A+minor", ["Night drive", "Rain"]),
        ("?predicted=A+minor&confidence_min=50", ["Rain"]),
        ("?confidence_max=50", ["Night drive"]),
        ("?state=labeled", ["Noise", "Sunrise"]),
        ("?state=unlabeled", ["Dust", "Night drive", "Rain"]),
        ("?state=disputed", ["Dust"]),
        ("?split=test", ["Rain"]),
        (
            "?q=&label=&predicted=&confidence_min=&confidence_max=&state=&split=",
            ["Dust", "Night drive", "Noise", "Rain", "Sunrise"],
        ),
    ],
)
def test_the_tracks_page_searches_and_filters(client, annotator, catalogue, query, titles):
    client.login(username="anna", password="anna-password-1")
    assert _listed(client, query) == titles


def test_bad_filters_say_what_is_wrong(client, annotator, catalogue):
    client.login(username="anna", password="anna-password-1")
    for query, message in (
        ("?confidence_min=150", "less than or equal to 100"),
        ("?confidence_min=80&confidence_max=20", "the confidence range is empty"),
        ("?label=H+major", "Select a valid choice"),
    ):
        response = client.get(reverse("annotations:track_list") + query)
        assert response.status_code == 400 and message in response.content.decode(), query


def test_the_tracks_page_is_paginated_and_keeps_the_filters(client, annotator, db):
    from tests.annotations.api.helpers import make_track

    for number in range(55):
        make_track(title=f"Song {number}", artist="Many")
    make_track(title="Other", artist="Solo")
    client.login(username="anna", password="anna-password-1")
    first = client.get(reverse("annotations:track_list") + "?q=many").content.decode()
    assert "55 tracks match" in first and "Page 1 of 2" in first
    assert 'href="?q=many&amp;page=2"' in first
    second = client.get(reverse("annotations:track_list") + "?q=many&page=2").content.decode()
    assert second.count("<td>Song ") == 5 and "Other" not in second
