"""In Chromium: a reviewer settles disputed tracks with one click and by keyboard; a held-out track is
labeled without the model's suggestions and the page says why."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations.models import Annotation, Track
from annotations.services.labels import track_consensus_refresh
from tests.e2e.conftest import log_in
from tests.e2e.seed import tracks_analyse, tracks_import

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def reviewer(roles) -> User:
    user = User.objects.create_user(username="rita", password="rita-password-1")
    user.groups.add(roles["reviewer"])
    return user


@pytest.fixture
def disputed(tmp_path, roles, settings) -> list[Track]:
    """Two tracks, each labeled C major by ben and G major by cleo: both wait for review."""
    settings.KEYWEB = {**settings.KEYWEB, "ANNOTATIONS_REQUIRED": 2}
    tracks = tracks_import(tmp_path / "disputed", count=2, seconds=4)
    for name, key in (("ben", 0), ("cleo", 7)):
        user = User.objects.create_user(username=name, password=f"{name}-password-1")
        user.groups.add(roles["annotator"])
        for track in tracks:
            Annotation.objects.create(track=track, annotator=user, label="key", key_index=key)
    tracks = [track_consensus_refresh(track=track) for track in tracks]
    assert all(track.needs_review for track in tracks)
    return tracks


def test_a_reviewer_settles_disputed_tracks_by_one_click_and_by_keyboard(page, disputed, reviewer):
    first, second = disputed
    log_in(page, "rita")
    page.goto(f"/review/{first.pk}/")
    page.wait_for_function("window.keyweb && window.keyweb.player")
    # One click on an annotator's label decides; the page moves on to the next disputed track.
    page.click('.decide-quick[data-label="G major"]')
    page.wait_for_url(f"**/review/{second.pk}/")
    first.refresh_from_db()
    assert (first.consensus_label, first.consensus_key, first.needs_review) == ("key", 7, False)
    assert "Decided G major" in page.text_content("ul.messages")

    # The keyboard: A picks A major, R its relative (F# minor), Enter decides.
    page.keyboard.press("a")
    page.keyboard.press("r")
    assert page.input_value("#id_label") == "F# minor"
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/")
    second.refresh_from_db()
    assert (second.consensus_key, second.needs_review) == (18, False)
    assert "No disputed tracks" in page.text_content("main")
    assert page.console_errors == []


def test_a_review_without_a_choice_says_so_and_decides_nothing(page, disputed, reviewer):
    log_in(page, "rita")
    page.goto(f"/review/{disputed[0].pk}/")
    page.click("#decide")
    page.locator("#status.error").wait_for()
    assert "Choose the key" in page.text_content("#status")
    disputed[0].refresh_from_db()
    assert disputed[0].needs_review


def test_a_held_out_track_is_labeled_without_suggestions(page, tmp_path, roles, annotator):
    tracks = tracks_import(tmp_path / "held-out", count=1, seconds=4)
    Track.objects.filter(pk=tracks[0].pk).update(split=Track.Split.TEST)
    tracks_analyse(tracks)
    assert Track.objects.get(pk=tracks[0].pk).predictions.exists()  # predicted, yet not shown
    log_in(page, "anna")
    page.goto("/label/")
    page.wait_for_function("window.keyweb && window.keyweb.currentTrackId !== undefined")
    page.wait_for_function("window.keyweb.currentTrackId !== null")
    assert page.locator("#suggestions li").count() == 0
    assert "Held-out track" in page.text_content("#model-name")
    assert page.evaluate("window.keyweb.picker.selected") is None
    page.keyboard.press("1")
    assert "no suggestions" in page.text_content("#status")
    assert not Annotation.objects.exists()
    assert page.console_errors == []
