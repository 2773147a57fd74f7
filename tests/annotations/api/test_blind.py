"""Blind labeling: an admin setting hides titles, artists and file names from annotators, in the queue,
the skipped list, the tracks API and the tracks page; reviewers and admins still see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from .helpers import make_track, token_client

SETTINGS = "/api/v1/settings/labeling"


@pytest.fixture
def admin(roles) -> User:
    user = User.objects.create_user(username="ada", password="ada-password-1", is_staff=True)
    user.groups.add(roles["admin"])
    return user


def test_only_admins_change_the_setting(annotator, reviewer, admin, db):
    assert token_client(admin).get(SETTINGS).json()["blind_names"] is False
    assert token_client(annotator).patch(SETTINGS, {"blind_names": True}, format="json").status_code == 403
    assert token_client(reviewer).get(SETTINGS).status_code == 403
    changed = token_client(admin).patch(SETTINGS, {"blind_names": True}, format="json")
    assert changed.status_code == 200 and changed.json()["blind_names"] is True
    bad = token_client(admin).patch(SETTINGS, {"blind_names": "maybe"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "blind_names"
    assert token_client(admin).get(SETTINGS).json()["blind_names"] is True


def test_blind_mode_hides_names_from_annotators_only(annotator, reviewer, admin, db):
    track = make_track(title="Sunrise in A major", artist="DJ Key", original_filename="sunrise_A-major.wav")
    anna = token_client(annotator)
    assert anna.post("/api/v1/queue/next").json()["title"] == "Sunrise in A major"  # off by default
    token_client(admin).patch(SETTINGS, {"blind_names": True}, format="json")

    served = anna.post("/api/v1/queue/next").json()
    assert (served["title"], served["artist"], served["filename"]) == (f"Track {track.pk}", "", "")
    listed = anna.get("/api/v1/tracks").json()["results"][0]
    assert (listed["title"], listed["artist"], listed["original_filename"]) == (f"Track {track.pk}", "", "")
    detail = anna.get(f"/api/v1/tracks/{track.pk}").json()
    assert "A major" not in str({k: detail[k] for k in ("title", "artist", "original_filename")})
    anna.post("/api/v1/queue/skip", {"track": track.pk}, format="json")
    assert anna.get("/api/v1/queue/skipped").json()[0]["title"] == f"Track {track.pk}"

    for user in (reviewer, admin):
        seen = token_client(user).get(f"/api/v1/tracks/{track.pk}").json()
        assert (seen["title"], seen["artist"], seen["original_filename"]) == (
            "Sunrise in A major",
            "DJ Key",
            "sunrise_A-major.wav",
        )


def test_the_tracks_page_hides_names_and_their_search_in_blind_mode(annotator, admin, db):
    track = make_track(title="Sunrise in A major", artist="DJ Key")
    token_client(admin).patch(SETTINGS, {"blind_names": True}, format="json")
    browser = Client()
    browser.login(username="anna", password="anna-password-1")
    url = reverse("annotations:track_list")
    page = browser.get(url).content.decode()
    assert f"<td>Track {track.pk}</td>" in page and "Sunrise" not in page and "DJ Key" not in page
    assert "Blind labeling is on" in page
    assert f'data-track-id="{track.pk}"' not in browser.get(url + "?q=sunrise").content.decode()
    assert f'data-track-id="{track.pk}"' in browser.get(url + f"?q={track.pk}").content.decode()
    browser.login(username="ada", password="ada-password-1")
    assert "<td>Sunrise in A major</td>" in browser.get(url + "?q=sunrise").content.decode()
