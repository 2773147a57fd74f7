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
